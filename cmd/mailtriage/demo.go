package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/mailtriage/mailtriage/config"
	"github.com/mailtriage/mailtriage/demo"
	"github.com/mailtriage/mailtriage/poller"
)

// cmdDemo runs the whole pipeline on the bundled sample mailbox through the
// same runConfig as `mailtriage run --once`.
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: mailtriage demo")
		return exitUsage
	}
	log, err := newLogger(stderr, "text", "warn")
	if err != nil {
		fmt.Fprintf(stderr, "mailtriage demo: %v\n", err)
		return exitFail
	}
	ctx, stop := signalContext(context.Background(), log)
	defer stop()
	if err := demo.Run(ctx, stdout, demoRunOnce(stderr)); err != nil {
		fmt.Fprintf(stderr, "mailtriage demo: %v\n", err)
		return exitFail
	}
	return exitOK
}

// demoRunOnce is `mailtriage run --once --config PATH` for the demo, with
// logs on stderr as the config sets them.
func demoRunOnce(stderr io.Writer) demo.RunOnce {
	return func(ctx context.Context, path string) ([]poller.Report, error) {
		cfg, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		log, err := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)
		if err != nil {
			return nil, err
		}
		return runConfig(ctx, cfg, true, log)
	}
}
