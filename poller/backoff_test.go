package poller

import (
	"errors"
	"testing"
	"time"
)

// The forwarding backoff doubles from 30 s to the cap and clears on success.
func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		max      time.Duration
		failures int
		want     time.Duration
	}{
		{"first failure", 30 * time.Minute, 1, 30 * time.Second},
		{"doubles", 30 * time.Minute, 3, 2 * time.Minute},
		{"capped", 30 * time.Minute, 12, 30 * time.Minute},
		{"cap below the start", 10 * time.Second, 2, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(Mailbox{MaxBackoff: tc.max}, nil, nil, nil, nil, nil)
			now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			for range tc.failures {
				p.forwardFailedTemporarily(now, errors.New("451 later"))
			}
			ok, until := p.forwardingAllowed(now)
			if ok || until.Sub(now) != tc.want {
				t.Fatalf("after %d failures: allowed %v, paused for %v; want %v", tc.failures, ok, until.Sub(now), tc.want)
			}
			if ok, _ := p.forwardingAllowed(now.Add(tc.want)); !ok {
				t.Fatal("still paused when the backoff has passed")
			}
			p.forwardSucceeded()
			if ok, _ := p.forwardingAllowed(now); !ok || p.backoff.delay != 0 {
				t.Fatalf("success did not clear the backoff: %+v", p.backoff)
			}
		})
	}
}
