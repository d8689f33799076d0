package keyring

import (
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// The check value identifies the key (the same for the same key, whoever
// loads it; another for another key) and reveals neither the key nor a key
// derived for another purpose.
func TestCheck(t *testing.T) {
	master := make([]byte, 32)
	for i := range master {
		master[i] = byte(i)
	}
	k := New(master)
	c := k.Check()
	if len(c) != 64 || strings.Trim(c, "0123456789abcdef") != "" {
		t.Fatalf("Check() = %q, want 64 hex characters", c)
	}
	if New(master).Check() != c {
		t.Error("the same key gives another check value")
	}
	other := append([]byte(nil), master...)
	other[31] ^= 1
	if New(other).Check() == c {
		t.Error("another key gives the same check value")
	}
	if c == hex.EncodeToString(master) {
		t.Error("the check value is the key")
	}
	for _, p := range []string{"database-key-check", "secrets-at-rest", "cookie-hash", "cookie-block", "agent-job-signing"} {
		if c == hex.EncodeToString(k.Derive(p)) {
			t.Errorf("the check value is the key derived for %s", p)
		}
	}
	// A key file on disk checks as the key it holds.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(hex.EncodeToString(master)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fk, _, err := LoadOrCreate(dir); err != nil || fk.Check() != c {
		t.Errorf("the key file's check value differs from its key's: %v", err)
	}
}

// LoadFile reads a key file in LoadOrCreate's format wherever it is, and
// never makes one.
func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	made, _, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	k, err := LoadFile(filepath.Join(dir, FileName))
	if err != nil || k.Check() != made.Check() {
		t.Fatalf("LoadFile of LoadOrCreate's key: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "shared.key")
	if _, err := LoadFile(missing); !errors.Is(err, fs.ErrNotExist) || strings.Count(err.Error(), missing) != 1 {
		t.Errorf("missing file: %v, want fs.ErrNotExist naming the path once", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("LoadFile created the key file")
	}
	for name, body := range map[string]string{"short": "abcd\n", "not hex": strings.Repeat("z", 64), "empty": ""} {
		p := filepath.Join(t.TempDir(), "k")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadFile(p); err == nil || !strings.Contains(err.Error(), "64-character hex key") {
			t.Errorf("%s key file: %v", name, err)
		}
	}
}
