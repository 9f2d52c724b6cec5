package forwarder

import (
	"context"
	"io"

	"github.com/mailtriage/mailtriage/analyzer"
)

// Body is a message's octets, buffered by the caller so that the forwarder
// can read them again (a retry after a rate-limit reply) without holding up
// the source: spool.Buffer.
type Body interface {
	Size() int64
	Reader() io.Reader // a new reader from the first octet
}

// Job is one message for Deliver: the original in Body, sent with the
// annotation for Verdict (and X-Mailtriage-Released: yes when Released).
type Job struct {
	Key      uint32 // the caller's name for it (an IMAP UID), given back in its Result
	Verdict  analyzer.Verdict
	Released bool
	Body     Body
}

// Result is what became of one Job: Err is nil when the server accepted the
// message (the 250 to its end of data), else an *Error whose Kind and
// Temporary tell the caller what to do.
type Result struct {
	Key uint32
	Err error
}

// Deliver sends every job read from jobs until jobs is closed or ctx ends,
// and sends exactly one Result per job received on results, then returns.
// It closes neither channel. Results may come in another order than the
// jobs: messages are in flight on several sessions at once.
func (f *Forwarder) Deliver(ctx context.Context, jobs <-chan Job, results chan<- Result) {
	for j := range jobs {
		err := ctx.Err()
		if err == nil {
			err = f.Forward(ctx, j.Verdict, j.Released, j.Body.Size(), j.Body.Reader())
		} else {
			err = fail("forward", phaseConnect, err)
		}
		results <- Result{Key: j.Key, Err: err}
	}
}
