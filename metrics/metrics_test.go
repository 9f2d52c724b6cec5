package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/robfig/cron/v3"
)

// fakeStore answers Ping with whatever err holds.
type fakeStore struct {
	mu  sync.Mutex
	err error
}

func (s *fakeStore) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *fakeStore) fail(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// serve starts the metrics server on a free loopback port and returns its
// base URL; the server stops when the test ends.
func serve(t *testing.T, m *Metrics, mbs []Mailbox, st Pinger) string {
	t.Helper()
	h, err := m.Handler(mbs, st)
	if err != nil {
		t.Fatalf("Handler: %v", err)
	}
	srv, err := Listen("127.0.0.1:0", h, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + srv.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func TestScrapeAfterCycle(t *testing.T) {
	m := New()
	base := serve(t, m, nil, nil)

	// What a poller reports over one cycle of "support" and one of "sales".
	m.Lease("support", true)
	m.Message("support", analyzer.ClassClean, "forwarded")
	m.Message("support", analyzer.ClassClean, "forwarded")
	m.Message("support", analyzer.ClassSigned, "forwarded")
	m.Message("support", analyzer.ClassEncrypted, "flagged")
	m.Message("support", analyzer.ClassClean, "forward-failed")
	m.ForwardFailed("support", "rejected")
	m.StoreError("support")
	m.Cycle("support", 1500*time.Millisecond, nil)
	m.Lease("support", false)
	m.Lease("sales", true)
	m.Cycle("sales", 200*time.Millisecond, errors.New("login: connection refused"))

	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics status %d", code)
	}
	for _, tc := range []struct{ line, why string }{
		{`mailtriage_messages_total{action="forwarded",class="clean",mailbox="support"} 2`, "two clean messages forwarded"},
		{`mailtriage_messages_total{action="forwarded",class="signed",mailbox="support"} 1`, "one signed message forwarded"},
		{`mailtriage_messages_total{action="flagged",class="encrypted",mailbox="support"} 1`, "one encrypted message flagged"},
		{`mailtriage_messages_total{action="forward-failed",class="clean",mailbox="support"} 1`, "one forward failed"},
		{`mailtriage_forward_failures_total{kind="rejected",mailbox="support"} 1`, "failure counted by kind"},
		{`mailtriage_store_errors_total{mailbox="support"} 1`, "store error counted"},
		{`mailtriage_cycle_duration_seconds_count{mailbox="support"} 1`, "successful cycle observed"},
		{`mailtriage_cycle_duration_seconds_sum{mailbox="support"} 1.5`, "cycle duration in seconds"},
		{`mailtriage_cycle_duration_seconds_count{mailbox="sales"} 1`, "failed cycle observed too"},
		{`mailtriage_lease_held{mailbox="support"} 0`, "lease released after the cycle"},
		{`mailtriage_lease_held{mailbox="sales"} 1`, "lease held"},
		{`go_goroutines `, "runtime collector registered"},
	} {
		if !strings.Contains(body, tc.line) {
			t.Errorf("%s: /metrics lacks %q", tc.why, tc.line)
		}
	}
	if !strings.Contains(body, `mailtriage_last_success_timestamp_seconds{mailbox="support"} `) {
		t.Errorf("no last success timestamp for support")
	}
	if strings.Contains(body, `mailtriage_last_success_timestamp_seconds{mailbox="sales"}`) {
		t.Errorf("failed cycle of sales set a last success timestamp")
	}

	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
}

func TestReadyz(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	m := New()
	m.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	st := &fakeStore{}
	base := serve(t, m, []Mailbox{
		{Name: "support", Schedule: cron.Every(time.Minute)},
		{Name: "sales", Schedule: everyFiveMinutes(t)},
	}, st)

	steps := []struct {
		name  string
		do    func()
		ready bool
		says  string // a fragment the 503 body must hold
	}{
		{"nothing ran yet", func() {}, false, "mailbox support: no successful cycle yet"},
		{"only one mailbox succeeded", func() { m.Cycle("support", time.Second, nil) }, false, "mailbox sales: no successful cycle yet"},
		{"failed cycle does not count", func() { m.Cycle("sales", time.Second, errors.New("boom")) }, false, "mailbox sales"},
		{"both succeeded", func() { m.Cycle("sales", time.Second, nil) }, true, ""},
		{"store down", func() { st.fail(errors.New("dial tcp 127.0.0.1:6379: connection refused")) }, false, "store: dial tcp"},
		{"store back", func() { st.fail(nil) }, true, ""},
		{"within three 1m intervals", func() { advance(2*time.Minute + 59*time.Second) }, true, ""},
		{"support stale after three 1m intervals", func() { advance(2 * time.Second) }, false, "mailbox support: last successful cycle 3m1s ago"},
		{"support succeeds again", func() { m.Cycle("support", time.Second, nil) }, true, ""},
		{"sales stale after three 5m intervals", func() { advance(15*time.Minute + time.Second); m.Cycle("support", time.Second, nil) }, false, "mailbox sales: last successful cycle"},
		{"own cycle that fails while holding the lease does not count", func() {
			m.Lease("sales", true)
			m.Lease("sales", false)
			m.Cycle("sales", time.Second, errors.New("select INBOX: timeout"))
		}, false, "mailbox sales"},
		{"another replica holds the sales lease: skipped, but alive", func() { m.Lease("sales", false) }, true, ""},
		{"support's forwarding paused less than one 1m interval ago", func() {
			m.ForwardingPaused("support", m.now())
			advance(59 * time.Second)
			m.Cycle("support", time.Second, nil)
		}, true, ""},
		{"support's forwarding paused longer than one interval, though its cycles succeed", func() {
			advance(2 * time.Second)
			m.Cycle("support", time.Second, nil)
		}, false, "mailbox support: forwarding paused by SMTP trouble for 1m1s"},
		{"support forwards again", func() { m.ForwardingPaused("support", time.Time{}) }, true, ""},
	}
	for _, s := range steps {
		s.do()
		code, body := get(t, base+"/readyz")
		if s.ready && code != http.StatusOK {
			t.Errorf("%s: /readyz %d %q, want 200", s.name, code, body)
		}
		if !s.ready {
			if code != http.StatusServiceUnavailable {
				t.Errorf("%s: /readyz %d, want 503", s.name, code)
			}
			if !strings.Contains(body, s.says) {
				t.Errorf("%s: /readyz body %q lacks %q", s.name, body, s.says)
			}
		}
	}
}

// everyFiveMinutes is a cron-field schedule, whose intervals are not a
// constant delay.
func everyFiveMinutes(t *testing.T) cron.Schedule {
	t.Helper()
	s, err := cron.ParseStandard("*/5 * * * *")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHandlerRejectsMissingSchedule(t *testing.T) {
	_, err := New().Handler([]Mailbox{{Name: "support"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "support") {
		t.Fatalf("Handler without a schedule: %v, want an error naming the mailbox", err)
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	srv, err := Listen("127.0.0.1:0", http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10 s of cancel")
	}
}
