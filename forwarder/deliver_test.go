package forwarder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
)

// deliver runs Deliver over n messages numbered from 1 and returns the
// error of each key; every key must have exactly one Result.
func deliver(t *testing.T, f *Forwarder, n int) map[uint32]error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	jobs := make(chan Job)
	results := make(chan Result, n)
	go func() {
		defer close(jobs)
		for i := 1; i <= n; i++ {
			msg := fmt.Sprintf("Message-ID: <deliver-%d@customer.example>\r\nSubject: %d\r\n\r\nbody %d\r\n.line\r\n", i, i, i)
			jobs <- Job{Key: uint32(i), Verdict: cleanVerdict(), Body: bytesBody(msg)}
		}
	}()
	f.Deliver(ctx, jobs, results)
	close(results)
	got := make(map[uint32]error, n)
	for r := range results {
		if _, dup := got[r.Key]; dup {
			t.Fatalf("two results for message %d", r.Key)
		}
		got[r.Key] = r.Err
	}
	if len(got) != n {
		t.Fatalf("%d results for %d messages", len(got), n)
	}
	return got
}

var deliveredID = regexp.MustCompile(`Message-ID: <deliver-(\d+)@`)

// received counts the copies of each message the sink holds.
func received(t *testing.T, sink *smtpsink.Sink) map[uint32]int {
	t.Helper()
	out := make(map[uint32]int)
	for _, m := range sink.Messages() {
		sub := deliveredID.FindSubmatch(m.Data)
		if sub == nil {
			t.Fatalf("a message without its number: %q", m.Data)
		}
		var k uint32
		fmt.Sscan(string(sub[1]), &k)
		out[k]++
	}
	return out
}

// checkAccounted holds Deliver's promise: a message reported sent is at the
// sink once; one reported failed is not there, unless the failure left its
// outcome unknown (the connection lost after its end of data).
func checkAccounted(t *testing.T, results map[uint32]error, got map[uint32]int) (sent, failed int) {
	t.Helper()
	for k, err := range results {
		switch n := got[k]; {
		case n > 1:
			t.Errorf("message %d arrived %d times", k, n)
		case err == nil && n != 1:
			t.Errorf("message %d reported sent, arrived %d times", k, n)
		case err == nil:
			sent++
		default:
			var fe *Error
			if !errors.As(err, &fe) {
				t.Errorf("message %d: %v is no *Error", k, err)
			}
			if n == 1 && fe.Kind != KindConnect {
				t.Errorf("message %d reported %v, but it arrived", k, err)
			}
			failed++
		}
	}
	return sent, failed
}

func TestDeliverManyOnFewSessions(t *testing.T) {
	for _, conns := range []int{1, 3} {
		t.Run(fmt.Sprint(conns), func(t *testing.T) {
			sink := startSink(t, smtpsink.Options{})
			f := newForwarder(t, sink, func(c *Config) { c.Connections = conns })
			results := deliver(t, f, 300)
			if sent, failed := checkAccounted(t, results, received(t, sink)); sent != 300 || failed != 0 {
				t.Fatalf("%d sent, %d failed of 300", sent, failed)
			}
			if sink.Connections() > conns {
				t.Errorf("%d connections, want at most %d", sink.Connections(), conns)
			}
			// The sessions stay open for the next Deliver.
			deliver(t, f, 10)
			if sink.Connections() > conns {
				t.Errorf("%d connections after a second Deliver, want at most %d", sink.Connections(), conns)
			}
		})
	}
}

// TestDeliverSlowsDownWhenRefusedAsTooMany: a 4xx saying the rate is too
// high is no failure of the message; it goes again, slower: all 40 are
// sent although 4 MAIL commands were refused.
func TestDeliverSlowsDownWhenRefusedAsTooMany(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	sink.SetFault(smtpsink.Fault{Reject: smtpsink.StageMail, Code: 450, Text: "4.7.0 Message submission rate for this client has exceeded the configured limit", Times: 4})
	f := newForwarder(t, sink, nil)
	results := deliver(t, f, 40)
	if sent, failed := checkAccounted(t, results, received(t, sink)); sent != 40 || failed != 0 {
		t.Fatalf("%d sent, %d failed of 40", sent, failed)
	}
}

// TestDeliver4xxStorm: temporary refusals that say nothing of the rate
// fail their messages, temporarily; the rest go.
func TestDeliver4xxStorm(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	sink.SetFault(smtpsink.Fault{Reject: smtpsink.StageData, Code: 451, Text: "4.3.0 Mail server temporarily rejected message", Times: 25})
	f := newForwarder(t, sink, nil)
	results := deliver(t, f, 100)
	sent, failed := checkAccounted(t, results, received(t, sink))
	if sent != 75 || failed != 25 {
		t.Fatalf("%d sent, %d failed; want 75 and the 25 refused", sent, failed)
	}
	for k, err := range results {
		var fe *Error
		if err != nil && (!errors.As(err, &fe) || fe.Kind != KindTemporary || fe.Code != 451) {
			t.Errorf("message %d: %v, want the temporary 451", k, err)
		}
	}
}

// TestDeliverConnectionDropped: the server drops the connection in the
// middle of a message; what it took is reported sent, the rest failed, and
// nothing arrives twice.
func TestDeliverConnectionDropped(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	sink.SetFault(smtpsink.Fault{DropAfter: 20, Times: 2})
	f := newForwarder(t, sink, func(c *Config) { c.Connections = 1 })
	results := deliver(t, f, 50)
	sent, failed := checkAccounted(t, results, received(t, sink))
	if failed == 0 || sent+failed != 50 {
		t.Fatalf("%d sent, %d failed of 50; the drops must fail some", sent, failed)
	}
}

