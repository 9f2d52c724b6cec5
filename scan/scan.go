// Package scan classifies messages stored in files: single messages (.eml),
// folders of them (recursively), Maildir folders and mbox files. It is the
// library behind `mailtriage scan [--json] PATH...`.
//
// Every message is streamed through analyzer.FromRaw; scan never holds a
// whole mbox or message in memory, never decrypts and never modifies its
// inputs. Output is a readable table or, with JSON, exactly one object per
// message per line as DESIGN.md section 3 spells `scan --json`.
//
// Formats followed: RFC 5322 messages; Maildir (cur/new/tmp, as in
// https://cr.yp.to/proto/maildir.html); mbox in its mboxrd form (RFC 4155,
// From_ separator lines, ">From " quoting undone by one level).
package scan

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mailtriage/mailtriage/analyzer"
)

// Summary counts what a Run saw.
type Summary struct {
	Messages int // messages classified
	Flagged  int // messages the policy flags
	Failed   int // inputs or messages that could not be read
}

// Run classifies every message found under paths with an and p and writes
// one line per message to w: JSON lines when jsonOut is set, else a table
// with a header line and a closing count. An input
// that cannot be read is skipped, counted in Summary.Failed and reported in
// the returned error, and the other inputs are still classified; the caller
// exits non-zero when the error is not nil. Run stops early only when ctx is
// done or w fails.
func Run(ctx context.Context, an *analyzer.Analyzer, p analyzer.Policy, paths []string, jsonOut bool, w io.Writer) (Summary, error) {
	s := &scanner{an: an, policy: p, out: NewOutput(w, jsonOut)}
	for _, path := range paths {
		if err := ctx.Err(); err != nil {
			return s.out.sum, errors.Join(append(s.errs, err)...)
		}
		if err := s.path(ctx, path); err != nil {
			return s.out.sum, errors.Join(append(s.errs, err)...)
		}
	}
	sum, err := s.out.Finish()
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("write scan output: %w", err))
	}
	return sum, errors.Join(s.errs...)
}

// scanner holds one Run's state. Input errors collect in errs; the error a
// method returns is fatal (context done, output failed).
type scanner struct {
	an     *analyzer.Analyzer
	policy analyzer.Policy
	out    *Output // counts the messages; inputFailed counts the failures into it
	errs   []error
}

// inputFailed records an input that could not be read.
func (s *scanner) inputFailed(err error) {
	s.out.sum.Failed++
	s.errs = append(s.errs, err)
}

// path scans one command-line argument: a file or a folder.
func (s *scanner) path(ctx context.Context, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		s.inputFailed(fmt.Errorf("scan %s: %w", path, err))
		return nil
	}
	if !fi.IsDir() {
		return s.file(ctx, path)
	}
	if isMaildir(path) {
		return s.maildir(ctx, path)
	}
	return s.folder(ctx, path)
}

// folder walks dir recursively in lexical order. Maildirs inside it are read
// as Maildirs; other files are read when their name ends in .eml or .mbox.
func (s *scanner) folder(ctx context.Context, dir string) error {
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			s.inputFailed(fmt.Errorf("scan %s: %w", path, err))
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() {
			if path != dir && isMaildir(path) {
				if err := s.maildir(ctx, path); err != nil {
					return err
				}
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".eml", ".mbox":
			return s.file(ctx, path)
		}
		return nil
	})
}

// isMaildir reports whether dir holds the cur, new and tmp folders.
func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new", "tmp"} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// maildir reads the messages in dir/cur and dir/new, each folder in lexical
// order; tmp holds deliveries in progress and is skipped, as are dot files.
func (s *scanner) maildir(ctx context.Context, dir string) error {
	for _, sub := range []string{"cur", "new"} {
		folder := filepath.Join(dir, sub)
		entries, err := os.ReadDir(folder)
		if err != nil {
			s.inputFailed(fmt.Errorf("read maildir folder %s: %w", folder, err))
			continue
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := s.file(ctx, filepath.Join(folder, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// file reads path as an mbox when it starts with a From_ line or its name
// ends in .mbox, else as one message.
func (s *scanner) file(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		s.inputFailed(fmt.Errorf("scan %s: %w", path, err))
		return nil
	}
	defer f.Close()
	// Peek rather than seek, so pipes and other unseekable files work too.
	br := bufio.NewReader(f)
	head, err := br.Peek(len(fromLinePrefix))
	if err != nil && !errors.Is(err, io.EOF) {
		s.inputFailed(fmt.Errorf("scan %s: %w", path, err))
		return nil
	}
	if string(head) == fromLinePrefix || strings.EqualFold(filepath.Ext(path), ".mbox") {
		return s.mbox(ctx, path, br)
	}
	return s.classify(path, br)
}

// mbox classifies every message of the mbox in r, naming them path#N.
func (s *scanner) mbox(ctx context.Context, path string, r io.Reader) error {
	mb := NewMboxReader(r)
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		msg, err := mb.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			s.inputFailed(fmt.Errorf("read mbox %s: %w", path, err))
			return nil
		}
		if err := s.classify(fmt.Sprintf("%s#%d", path, n), msg); err != nil {
			return err
		}
	}
}

// classify builds the model of the message in r, classifies it and prints
// the verdict. A read error counts against the input; an output error is
// returned.
func (s *scanner) classify(name string, r io.Reader) error {
	m, err := analyzer.FromRaw(r)
	if err != nil {
		s.inputFailed(fmt.Errorf("read message %s: %w", name, err))
		return nil
	}
	if err := s.out.Message(name, s.an.Classify(m, s.policy)); err != nil {
		return fmt.Errorf("write scan output: %w", err)
	}
	return nil
}
