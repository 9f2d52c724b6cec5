package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/scan"
)

// cmdScan classifies files: single messages, folders of them, Maildir and
// mbox. Exit 0 when every input was read.
func cmdScan(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jsonOut := fs.Bool("json", false, "one JSON object per message per line (DESIGN.md §3)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: mailtriage scan [--json] PATH...")
		return exitUsage
	}
	if _, err := scan.Run(context.Background(), analyzer.New(nil), analyzer.DefaultPolicy(), fs.Args(), *jsonOut, stdout); err != nil {
		fmt.Fprintf(stderr, "mailtriage scan: %v\n", err)
		return exitFail
	}
	return exitOK
}
