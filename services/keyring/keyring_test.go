package keyring

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	k1, created, err := LoadOrCreate(dir)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	st, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", st.Mode().Perm(), err)
	}
	k2, created, err := LoadOrCreate(dir)
	if err != nil || created {
		t.Fatalf("reload: %v %v", created, err)
	}
	sealed, err := k1.Seal("ctx", []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := k2.Open("ctx", sealed)
	if err != nil || string(pt) != "s3cret" {
		t.Fatalf("open with reloaded key: %q %v", pt, err)
	}
	if _, err := k2.Open("other", sealed); !errors.Is(err, ErrDecrypt) {
		t.Error("a value opened under another context")
	}
	other := New(make([]byte, 32))
	if _, err := other.Open("ctx", sealed); !errors.Is(err, ErrDecrypt) {
		t.Error("a value opened with another key")
	}
	if string(k1.Derive("a")) == string(k1.Derive("b")) {
		t.Error("derived keys collide")
	}
}

func TestCorruptKeyFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte("not hex"), 0o600)
	if _, _, err := LoadOrCreate(dir); err == nil {
		t.Error("corrupt key file accepted")
	}
}

// TestKeyFileAppearsWhole: the key file is written to a temporary file in the same folder first; while it is being
// written nothing is visible under the key's name, a failure leaves nothing behind (not even the temporary file),
// and the finished file is 0600 with the whole key.
func TestKeyFileAppearsWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	var sawTmp string
	beforePublish = func(tmp string) error {
		sawTmp = tmp
		if filepath.Dir(tmp) != dir {
			t.Errorf("temporary file %s is not in the data folder (rename/link would not be atomic)", tmp)
		}
		if st, err := os.Stat(tmp); err != nil || st.Mode().Perm() != 0o600 || st.Size() != 65 {
			t.Errorf("temporary file: %v, %v (want 0600 and the whole key)", st, err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the key file is visible before it is complete: %v", err)
		}
		return errors.New("simulated crash before publishing")
	}
	t.Cleanup(func() { beforePublish = nil })
	if _, _, err := LoadOrCreate(dir); err == nil {
		t.Fatal("the simulated failure was not reported")
	}
	if sawTmp == "" {
		t.Fatal("no temporary file was used")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a failed write left %v behind", entries)
	}

	beforePublish = nil
	k, created, err := LoadOrCreate(dir)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != FileName {
		t.Errorf("data folder holds %v, want only %s", entries, FileName)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	k2, created, err := LoadOrCreate(dir)
	if err != nil || created || string(k2.Derive("x")) != string(k.Derive("x")) {
		t.Errorf("reload: created %v, err %v, same key %v", created, err, string(k2.Derive("x")) == string(k.Derive("x")))
	}
}

// TestConcurrentFirstStart: several processes opening a fresh data folder at once (a container restarted while the
// old one still starts, `writeback migrate` beside `serve`) all get the same key, and none ever reads a key file
// that is still empty or half written.
func TestConcurrentFirstStart(t *testing.T) {
	for round := range 100 {
		dir := t.TempDir()
		const n = 8
		keys := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				k, _, err := LoadOrCreate(dir)
				errs[i] = err
				if err == nil {
					keys[i] = k.Derive("x")
				}
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d: %v", round, errs[i])
			}
			if string(keys[i]) != string(keys[0]) {
				t.Fatalf("round %d: two different keys in one data folder", round)
			}
		}
	}
}
