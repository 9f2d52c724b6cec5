package metrics

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestReviewBacklog: the review folder's size and the age of its oldest
// message, the age taken at scrape time; an empty folder shows age 0.
func TestReviewBacklog(t *testing.T) {
	m := New()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	base := serve(t, m, nil, nil)
	m.Review("support", 3, now.Add(-90*time.Minute))
	m.Review("sales", 0, time.Time{})
	m.Review("future", 1, now.Add(time.Hour)) // a server clock ahead of ours
	tests := []struct{ line, why string }{
		{`mailtriage_review_messages{mailbox="support"} 3`, "three waiting"},
		{`mailtriage_review_oldest_age_seconds{mailbox="support"} 5400`, "the oldest arrived 90 minutes ago"},
		{`mailtriage_review_messages{mailbox="sales"} 0`, "an empty folder"},
		{`mailtriage_review_oldest_age_seconds{mailbox="sales"} 0`, "an empty folder has no age"},
		{`mailtriage_review_oldest_age_seconds{mailbox="future"} 0`, "no negative age"},
	}
	check := func() {
		code, body := get(t, base+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics status %d", code)
		}
		for _, tc := range tests {
			if !strings.Contains(body, tc.line+"\n") {
				t.Errorf("%s: /metrics lacks %q", tc.why, tc.line)
			}
		}
	}
	check()
	now = now.Add(10 * time.Minute)
	tests[1] = struct{ line, why string }{`mailtriage_review_oldest_age_seconds{mailbox="support"} 6000`, "ten minutes later, without a new cycle"}
	check()
}
