package keyring

import (
	"errors"
	"os"
	"path/filepath"
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
