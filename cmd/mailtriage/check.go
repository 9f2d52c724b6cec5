package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/mailtriage/mailtriage/config"
	"github.com/mailtriage/mailtriage/store"
)

// checkTimeout bounds each connection check.
const checkTimeout = 30 * time.Second

// checkLine is one line of `mailtriage check`.
type checkLine struct {
	name   string
	detail string
	err    error
}

// cmdCheck validates the config and tries every connection: the store, and
// per mailbox IMAP login, folders and the SMTP server; with --send-test,
// a test message per mailbox on route smtp (sendtest.go). One line per check;
// exit 1 on any failure. No line ever holds a secret: the config holds none,
// and credentials travel as secret.Secret, which prints as [redacted].
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `FILE` (YAML)")
	sendTests := fs.Bool("send-test", false, "per mailbox on route smtp, send one labelled test message with a foreign From to forward.to and explain the answer")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: mailtriage check --config FILE [--send-test]")
		return exitUsage
	}
	failed := false
	report := func(l checkLine) {
		if l.err != nil {
			failed = true
			fmt.Fprintf(stdout, "FAIL  %s: %v\n", l.name, l.err)
			return
		}
		fmt.Fprintf(stdout, "ok    %s: %s\n", l.name, l.detail)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		report(checkLine{name: "config " + *path, err: err})
		return exitFail
	}
	report(checkLine{name: "config " + *path, detail: fmt.Sprintf("%d mailboxes", len(cfg.Mailboxes))})
	ctx, stop := signalContext(context.Background(), slog.New(slog.NewTextHandler(stderr, nil)))
	defer stop()
	for _, l := range runChecks(ctx, cfg, *sendTests) {
		report(l)
	}
	if failed {
		return exitFail
	}
	return exitOK
}

// runChecks tries the store, then each mailbox's IMAP server and folders and
// its SMTP server; with sendTests, it also sends each mailbox's test
// message (sendTest).
func runChecks(ctx context.Context, cfg *config.Config, sendTests bool) []checkLine {
	var lines []checkLine
	sctx, cancel := context.WithTimeout(ctx, checkTimeout)
	st, err := openStore(sctx, cfg.State, false)
	detail := "answers"
	if err == nil {
		err = st.Ping(sctx)
		defer st.Close()
	} else if errors.Is(err, store.ErrLocked) {
		// A running worker holds the bbolt file: it exists and works.
		detail, err = "in use by a running worker", nil
	}
	cancel()
	lines = append(lines, checkLine{name: "store " + cfg.State.URL, detail: detail, err: err})

	log := slog.New(slog.DiscardHandler)
	// Check touches no state: the pollers get none.
	pollers, fws, err := mailboxes(cfg, nil, nil, false, log)
	if err != nil {
		return append(lines, checkLine{name: "mailboxes", err: err})
	}
	for i, p := range pollers {
		mb := cfg.Mailboxes[i]
		ictx, cancel := context.WithTimeout(ctx, checkTimeout)
		for _, r := range p.Check(ictx) {
			lines = append(lines, checkLine{name: r.Name, detail: r.Detail, err: r.Err})
		}
		cancel()
		fctx, cancel := context.WithTimeout(ctx, checkTimeout)
		hello, err := checkRoute(fctx, fws[i])
		cancel()
		route, tls := routeLabel(mb)
		line := checkLine{
			name:   fmt.Sprintf("mailbox %s: %s", mb.Name, route),
			detail: fmt.Sprintf("accepts mail from %s to %d recipients (%s, EHLO %s)", mb.Forward.From, len(mb.Forward.To), tls, hello),
			err:    err,
		}
		if fi := mb.Forward.IMAP; mb.Forward.Route == config.RouteIMAP {
			line.name = fmt.Sprintf("mailbox %s: imap route %s", mb.Name, fi.Address)
			line.detail = fmt.Sprintf("folder %s opens for %s (%s)", fi.Folder, fi.Username, fi.TLS)
		}
		lines = append(lines, line)
		if sendTests {
			sctx, cancel := context.WithTimeout(ctx, checkTimeout)
			lines = append(lines, sendTest(sctx, mb))
			cancel()
		}
		if mb.Notify != nil && mb.Notify.SMTP != nil {
			lines = append(lines, checkNoticeRoute(ctx, mb))
		}
	}
	return lines
}
