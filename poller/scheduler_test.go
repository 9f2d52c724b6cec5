package poller

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/robfig/cron/v3"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/secret"
)

// addUser adds another account with an INBOX holding raw and returns an
// edit that points a mailbox at it.
func (e *env) addUser(name, raw string) func(*Mailbox) {
	e.t.Helper()
	u, err := e.imap.AddUser(name, testPassword)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := u.Append("INBOX", literal{strings.NewReader(raw), int64(len(raw))}, &imap.AppendOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return func(mb *Mailbox) {
		mb.Name = name
		mb.IMAP.Auth = credential.Auth{Username: name, Secret: credential.Static(secret.New(testPassword))}
	}
}

func TestRunOnceNamesFailedMailboxes(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.appendMsg("INBOX", cleanMessage("clean-1"))
	good := e.poller(nil, nil)
	bad := e.poller(nil, func(mb *Mailbox) {
		mb.Name = "wrong-password"
		mb.IMAP.Auth.Secret = credential.Static(secret.New("not-the-password"))
	})
	err := RunOnce(t.Context(), []*Poller{good, bad})
	if err == nil || !strings.Contains(err.Error(), "mailbox wrong-password") || strings.Contains(err.Error(), "mailbox support") {
		t.Fatalf("RunOnce error = %v, want one naming only the failed mailbox", err)
	}
	if strings.Contains(err.Error(), "not-the-password") || strings.Contains(err.Error(), testPassword) {
		t.Fatalf("RunOnce error leaks a password: %v", err)
	}
	if e.sink.Count() != 1 {
		t.Fatalf("the healthy mailbox sent %d messages, want 1", e.sink.Count())
	}
	if err := RunOnce(t.Context(), []*Poller{good}); err != nil {
		t.Fatalf("RunOnce of healthy mailboxes: %v", err)
	}
}

// A panic in one mailbox is recovered and logged; the other mailbox goes on
// and the panicking one runs again on its next tick (its lease and lock
// were given back).
func TestRunRecoversPanics(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.appendMsg("INBOX", cleanMessage("clean-1"))
	other := e.addUser("panicky@example.net", cleanMessage("victim"))
	var panics atomic.Int32
	boom := funcForwarder(func(context.Context, analyzer.Verdict, io.Reader) error {
		panics.Add(1)
		panic("forwarder exploded")
	})
	pp := e.poller(boom, func(mb *Mailbox) { other(mb); mb.Schedule = cron.Every(time.Second) })
	good := e.poller(nil, func(mb *Mailbox) { mb.Schedule = cron.Every(time.Second) })

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, []*Poller{pp, good}, slogFor(t)) }()
	waitFor(t, 20*time.Second, func() bool { return panics.Load() >= 2 && e.sink.Count() == 1 })
	cancel()
	start := time.Now()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v to return after the stop", d)
	}
	if e.sink.Count() != 1 {
		t.Errorf("healthy mailbox sent %d, want 1", e.sink.Count())
	}
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// slowForwarder takes pause over each message and counts the messages sent
// and the most forwards in flight at once.
func slowForwarder(pause time.Duration) (fw Forwarder, maxInFlight, sent *atomic.Int32) {
	var inFlight atomic.Int32
	maxInFlight, sent = new(atomic.Int32), new(atomic.Int32)
	fw = funcForwarder(func(_ context.Context, _ analyzer.Verdict, body io.Reader) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(pause)
		sent.Add(1)
		return drain(body)
	})
	return fw, maxInFlight, sent
}

// Cycles of one mailbox never overlap, whether cron ticks or IDLE wakes
// them, and nothing is sent twice.
func TestRunNoOverlap(t *testing.T) {
	e := newEnv(t, envOptions{})
	slow, maxInFlight, sent := slowForwarder(700 * time.Millisecond) // longer than the schedule
	p := e.poller(slow, func(mb *Mailbox) { mb.Schedule = cron.Every(time.Second); mb.Idle = true })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, []*Poller{p}, slogFor(t)) }()
	for _, id := range []string{"a", "b", "c"} {
		time.Sleep(400 * time.Millisecond) // lands while a cycle is running
		e.appendMsg("INBOX", cleanMessage(id))
	}
	waitFor(t, 20*time.Second, func() bool { return sent.Load() == 3 })
	time.Sleep(1500 * time.Millisecond) // more ticks and wake-ups with nothing to do
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m := maxInFlight.Load(); m != 1 {
		t.Errorf("at most %d forwards ran at once, want 1", m)
	}
	if n := sent.Load(); n != 3 {
		t.Errorf("sent %d, want each of the 3 messages once", n)
	}
}

// Many mailboxes on one schedule: at most Parallel cycles run at once, and
// every mailbox still gets its turn.
func TestRunBoundsParallelCycles(t *testing.T) {
	e := newEnv(t, envOptions{})
	slow, maxInFlight, sent := slowForwarder(300 * time.Millisecond)
	const boxes = Parallel + 3
	pollers := make([]*Poller, boxes)
	for i := range boxes {
		user := e.addUser(fmt.Sprintf("box%d@example.net", i), cleanMessage(fmt.Sprintf("m%d", i)))
		pollers[i] = e.poller(slow, func(mb *Mailbox) {
			user(mb)
			mb.Name = fmt.Sprintf("box%d", i)
			mb.Schedule = cron.Every(time.Second)
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, pollers, slogFor(t)) }()
	waitFor(t, 30*time.Second, func() bool { return sent.Load() == boxes })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m := maxInFlight.Load(); m > Parallel || m < 2 {
		t.Errorf("at most %d cycles forwarded at once, want between 2 and %d", m, Parallel)
	}
}

// IDLE delivers a new message at once, long before the next tick (an
// hour away). The target is a second; the assertion allows for a loaded
// machine and the test logs the figure.
func TestIdleWakeUp(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := e.poller(nil, func(mb *Mailbox) { mb.Idle = true; mb.Schedule = cron.Every(time.Hour) })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, []*Poller{p}, slogFor(t)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(500 * time.Millisecond) // the IDLE session logs in
	e.appendMsg("INBOX", cleanMessage("urgent"))
	start := time.Now()
	for e.sink.Count() == 0 {
		if time.Since(start) > 3*time.Second {
			t.Fatal("no forward within 3 s of the delivery")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("delivered %v after the append", time.Since(start))
}
