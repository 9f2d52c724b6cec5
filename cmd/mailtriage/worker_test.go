package main

import (
	"testing"
	"time"
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
		{"not a schedule", 0},
	}
	for _, tt := range tests {
		if got := spacing(tt.schedule, now); got != tt.want {
			t.Errorf("spacing(%q) = %v, want %v", tt.schedule, got, tt.want)
		}
	}
}
