package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/mailtriage/mailtriage/config"
)

// loginTimeout bounds a whole device sign-in; the code itself usually
// expires sooner (Microsoft: 15 minutes).
const loginTimeout = 20 * time.Minute

// cmdLogin signs a mailbox in with the OAuth 2.0 device authorization grant
// (RFC 8628): it prints a URL and a code for a person to enter in any
// browser, waits, and stores the refresh token in the oauth2 block's
// refresh_token_file. It needs no browser on this host, so it runs
// headless, in the container: docker compose run --rm mailtriage login ...
func cmdLogin(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `FILE` (YAML)")
	name := fs.String("mailbox", "", "the mailbox `NAME` to sign in")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" || *name == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: mailtriage login --config FILE --mailbox NAME")
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "mailtriage login: %v\n", err)
		return exitFail
	}
	i := slices.IndexFunc(cfg.Mailboxes, func(mb config.Mailbox) bool { return mb.Name == *name })
	if i < 0 {
		fmt.Fprintf(stderr, "mailtriage login: %s has no mailbox %q\n", *path, *name)
		return exitUsage
	}
	logins, err := cfg.Mailboxes[i].OAuth2Logins()
	if err != nil {
		fmt.Fprintf(stderr, "mailtriage login: %v\n", err)
		return exitFail
	}
	if len(logins) == 0 {
		fmt.Fprintf(stderr, "mailtriage login: mailbox %s has no oauth2 block with the refresh_token flow; client_credentials and service_account need no login\n", *name)
		return exitFail
	}
	ctx, stop := signalContext(context.Background(), slog.New(slog.NewTextHandler(stderr, nil)))
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	for _, g := range logins {
		if err := g.Login(ctx, stdout); err != nil {
			fmt.Fprintf(stderr, "mailtriage login: %v\n", err)
			return exitFail
		}
	}
	return exitOK
}
