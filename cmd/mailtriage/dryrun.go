package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailtriage/mailtriage/config"
	"github.com/mailtriage/mailtriage/poller"
	"github.com/mailtriage/mailtriage/scan"
	"github.com/mailtriage/mailtriage/store"
)

// dryRunFlags are the flags of `mailtriage run --dry-run`.
type dryRunFlags struct {
	on    *bool
	limit *int
	since *string
	json  *bool
}

func addDryRunFlags(fs *flag.FlagSet) *dryRunFlags {
	return &dryRunFlags{
		on:    fs.Bool("dry-run", false, "classify what one cycle would read and print what it would do; changes nothing (implies --once)"),
		limit: fs.Int("limit", 0, "with --dry-run: only the last `N` messages of each folder, whatever the state"),
		since: fs.String("since", "", "with --dry-run: only the messages delivered on or after `DATE` (YYYY-MM-DD), whatever the state"),
		json:  fs.Bool("json", false, "with --dry-run: one JSON object per message per line, as `scan --json`"),
	}
}

// options checks the flags and returns what the dry run reads; an error
// is a usage error.
func (f *dryRunFlags) options() (poller.DryRunOptions, error) {
	var opt poller.DryRunOptions
	if !*f.on {
		if *f.limit != 0 || *f.since != "" || *f.json {
			return opt, errors.New("--limit, --since and --json need --dry-run")
		}
		return opt, nil
	}
	if *f.limit < 0 {
		return opt, fmt.Errorf("--limit %d: want a positive number", *f.limit)
	}
	opt.Limit = *f.limit
	if *f.since != "" {
		t, err := time.Parse(time.DateOnly, *f.since)
		if err != nil {
			return opt, fmt.Errorf("--since %q: want a date such as 2026-11-30", *f.since)
		}
		opt.Since = t
	}
	return opt, nil
}

// dryRun is `mailtriage run --dry-run`: every mailbox in config order,
// each message's verdict and what a cycle would do with it, written to w
// as `scan` writes its table or JSON lines. The state is opened read-only
// (a bbolt file that does not exist yet reads as empty), the folders are
// examined, nothing is sent and no lease is taken. The error names every
// mailbox that failed; the others are still shown.
func dryRun(ctx context.Context, cfg *config.Config, opt poller.DryRunOptions, jsonOut bool, w io.Writer, log *slog.Logger) error {
	st, err := openDryRunStore(ctx, cfg.State, log)
	if err != nil {
		return err
	}
	defer st.Close()
	pollers, _, err := mailboxes(cfg, st, nil, false, log)
	if err != nil {
		return err
	}
	out := scan.NewOutput(w, jsonOut)
	var errs []error
	for i, p := range pollers {
		name := cfg.Mailboxes[i].Name
		for e, err := range p.DryRun(ctx, opt) {
			if err != nil {
				errs = append(errs, fmt.Errorf("mailbox %s: %w", name, err))
				break
			}
			if err := out.Message(fmt.Sprintf("%s:%s#%d", name, e.Folder, e.UID), e.Verdict); err != nil {
				return fmt.Errorf("write dry run output: %w", err)
			}
		}
	}
	if _, err := out.Finish(); err != nil {
		return fmt.Errorf("write dry run output: %w", err)
	}
	log.Info("dry run done: nothing was changed on the servers or in the state")
	return errors.Join(errs...)
}

// openDryRunStore opens the state read-only. A bbolt file that does not
// exist yet (a first try on a mailbox) is an empty state: a throw-away
// file in a temporary directory stands in for it, and the configured path
// is not created.
func openDryRunStore(ctx context.Context, s config.State, log *slog.Logger) (store.Store, error) {
	st, err := openStore(ctx, s, true)
	if err == nil || !strings.HasPrefix(s.URL, "file:") || !errors.Is(err, fs.ErrNotExist) {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("%w: a running worker holds the state file; a dry run needs it closed (or a Redis state)", err)
		}
		return st, err
	}
	log.Info("no state file yet: every message counts as new", "state", s.URL)
	dir, err := os.MkdirTemp("", "mailtriage-dry-run-")
	if err != nil {
		return nil, fmt.Errorf("make an empty state: %w", err)
	}
	st, err = store.Open(ctx, "file:"+filepath.Join(dir, "state.db"), store.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("make an empty state: %w", err)
	}
	return removingStore{Store: st, dir: dir}, nil
}

// removingStore is a throw-away store that removes its directory on Close.
type removingStore struct {
	store.Store
	dir string
}

func (s removingStore) Close() error {
	err := s.Store.Close()
	return errors.Join(err, os.RemoveAll(s.dir))
}
