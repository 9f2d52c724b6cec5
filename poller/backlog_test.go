package poller

import (
	"testing"
)

// TestReviewBacklog: each cycle reports the review folder's messages and
// the arrival of the first; an idle cycle asks STATUS only, no EXAMINE.
func TestReviewBacklog(t *testing.T) {
	counts := &commandCounts{}
	e := newEnv(t, envOptions{counts: counts})
	e.appendMsg("INBOX", encryptedMessage("s1"))
	e.appendMsg("INBOX", cleanMessage("c1"))
	e.appendMsg("INBOX", encryptedMessage("s2"))
	p := e.poller(nil, nil)
	e.cycle(p)
	first := e.metrics.oldest
	if e.metrics.review != 2 || first.IsZero() {
		t.Fatalf("after the first cycle the backlog is %d, oldest %v; want 2 and a time", e.metrics.review, first)
	}
	counts.sel.Store(0)
	e.cycle(p)
	if n := counts.sel.Load(); n != 0 || e.metrics.review != 2 || !e.metrics.oldest.Equal(first) {
		t.Errorf("idle cycle: %d SELECTs, backlog %d, oldest %v; want none, 2, %v", n, e.metrics.review, e.metrics.oldest, first)
	}
	e.appendMsg("INBOX", encryptedMessage("s3"))
	e.cycle(p)
	if e.metrics.review != 3 || !e.metrics.oldest.Equal(first) {
		t.Errorf("after a third flagged message the backlog is %d, oldest %v; want 3, %v", e.metrics.review, e.metrics.oldest, first)
	}
}
