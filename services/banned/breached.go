package banned

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/writeback/writeback/services/i18n"
)

// The breached-password check: an offline copy of the SHA-1 hashes of
// passwords seen in data breaches (Have I Been Pwned's Pwned Passwords), in
// one of the two forms its official downloader
// (https://github.com/HaveIBeenPwned/PwnedPasswordsDownloader) writes:
//
//   - one file, sorted by hash, of lines HASH:COUNT (40 hex digits), the
//     downloader's default (pwnedpasswords.txt); HASH alone works too;
//   - a folder of range files, one per 5-hex-digit prefix (00000.txt …
//     FFFFF.txt, the downloader's -s false), each of lines SUFFIX:COUNT
//     (the other 35 hex digits), the k-anonymity "range" format.
//
// A password is looked up by binary search in the file (a few reads of a
// few kilobytes, never the file in memory) and never sent anywhere.

// Kinds of breached-password lists.
var (
	BreachedSorted = i18n.Key("sorted file of SHA-1 hashes")
	BreachedRanges = i18n.Key("folder of SHA-1 range files")
)

// ErrBreachedNTLM refuses the downloader's NTLM form (-n).
var ErrBreachedNTLM = errors.New("this list holds NTLM hashes (32 hex digits): download the SHA-1 hashes instead (the downloader without -n)")

// Breached is an opened breached-password list.
type Breached struct {
	Path    string
	Kind    string // BreachedSorted or BreachedRanges
	Size    int64  // bytes of the file, or of one sample range file
	ModTime time.Time
}

// OpenBreached checks that path is a breached-password list in one of the
// two forms and sorted (a sample of its lines is read); the error says
// what is wrong in words an administrator can act on.
func OpenBreached(path string) (*Breached, error) {
	path = strings.TrimSpace(path)
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("give the full path of the file or folder on the portal's server (it starts with /), not %q", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("the portal cannot read %s: %w", path, plainPathError(err))
	}
	b := &Breached{Path: path, Size: fi.Size(), ModTime: fi.ModTime()}
	if fi.IsDir() {
		b.Kind = BreachedRanges
		if fi, err := os.Stat(filepath.Join(path, "00000.txt")); err == nil && !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s/00000.txt is not a file", path)
		}
		f, err := os.Open(filepath.Join(path, "00000.txt"))
		if err != nil {
			return nil, fmt.Errorf("%s is a folder without the range file 00000.txt: give the downloader's single file, or the folder it wrote with -s false: %w", path, plainPathError(err))
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			b.Size, b.ModTime = fi.Size(), fi.ModTime()
		}
		return b, checkSorted(f, b.Size, 35)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is neither a file nor a folder", path)
	}
	b.Kind = BreachedSorted
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("the portal cannot read %s: %w", path, plainPathError(err))
	}
	defer f.Close()
	return b, checkSorted(f, fi.Size(), 40)
}

func plainPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Contains tells whether password's SHA-1 is on the list (with a count
// above zero: the API's padding lines count 0).
func (b *Breached) Contains(password string) (bool, error) {
	sum := sha1.Sum([]byte(password))
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	path, key := b.Path, h
	if b.Kind == BreachedRanges {
		path, key = filepath.Join(b.Path, h[:5]+".txt"), h[5:]
	}
	f, err := os.Open(path)
	if err != nil {
		if b.Kind == BreachedRanges && errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("banned: the breached-password folder %s has no range file %s.txt (an incomplete download?)", b.Path, h[:5])
		}
		return false, fmt.Errorf("banned: open the breached-password list: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("banned: read the breached-password list: %w", err)
	}
	line, err := search(f, fi.Size(), []byte(key))
	if err != nil || line == nil {
		return false, err
	}
	_, count, _ := bytes.Cut(line, []byte(":"))
	if n, err := strconv.ParseInt(string(bytes.TrimSpace(count)), 10, 64); err == nil && n == 0 {
		return false, nil // padding
	}
	return true, nil
}

// scanBlock is where the binary search stops and reads lines in turn.
const scanBlock = 4096

