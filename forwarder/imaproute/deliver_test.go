package imaproute_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/forwarder/imaproute"
)

// rawBody is a forwarder.Body held in memory; read fails it after its
// first octets when set.
type rawBody struct {
	raw  []byte
	fail bool
}

func (b rawBody) Size() int64 { return int64(len(b.raw)) }

func (b rawBody) Reader() io.Reader {
	if b.fail {
		return failingReader{bytes.NewReader(b.raw)}
	}
	return bytes.NewReader(b.raw)
}

// deliverer is a route's Deliver, the SMTP forwarder's or the IMAP route's.
type deliverer interface {
	Deliver(ctx context.Context, jobs <-chan forwarder.Job, results chan<- forwarder.Result)
}

// deliverOne sends raw through fw's Deliver as the only job and returns
// its Result's error.
func deliverOne(ctx context.Context, fw deliverer, v analyzer.Verdict, raw []byte) error {
	jobs := make(chan forwarder.Job, 1)
	results := make(chan forwarder.Result, 1)
	jobs <- forwarder.Job{Key: 1, Verdict: v, Body: rawBody{raw: raw}}
	close(jobs)
	fw.Deliver(ctx, jobs, results)
	return (<-results).Err
}

// Deliver gives back one Result per job, under the job's key, and one
// failure spoils no other message.
func TestDeliverOneResultPerJob(t *testing.T) {
	dc, acct := helpdesk(t)
	r := newRoute(t, imaproute.Config{IMAP: acct})
	jobs := make(chan forwarder.Job)
	results := make(chan forwarder.Result, 3)
	go func() {
		defer close(jobs)
		for key, body := range map[uint32]rawBody{
			11: {raw: message("deliver-1")},
			12: {raw: message("deliver-2"), fail: true},
			13: {raw: message("deliver-3")},
		} {
			jobs <- forwarder.Job{Key: key, Verdict: verdict(t, body.raw), Body: body}
		}
	}()
	r.Deliver(t.Context(), jobs, results)
	close(results)
	got := make(map[uint32]error)
	for res := range results {
		if _, twice := got[res.Key]; twice {
			t.Errorf("two results for key %d", res.Key)
		}
		got[res.Key] = res.Err
	}
	if len(got) != 3 || got[11] != nil || got[13] != nil || got[12] == nil {
		t.Errorf("results %v, want 11 and 13 stored and 12 failed", got)
	}
	if n := len(folder(t, dc, helpdeskUser, helpdeskPassword, "INBOX")); n != 2 {
		t.Errorf("INBOX holds %d messages, want the 2 whole ones", n)
	}
}
