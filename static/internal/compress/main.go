// Command compress writes the precompressed variants of the portal's static
// assets: for every asset (*.css, *.js, *.svg in the folder it runs in), a
// gzip (NAME.gz) and a brotli (NAME.br) copy, each only when it is smaller
// than the asset. The server serves them by content negotiation
// (handlers/static.go). It runs as `go generate ./static/` (make generate);
// the variants are committed, like templ's output.
//
// With -check it writes nothing and fails when a variant is missing, no
// longer decompresses to its asset, is not smaller than it, or has no asset
// (make lint). It compares content, not bytes, so that a new version of a
// compressor does not make fresh files look stale.
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/andybalholm/brotli"
)

// assetPatterns are the files that get variants: the patterns static/embed.go embeds.
var assetPatterns = []string{"*.css", "*.js", "*.svg"}

// encoding is one precompressed variant.
type encoding struct {
	ext        string // file name suffix
	compress   func([]byte) ([]byte, error)
	decompress func([]byte) ([]byte, error)
}

var encodings = []encoding{
	{".gz", gzipBytes, func(b []byte) ([]byte, error) {
		r, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}},
	{".br", brotliBytes, func(b []byte) ([]byte, error) { return io.ReadAll(brotli.NewReader(bytes.NewReader(b))) }},
}

func main() {
	check := flag.Bool("check", false, "write nothing; fail when a committed variant is missing or stale")
	dir := flag.String("dir", ".", "the static folder")
	flag.Parse()
	var err error
	if *check {
		err = checkDir(os.DirFS(*dir), *dir)
	} else {
		err = writeDir(*dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compress:", err)
		os.Exit(1)
	}
}

// assets lists the asset files of fsys in name order.
func assets(fsys fs.FS) ([]string, error) {
	var names []string
	for _, p := range assetPatterns {
		m, err := fs.Glob(fsys, p)
		if err != nil {
			return nil, err
		}
		names = append(names, m...)
	}
	slices.Sort(names)
	return names, nil
}

// writeDir writes every variant that is smaller than its asset and removes
// the others, and any variant whose asset is gone.
func writeDir(dir string) error {
	fsys := os.DirFS(dir)
	names, err := assets(fsys)
	if err != nil {
		return err
	}
	for _, name := range names {
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		for _, e := range encodings {
			out, err := e.compress(src)
			if err != nil {
				return fmt.Errorf("%s%s: %w", name, e.ext, err)
			}
			path := filepath.Join(dir, name+e.ext)
			if len(out) >= len(src) {
				if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				continue
			}
			if err := os.WriteFile(path, out, 0o644); err != nil {
				return err
			}
		}
	}
	orphans, err := orphanVariants(fsys, names)
	if err != nil {
		return err
	}
	for _, o := range orphans {
		if err := os.Remove(filepath.Join(dir, o)); err != nil {
			return err
		}
	}
	return nil
}

// checkDir reports every variant that writeDir would change (by content).
func checkDir(fsys fs.FS, dir string) error {
	names, err := assets(fsys)
	if err != nil {
		return err
	}
	var problems []string
	for _, name := range names {
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		for _, e := range encodings {
			vname := name + e.ext
			got, err := fs.ReadFile(fsys, vname)
			if errors.Is(err, fs.ErrNotExist) {
				if fresh, err := e.compress(src); err == nil && len(fresh) < len(src) {
					problems = append(problems, vname+" is missing")
				}
				continue
			}
			if err != nil {
				return err
			}
			plain, err := e.decompress(got)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("%s does not decompress: %v", vname, err))
			case !bytes.Equal(plain, src):
				problems = append(problems, vname+" is stale (not the content of "+name+")")
			case len(got) >= len(src):
				problems = append(problems, vname+" is not smaller than "+name)
			}
		}
	}
	orphans, err := orphanVariants(fsys, names)
	if err != nil {
		return err
	}
	for _, o := range orphans {
		problems = append(problems, o+" has no asset")
	}
	if len(problems) > 0 {
		return fmt.Errorf("precompressed assets in %s are not fresh: run 'make generate' and commit the result:\n  %s",
			dir, strings.Join(problems, "\n  "))
	}
	return nil
}

// orphanVariants lists variant files whose asset is not among names.
func orphanVariants(fsys fs.FS, names []string) ([]string, error) {
	var out []string
	for _, e := range encodings {
		m, err := fs.Glob(fsys, "*"+e.ext)
		if err != nil {
			return nil, err
		}
		for _, v := range m {
			if !slices.Contains(names, strings.TrimSuffix(v, e.ext)) {
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// gzipBytes compresses at the best level with an empty header (no name, no
// time), so that the same input gives the same file.
func gzipBytes(src []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(src); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func brotliBytes(src []byte) ([]byte, error) {
	var buf bytes.Buffer
	w := brotli.NewWriterLevel(&buf, brotli.BestCompression)
	if _, err := w.Write(src); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