// TestDeliverSessionRefused: a refusal of the session (our sender, at
// MAIL) fails every message in flight on it, temporarily, as a session
// error, and the session is not reused.
func TestDeliverSessionRefused(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	sink.SetFault(smtpsink.Fault{Reject: smtpsink.StageMail, Code: 550, Text: "5.7.1 Client does not have permissions to send as this sender"})
	f := newForwarder(t, sink, func(c *Config) { c.Connections = 1 })
	checkAllSession(t, deliver(t, f, 20), sink)
}

// TestDeliverAgainstServers: with and without PIPELINING and CHUNKING the
// messages arrive once and whole, the client pipelines only where offered
// and sends BDAT only where offered.
func TestDeliverAgainstServers(t *testing.T) {
	tests := []struct {
		name                 string
		hidePipe, hideChunks bool
	}{
		{"pipelining and chunking", false, false},
		{"no pipelining", true, false},
		{"no chunking", false, true},
		{"neither", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := startSink(t, smtpsink.Options{HidePipelining: tt.hidePipe, HideChunking: tt.hideChunks})
			f := newForwarder(t, sink, nil)
			results := deliver(t, f, 60)
			if sent, failed := checkAccounted(t, results, received(t, sink)); sent != 60 || failed != 0 {
				t.Fatalf("%d sent, %d failed of 60", sent, failed)
			}
			if v := sink.Violations(); len(v) > 0 {
				t.Errorf("protocol violations: %q", v)
			}
			st := sink.Stats()
			switch {
			case tt.hideChunks && (st.BDATCommands != 0 || st.DATACommands != 60):
				t.Errorf("%d BDAT and %d DATA commands; want DATA for each of 60", st.BDATCommands, st.DATACommands)
			case !tt.hideChunks && (st.BDATCommands < 60 || st.DATACommands != 0):
				t.Errorf("%d BDAT and %d DATA commands; want BDAT for each of 60", st.BDATCommands, st.DATACommands)
			case tt.hidePipe && st.MaxPipelined != 1:
				t.Errorf("up to %d commands ahead of their replies without PIPELINING", st.MaxPipelined)
			case !tt.hidePipe && st.MaxPipelined < 4:
				t.Errorf("up to %d commands ahead of their replies; want transactions pipelined", st.MaxPipelined)
			}
			for _, m := range sink.Messages() {
				if !bytes.HasSuffix(m.Data, []byte("\r\n.line\r\n")) {
					t.Fatalf("a message arrived as %q; want its lines kept, the dot line unstuffed", m.Data)
				}
			}
		})
	}
}

// TestDeliverKeepsToARateLimit: against a server that takes at most 5
// messages in any second, a limit of 5 a second (max_per_minute's bucket,
// on a shorter period) draws no refusal.
func TestDeliverKeepsToARateLimit(t *testing.T) {
	sink := startSink(t, smtpsink.Options{RateLimit: smtpsink.RateLimit{N: 5, Per: time.Second}})
	f := newForwarder(t, sink, nil)
	f.limits = &limits{fixed: []fixedLimit{newFixedLimit("max_per_second", 5, time.Second)}, pace: rate.NewLimiter(rate.Inf, 1)}
	results := deliver(t, f, 15)
	if sent, failed := checkAccounted(t, results, received(t, sink)); sent != 15 || failed != 0 {
		t.Fatalf("%d sent, %d failed of 15", sent, failed)
	}
	if n := sink.Stats().RateRefusals; n != 0 {
		t.Errorf("%d refusals for the rate", n)
	}
}

// TestDeliverLearnsARateLimit: with no limit configured, a server's
// refusals for the rate slow the forwarder down until it keeps to it; no
// message fails.
func TestDeliverLearnsARateLimit(t *testing.T) {
	sink := startSink(t, smtpsink.Options{RateLimit: smtpsink.RateLimit{N: 10, Per: time.Second}})
	f := newForwarder(t, sink, nil)
	results := deliver(t, f, 30)
	if sent, failed := checkAccounted(t, results, received(t, sink)); sent != 30 || failed != 0 {
		t.Fatalf("%d sent, %d failed of 30", sent, failed)
	}
	if n := sink.Stats().RateRefusals; n == 0 {
		t.Errorf("no refusal: the test did not reach the limit")
	}
}

// TestDeliverSessionRefusedAtStart: a server that refuses the session at
// its greeting or at EHLO fails every message as a session error, with
// nothing sent.
func TestDeliverSessionRefusedAtStart(t *testing.T) {
	for name, opt := range map[string]smtpsink.Options{
		"greeting 554": {Greeting554: true},
	} {
		t.Run(name, func(t *testing.T) {
			sink := startSink(t, opt)
			f := newForwarder(t, sink, nil)
			checkAllSession(t, deliver(t, f, 5), sink)
		})
	}
	t.Run("EHLO 554", func(t *testing.T) {
		sink := startSink(t, smtpsink.Options{})
		sink.SetFault(smtpsink.Fault{Reject: smtpsink.StageEHLO, Code: 554, Text: "5.7.1 Client host rejected: cannot find your hostname"})
		f := newForwarder(t, sink, nil)
		checkAllSession(t, deliver(t, f, 5), sink)
	})
}

func checkAllSession(t *testing.T, results map[uint32]error, sink *smtpsink.Sink) {
	t.Helper()
	for k, err := range results {
		var fe *Error
		if !errors.As(err, &fe) || fe.Kind != KindSession || !fe.Temporary() {
			t.Errorf("message %d: %v, want a temporary session error", k, err)
		}
	}
	if sink.Count() != 0 {
		t.Errorf("%d messages arrived", sink.Count())
	}
}