// search finds the line whose key (the part before ':') is key, in a file
// of size bytes sorted by key; nil when there is none.
func search(r io.ReaderAt, size int64, key []byte) ([]byte, error) {
	// Invariant: a line with key starts in [lo, hi); lo is a line start.
	lo, hi := int64(0), size
	for hi-lo > scanBlock {
		mid := lo + (hi-lo)/2
		start, line, err := lineFrom(r, size, mid)
		if err != nil {
			return nil, err
		}
		if line == nil || start >= hi {
			hi = mid
			continue
		}
		switch c := compareKey(line, key); {
		case c == 0:
			return line, nil
		case c < 0:
			lo = start + int64(len(line)) // the next line's start, newline included
		default:
			hi = mid
		}
	}
	buf := make([]byte, min(hi-lo+200, size-lo))
	n, err := r.ReadAt(buf, lo)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("banned: read the breached-password list: %w", err)
	}
	for _, line := range bytes.SplitAfter(buf[:n], []byte("\n")) {
		switch c := compareKey(line, key); {
		case c == 0:
			return line, nil
		case c > 0:
			return nil, nil
		}
	}
	return nil, nil
}

// lineFrom returns the first whole line that starts at off or later, with
// its newline; nil at the end of the file.
func lineFrom(r io.ReaderAt, size, off int64) (int64, []byte, error) {
	start := off
	buf := make([]byte, 256)
	if off > 0 {
		n, err := r.ReadAt(buf, off-1)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, nil, fmt.Errorf("banned: read the breached-password list: %w", err)
		}
		i := bytes.IndexByte(buf[:n], '\n')
		if i < 0 {
			return 0, nil, fmt.Errorf("banned: the breached-password list has a line longer than %d bytes: not a list of hashes", len(buf))
		}
		start = off + int64(i)
	}
	if start >= size {
		return start, nil, nil
	}
	n, err := r.ReadAt(buf, start)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, fmt.Errorf("banned: read the breached-password list: %w", err)
	}
	line := buf[:n]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i+1]
	} else if start+int64(n) < size {
		return 0, nil, fmt.Errorf("banned: the breached-password list has a line longer than %d bytes: not a list of hashes", len(buf))
	}
	return start, line, nil
}

// compareKey orders a line by its key (up to ':' or the line's end, hex
// digits in either case) against key (upper case).
func compareKey(line, key []byte) int {
	k := lineKey(line)
	for i := 0; i < len(k) && i < len(key); i++ {
		c := upper(k[i])
		if c != key[i] {
			if c < key[i] {
				return -1
			}
			return 1
		}
	}
	return len(k) - len(key)
}

func lineKey(line []byte) []byte {
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		return line[:i]
	}
	return bytes.TrimRight(line, "\r\n")
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

// checkSorted reads a sample of lines spread over the file: each must be a
// key of keyLen hex digits (an optional :COUNT after it), in ascending
// order. A list sorted by count (an old download "ordered by prevalence")
// or of NTLM hashes is refused: a binary search would miss its passwords.
func checkSorted(r io.ReaderAt, size int64, keyLen int) error {
	if size == 0 {
		return errors.New("the list is empty")
	}
	const samples = 64
	var prev []byte
	for i := int64(0); i < samples; i++ {
		_, line, err := lineFrom(r, size, size*i/samples)
		if err != nil {
			return errors.New(strings.TrimPrefix(err.Error(), "banned: "))
		}
		if line == nil {
			continue
		}
		k := lineKey(line)
		if len(k) == 32 && keyLen == 40 && isHex(k) {
			return ErrBreachedNTLM
		}
		if len(k) != keyLen || !isHex(k) {
			// The line itself is not shown: the path may name any file the
			// portal can read.
			return fmt.Errorf("its lines are not %d hex digits of a SHA-1 hash (and :COUNT)", keyLen)
		}
		if prev != nil && compareKey(line, bytes.ToUpper(prev)) < 0 {
			return errors.New("the hashes are not sorted (a list ordered by prevalence?): use the downloader's file, which is sorted by hash")
		}
		prev = append(prev[:0], k...)
	}
	return nil
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// breachedCache keeps the list opened for a path, opened again when the
// file changes (a new download in its place).
type breachedCache struct {
	mu   sync.Mutex
	list *Breached
}

func (c *breachedCache) get(path string) (*Breached, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("banned: the breached-password list %s: %w", path, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.list; l != nil && l.Path == path && (l.Kind == BreachedRanges || l.Size == fi.Size() && l.ModTime.Equal(fi.ModTime())) {
		return l, nil
	}
	l, err := OpenBreached(path)
	if err != nil {
		return nil, fmt.Errorf("banned: the breached-password list %s: %w", path, err)
	}
	c.list = l
	return l, nil
}
