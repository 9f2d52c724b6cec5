// Command mailtriage watches a helpdesk's forwarding mailbox over IMAPS,
// classifies each new message (end-to-end encryption, transport TLS, private
// relays, thread), forwards clean mail to the helpdesk over SMTP and flags
// the rest into a review folder. It never decrypts and never unmasks.
//
// Subcommands (DESIGN.md §3):
//
//	mailtriage demo
//	mailtriage scan [--json] PATH...
//	mailtriage run --config FILE [--once] [--dry-run [--limit N] [--since DATE] [--json]] [--log-format text|json]
//	mailtriage check --config FILE [--send-test]
//	mailtriage login --config FILE --mailbox NAME
//	mailtriage healthcheck [--url URL]
//	mailtriage version
//
// main only parses arguments and turns signals into context cancellation;
// the wiring of the packages lives in worker.go.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and something failed
	exitUsage = 2 // bad arguments
	// run --once: forwarding was paused by SMTP trouble (a connection
	// error, a 4xx), so clean mail waits; sysexits.h EX_UNAVAILABLE.
	exitUnavailable = 69
	// run --once: a mailbox was skipped, its lease held by another worker
	// (a replica, or a killed worker's until its lease expires); sysexits.h
	// EX_TEMPFAIL: try again later.
	exitTempFail = 75
)

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"demo", "run the whole pipeline on a bundled sample mailbox and print what happened", cmdDemo},
		{"scan", "classify .eml files, folders of them, Maildir and mbox", cmdScan},
		{"run", "the worker: poll, classify, forward or flag", cmdRun},
		{"check", "validate the config and try every connection", cmdCheck},
		{"login", "sign a mailbox in with OAuth 2.0 (device code) and store its refresh token", cmdLogin},
		{"healthcheck", "exit 0 when the running worker's /readyz answers OK", cmdHealthcheck},
		{"version", "print version, commit and Go version", cmdVersion},
	}
}

// dispatch runs the subcommand named by args[0] and returns the exit code.
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "mailtriage: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mailtriage COMMAND [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\n`mailtriage COMMAND -h` lists a command's flags.")
}
