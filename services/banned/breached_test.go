package banned_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/store"
)

func sha1Hex(s string) string {
	h := sha1.Sum([]byte(s))
	return strings.ToUpper(hex.EncodeToString(h[:]))
}

// breachedPasswords are the passwords a generated list holds: a few
// thousand, so that the search takes several steps over a file far larger
// than its scan block.
func breachedPasswords(n int) []string {
	out := []string{"Tr0ub4dor&3", "correct horse battery staple", "Sommer2019!"}
	for i := range n {
		out = append(out, fmt.Sprintf("leaked-%d-Pw", i))
	}
	return out
}

// writeSorted writes the downloader's single file: HASH:COUNT lines sorted
// by hash, with the line ending given.
func writeSorted(t *testing.T, pws []string, eol string) string {
	t.Helper()
	var lines []string
	for i, pw := range pws {
		lines = append(lines, fmt.Sprintf("%s:%d", sha1Hex(pw), i+1))
	}
	slices.Sort(lines)
	path := filepath.Join(t.TempDir(), "pwnedpasswords.txt")
	if err := os.WriteFile(path, []byte(strings.Join(lines, eol)+eol), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeRanges writes the downloader's folder of range files (-s false):
// PREFIX.txt holding SUFFIX:COUNT lines, for every prefix (most empty).
func writeRanges(t *testing.T, pws []string) string {
	t.Helper()
	dir := t.TempDir()
	byPrefix := map[string][]string{}
	for _, pw := range pws {
		h := sha1Hex(pw)
		byPrefix[h[:5]] = append(byPrefix[h[:5]], h[5:]+":7")
	}
	// The padding entries the API adds (count 0) may be in a file too.
	byPrefix["00000"] = append(byPrefix["00000"], "0005AD76BD555C1D6D771DE417A4B87E4B4:0", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:3")
	for p, lines := range byPrefix {
		slices.Sort(lines)
		if err := os.WriteFile(filepath.Join(dir, p+".txt"), []byte(strings.Join(lines, "\r\n")+"\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBreachedLookup(t *testing.T) {
	pws := breachedPasswords(3000)
	for _, tc := range []struct{ name, path string }{
		{"sorted LF", writeSorted(t, pws, "\n")},
		{"sorted CRLF", writeSorted(t, pws, "\r\n")},
		{"ranges", writeRanges(t, pws)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := banned.OpenBreached(tc.path)
			if err != nil {
				t.Fatalf("OpenBreached: %v", err)
			}
			for _, pw := range pws {
				if ok, err := l.Contains(pw); err != nil || !ok {
					t.Fatalf("Contains(%q) = %v, %v; want true", pw, ok, err)
				}
			}
			for i := range 500 {
				pw := fmt.Sprintf("never-leaked-%d", i)
				if tc.name == "ranges" {
					// A range file exists only for the prefixes written.
					if _, err := os.Stat(filepath.Join(tc.path, sha1Hex(pw)[:5]+".txt")); err != nil {
						continue
					}
				}
				if ok, err := l.Contains(pw); err != nil || ok {
					t.Fatalf("Contains(%q) = %v, %v; want false", pw, ok, err)
				}
			}
		})
	}
}

func TestBreachedRefusesUnusableLists(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var byCount []string // "ordered by prevalence": not sorted by hash
	for i := range 400 {
		byCount = append(byCount, fmt.Sprintf("%s:%d", sha1Hex(fmt.Sprint(i)), 1000-i))
	}
	for _, tc := range []struct{ name, path, want string }{
		{"relative", "pwned.txt", "full path"},
		{"missing", filepath.Join(dir, "none.txt"), "no such file"},
		{"empty", write("empty.txt", ""), "empty"},
		{"not hashes", write("words.txt", "root:s3cret-hash:19000\n123456\n"), "not 40 hex digits"},
		{"NTLM", write("ntlm.txt", "8846F7EAEE8FB117AD06BDD830B7586C:52\n"), "NTLM"},
		{"unsorted", write("bycount.txt", strings.Join(byCount, "\n")+"\n"), "not sorted"},
		{"folder without ranges", dir, "00000.txt"},
		{"device", "/dev/null", "neither a file nor a folder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := banned.OpenBreached(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenBreached(%s) = %v; want an error saying %q", tc.name, err, tc.want)
			}
			// The path may name any file: its content is never shown.
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error shows the file's content: %v", err)
			}
		})
	}
}

// TestBreachedRule: with a list configured, Service.Check refuses a
// password on it by the breached rule, after the other rules; a list that
// cannot be used is refused on save with the field's message and changes
// nothing; a list that vanished later fails the check (nothing is written
// unchecked) instead of letting every password through.
func TestBreachedRule(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenDatabase(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s := banned.New(db)
	path := writeSorted(t, breachedPasswords(100), "\n")

	_, err = s.Save(ctx, audit.CommandLine, 0, banned.Settings{Common: true, BreachedFile: filepath.Join(t.TempDir(), "missing.txt")})
	if m := errs.FieldsOf(err)["breached_file"]; !strings.Contains(m, "cannot be used") {
		t.Fatalf("Save with a missing list: %v", err)
	}
	if st, meta, _ := s.Settings(ctx); st.BreachedFile != "" || meta.Version != 0 {
		t.Fatalf("a refused list was saved: %+v", st)
	}
	if _, err := s.Save(ctx, audit.CommandLine, 0, banned.Settings{Common: true, BreachedFile: path}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pw   string
		rule banned.Rule
		ok   bool
	}{
		{"Tr0ub4dor&3", banned.RuleBreached, false},
		{"leaked-42-Pw", banned.RuleBreached, false},
		{"Winter2026!", banned.RuleCommon, false}, // the bundled list speaks first
		{"plum-Otter-57-quietly", "", true},
	} {
		r, ok, err := s.Check(ctx, tc.pw, nil)
		if err != nil || ok != tc.ok || r.Rule != tc.rule {
			t.Errorf("Check(%q) = %+v, %v, %v; want rule %q ok %v", tc.pw, r, ok, err, tc.rule, tc.ok)
		}
	}
	if msg := banned.EmployeeMessage(banned.RuleBreached); !strings.Contains(msg, "appeared in a data breach") {
		t.Errorf("employee message %q", msg)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Check(ctx, "plum-Otter-57-quietly", nil); err == nil || ok {
		t.Fatalf("Check with the list gone = %v, %v; want an error", ok, err)
	}
}
