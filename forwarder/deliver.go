package forwarder

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/mailtriage/mailtriage/forwarder/smtpclient"

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
// jobs: up to Config.Connections sessions take jobs as they come, each with
// up to PipelineDepth transactions in flight.
//
// A message a server refuses as one too many (a 4xx saying "rate", "too
// many", "try again later": throttled) is not a failure: the pace of every
// session is halved and the message goes again, up to throttleTries times.
func (f *Forwarder) Deliver(ctx context.Context, jobs <-chan Job, results chan<- Result) {
	var wg sync.WaitGroup
	for range f.cfg.Connections {
		wg.Go(func() {
			w := &worker{f: f, jobs: jobs, results: results}
			w.run(ctx)
		})
	}
	wg.Wait()
}

// throttleTries bounds the sends of one message that a server refuses as
// one too many; the last refusal is its Result.
const throttleTries = 8

// PipelineDepth bounds the transactions in flight on one session: sent,
// their final reply not yet read (RFC 2920 §3.1). With Connections sessions
// at most Connections*PipelineDepth messages may have been accepted by the
// server and not yet reported to the caller: the duplicate window of a
// crash grows by that much.
const PipelineDepth = smtpclient.PipelineDepth

// worker drives one session of Deliver, or of sendOne.
type worker struct {
	f       *Forwarder
	jobs    <-chan Job // nil once closed
	results chan<- Result
	s       *session // nil until the first job, and after the session broke
	again   []*job   // jobs to send again first: refused as too many, or met a closed reused session
	head    []byte   // scratch for the start of each message (eightBitHeader)
}

// run sends jobs until there are no more and none is in flight, and keeps
// the session for the next Deliver.
func (w *worker) run(ctx context.Context) {
	for {
		j, ok := w.next(ctx)
		if !ok {
			break
		}
		w.send(ctx, j)
	}
	if w.s != nil {
		w.f.put(w.s)
	}
}

// next is the job to send now: one to send again, or a new one. While
// transactions are in flight it waits for a new job or their outcomes,
// whichever comes first, so that neither waits for the other; once jobs
// is closed or ctx ended it reads the outcomes still owed.
func (w *worker) next(ctx context.Context) (*job, bool) {
	for {
		if len(w.again) > 0 {
			j := w.again[0]
			w.again = w.again[1:]
			if ctx.Err() != nil {
				w.report(j, fail("forward", phaseConnect, context.Cause(ctx)))
				continue
			}
			return j, true
		}
		inFlight := w.s != nil && w.s.c.InFlight() > 0
		if w.jobs == nil || ctx.Err() != nil {
			if !inFlight {
				return nil, false
			}
			w.settle(ctx, w.s.c.Receive(ctx, w.s.c.InFlight()))
			continue
		}
		var ready <-chan struct{} // nil, never ready, when nothing is in flight
		if inFlight {
			ready = w.s.c.Ready()
		}
		select {
		case j, ok := <-w.jobs:
			if !ok {
				w.jobs = nil
				continue
			}
			return w.job(j), true
		case <-ready:
			w.settle(ctx, w.s.c.Receive(ctx, 1))
		case <-ctx.Done():
		}
	}
}

// job is j as the forwarder carries it.
func (w *worker) job(j Job) *job {
	f := w.f
	v, released := j.Verdict, j.Released
	if w.head == nil {
		w.head = make([]byte, headerScan)
	}
	n, _ := io.ReadFull(j.Body.Reader(), w.head)
	return &job{
		key:     j.Key,
		env:     envelope{from: f.cfg.From, to: f.cfg.To},
		compose: func(eightBit bool, idDomain string) content { return f.wrap(v, released, eightBit, idDomain) },
		body:    j.Body,
		utf8:    eightBitHeader(w.head[:n]),
		label:   v.MessageID,
		tries:   throttleTries,
	}
}

// send starts j on the worker's session, opening one when needed.
func (w *worker) send(ctx context.Context, j *job) {
	f := w.f
	if w.s == nil {
		s, err := f.take(ctx)
		if throttled(err) && j.tries > 1 {
			// A session refused as one too many (Exchange Online's "432
			// 4.3.2 Concurrent connections limit exceeded"): the others
			// carry on; this one tries again after a pause.
			j.tries--
			f.log.Info("smtp server refuses another session for now; waiting", "error", err)
			w.again = append(w.again, j)
			pause(ctx, min(30*time.Second, time.Second<<(throttleTries-j.tries)))
			return
		}
		if err != nil {
			w.report(j, err)
			return
		}
		w.s = s
	}
	if err := f.limits.wait(ctx, func() { w.s.c.Flush(ctx) }); err != nil {
		w.report(j, err)
		return
	}
	tx, err := f.tx(w.s, j)
	if err != nil {
		w.report(j, err)
		return
	}
	j.sent = time.Now()
	w.settle(ctx, w.s.c.Send(ctx, tx))
}

// settle handles the outcomes read from the session: each one's Result,
// or its send again. After a refusal of the session rather than of a
// message the rest in flight is read and the session closed (release).
func (w *worker) settle(ctx context.Context, done []smtpclient.Done) {
	f := w.f
	doomed := false
	for _, d := range done {
		j := d.Tx.Tag.(*job)
		switch {
		case d.Err == nil:
			f.limits.speedUp()
			w.s.reused = false
		case f.redial(w.s, j, d.Err):
			w.again = append(w.again, j)
			continue
		case throttled(d.Err) && j.tries > 1:
			j.tries--
			pace := f.limits.slowDown(j.sent)
			f.log.Info("smtp server asks for fewer messages: slowing down", "pace_per_minute", float64(pace)*60,
				"message_id", j.label, "error", f.txError(w.s, d.Err, j.body.Size() > 0))
			w.again = append(w.again, j)
			continue
		}
		err := f.outcome(w.s, j, d)
		var fe *Error
		doomed = doomed || errors.As(err, &fe) && !fe.connUsable()
		w.report(j, err)
	}
	if w.s == nil {
		return
	}
	if doomed && w.s.c.InFlight() > 0 {
		w.settle(ctx, w.s.c.Receive(ctx, w.s.c.InFlight()))
	}
	if w.s != nil && (doomed || w.s.c.Err() != nil) {
		w.s.c.Close()
		w.s = nil
	}
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// report sends j's Result.
func (w *worker) report(j *job, err error) {
	w.results <- Result{Key: j.key, Err: err}
}
