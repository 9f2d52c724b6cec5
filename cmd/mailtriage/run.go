package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/mailtriage/mailtriage/config"
	"github.com/mailtriage/mailtriage/poller"
)

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `FILE` (YAML)")
	once := fs.Bool("once", false, "run one cycle of every mailbox and exit: 0 when every mailbox finished, 75 when one was leased by another worker, 69 when SMTP trouble paused forwarding, 1 on a failure")
	format := fs.String("log-format", "", "log format: text or json (default: the config's log.format)")
	dry := addDryRunFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	dryOpt, dryErr := dry.options()
	if *path == "" || fs.NArg() > 0 || dryErr != nil {
		if dryErr != nil {
			fmt.Fprintf(stderr, "mailtriage run: %v\n", dryErr)
		}
		fmt.Fprintln(stderr, "usage: mailtriage run --config FILE [--once] [--dry-run [--limit N] [--since DATE] [--json]] [--log-format text|json]")
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "mailtriage run: %v\n", err)
		return exitFail
	}
	if *format == "" {
		*format = cfg.Log.Format
	}
	log, err := newLogger(stderr, *format, cfg.Log.Level)
	if err != nil {
		fmt.Fprintf(stderr, "mailtriage run: %v\n", err)
		return exitUsage
	}
	ctx, stop := signalContext(context.Background(), log)
	defer stop()
	if *dry.on {
		if err := dryRun(ctx, cfg, dryOpt, *dry.json, stdout, log); err != nil {
			log.Error("dry run failed", "error", err)
			return exitFail
		}
		return exitOK
	}
	reports, err := runConfig(ctx, cfg, *once, log)
	if err != nil {
		log.Error("run failed", "error", err)
		return exitFail
	}
	return onceExit(reports)
}

// onceExit is the exit code of `run --once` whose cycles all ended without
// an error: 0 only when every mailbox finished its cycle; exitUnavailable
// when SMTP trouble paused forwarding in one; else exitTempFail when one
// was skipped because another worker held its lease. A failed cycle
// (exitFail) outranks both.
func onceExit(reports []poller.Report) int {
	code := exitOK
	for _, rep := range reports {
		switch {
		case rep.ForwardingPaused:
			code = exitUnavailable
		case rep.Skipped && code == exitOK:
			code = exitTempFail
		}
	}
	return code
}

// runConfig is `mailtriage run`: with once, one cycle of every mailbox and
// its reports; else the pollers on their schedules until ctx ends. The demo
// calls it too, so that it shows the real path.
func runConfig(ctx context.Context, cfg *config.Config, once bool, log *slog.Logger) (reports []poller.Report, err error) {
	w, err := newWorker(ctx, cfg, !once, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := w.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	if once {
		return w.once(ctx)
	}
	ver, rev, _ := buildInfo()
	log.Info("mailtriage running", "version", ver, "commit", rev, "mailboxes", len(cfg.Mailboxes), "metrics", cfg.Metrics.Listen)
	err = w.serve(ctx)
	log.Info("mailtriage stopped")
	return nil, err
}
