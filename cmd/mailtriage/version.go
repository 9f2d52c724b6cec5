package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at build time: -ldflags "-X main.version=… -X main.commit=…".
var (
	version = ""
	commit  = ""
)

// buildInfo returns the version and commit: the ones stamped at link time,
// else the module version and VCS revision Go recorded in the binary.
func buildInfo() (ver, rev string, dirty bool) {
	ver, rev = version, commit
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return orDefault(ver, "dev"), orDefault(rev, "unknown"), false
	}
	if ver == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		ver = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if rev == "" {
				rev = s.Value
			}
		case "vcs.modified":
			dirty = commit == "" && s.Value == "true"
		}
	}
	return orDefault(ver, "dev"), orDefault(rev, "unknown"), dirty
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "mailtriage version: takes no arguments")
		return exitUsage
	}
	ver, rev, dirty := buildInfo()
	if dirty {
		rev += " (modified)"
	}
	fmt.Fprintf(stdout, "mailtriage %s\ncommit %s\n%s %s/%s\n", ver, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
