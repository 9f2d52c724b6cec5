package main

import (
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/poller"
	"github.com/robfig/cron/v3"
)

func TestSpacing(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 30, 0, time.UTC)
	tests := []struct {
		schedule string
		want     time.Duration
	}{
		{"@every 60s", 30 * time.Second},
		{"@every 1h", 30 * time.Minute},
		{"*/5 * * * *", 150 * time.Second},
		{"@hourly", 30 * time.Minute},
	}
	for _, tt := range tests {
		sched, err := cron.ParseStandard(tt.schedule)
		if err != nil {
			t.Fatalf("%q: %v", tt.schedule, err)
		}
		if got := spacing(sched, now); got != tt.want {
			t.Errorf("spacing(%q) = %v, want %v", tt.schedule, got, tt.want)
		}
	}
}

// run --once's exit code from the reports of cycles that ended without an
// error (a failed cycle exits 1 before this).
func TestOnceExit(t *testing.T) {
	finished := poller.Report{Mailbox: "a"}
	leased := poller.Report{Mailbox: "b", Skipped: true, SkipReason: poller.SkipLeaseHeld}
	paused := poller.Report{Mailbox: "c", ForwardingPaused: true}
	tests := []struct {
		name    string
		reports []poller.Report
		want    int
	}{
		{"every mailbox finished", []poller.Report{finished, finished}, exitOK},
		{"one leased by another worker", []poller.Report{finished, leased}, exitTempFail},
		{"SMTP trouble paused forwarding", []poller.Report{paused, finished}, exitUnavailable},
		{"paused outranks leased, in any order", []poller.Report{leased, paused}, exitUnavailable},
		{"paused outranks leased after it", []poller.Report{paused, leased}, exitUnavailable},
	}
	for _, tt := range tests {
		if got := onceExit(tt.reports); got != tt.want {
			t.Errorf("%s: onceExit = %d, want %d", tt.name, got, tt.want)
		}
	}
}
