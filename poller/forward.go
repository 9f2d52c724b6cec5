package poller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/internal/spool"
)

// The forward path of a batch, in three goroutines:
//
//   - the feeder streams the bodies from IMAP, chunk by chunk, into the
//     spool (so that the FETCH literal is read at IMAP speed, whatever the
//     SMTP side does) and hands each to Deliver as a forwarder.Job;
//   - Deliver (the Forwarder's) has several messages in flight at the SMTP
//     server and gives back one forwarder.Result per job, in any order;
//   - the cycle's goroutine settles each result as it comes in: the record
//     of a message sent is queued at once (SMTP 250 → record → mark →
//     high-water), a deferral or a record that cannot be written halts the
//     feeder.
//
// Once both are done, the outcomes are acted on (metrics, logs, the report,
// the marking queued) and every message with no outcome is noted deferred:
// nothing is lost.

// Bounds of one body FETCH: after a temporary SMTP failure or a stop the
// rest of the chunk is drained unread, so a chunk stays small.
const (
	chunkMessages = 32
	chunkBytes    = 8 << 20
)

// bodyChunks splits the UIDs of msgs into runs of at most chunkMessages
// messages and chunkBytes octets (a bigger message goes alone).
func bodyChunks(msgs []*message) [][]imap.UID {
	var chunks [][]imap.UID
	var size int64
	for _, m := range msgs {
		last := len(chunks) - 1
		if last < 0 || len(chunks[last]) >= chunkMessages || size+m.Size > chunkBytes {
			chunks = append(chunks, nil)
			last++
			size = 0
		}
		chunks[last] = append(chunks[last], m.UID)
		size += m.Size
	}
	return chunks
}

// resultKind is what became of one message handed to the forward path.
type resultKind int

const (
	resultSent     resultKind = iota // 250: its record is queued
	resultCopy                       // a second copy of a message sent in this forward: done
	resultCutShort                   // the body ended before its close delimiter: unparseable, flagged
	resultRefused                    // refused for good: flagged with $ForwardFailed
	resultDeferred                   // a temporary SMTP failure: left, forwarding backs off
	resultUnread                     // the body could not be read or spooled: left, no backoff
)

// sendOutcome is what became of one message.
type sendOutcome struct {
	m       *message
	kind    resultKind
	movedTo string // resultSent: where after_forward puts it
	err     error
}

// sourceError is a body that could not be read from IMAP or spooled: the
// source's trouble, never the SMTP server's (no backoff, no $ForwardFailed).
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// forward sends msgs on through the Forwarder and handles what became of
// each: the marking of what was sent, the flagging of what was refused for
// good or cut short, a deferral for the rest. awaitFacts is called before
// the first body streams. Forwarding stops at a temporary SMTP failure, a
// stop request, or an outcome record that could not be written (recorder):
// the mail sent until then is marked all the same. An error means the
// session or the lease is gone.
func (cy *cycle) forward(msgs []*message, released bool, awaitFacts func()) error {
	if len(msgs) == 0 {
		return nil
	}
	awaitFacts()
	rec := cy.startRecorder()
	defer rec.stop()
	var outs []sendOutcome
	whole := false // every body was streamed: a message not seen is gone
	if cy.forwarding && cy.stopped() == nil {
		var err error
		if outs, whole, err = cy.deliver(msgs, released, rec); err != nil {
			return err
		}
	}
	cy.flushRecords(rec)
	handled := make(map[imap.UID]bool, len(outs))
	for _, o := range outs {
		cy.apply(o, released)
		handled[o.m.UID] = true
	}
	if d := firstDeferral(outs); d != nil {
		// After the sends have cleared it, as in a serial forward; once
		// only, since the messages in flight beside it failed alike.
		cy.p.forwardFailedTemporarily(time.Now(), d.err)
	}
	for _, m := range msgs {
		if !handled[m.UID] {
			cy.deferUnsent(m, released, whole)
		}
	}
	return nil
}

// flushRecords waits for the records queued; those that could not be
// written go with the marking, which retries them, and forwarding pauses.
func (cy *cycle) flushRecords(rec *recorder) {
	unwritten, err := rec.flush()
	if err == nil {
		return
	}
	cy.forwarding = false
	mk := cy.marks
	mk.unrecorded = append(mk.unrecorded, unwritten...)
	mk.storeFailed = true
	cy.p.log.Error("outcome records not written: forwarding paused; the mail sent is marked on the server and its records retried",
		"folder", cy.folder, "messages", len(unwritten), "error", err)
}

// apply acts on one outcome once the records are flushed: metrics, the
// log line, the report entry and the marking queued.
func (cy *cycle) apply(o sendOutcome, released bool) {
	p, m, mk := cy.p, o.m, cy.marks
	entry := Entry{Folder: cy.folder, UID: uint32(m.UID), Released: released, Verdict: m.v}
	switch o.kind {
	case resultSent:
		p.forwardSucceeded()
		p.m.Message(p.mb.Name, m.v.Class, EntryForwarded)
		p.log.Info("forwarded", cy.attrs(m, EntryForwarded, nil)...)
		entry.Action, entry.MovedTo = EntryForwarded, o.movedTo
		cy.note(entry)
		mk.forwarded = append(mk.forwarded, m.queue())
	case resultCopy:
		// A second copy of a message sent moments ago (a double
		// delivery): the first one's record covers it.
		entry.Action = EntryDone
		cy.note(entry)
		mk.forwarded = append(mk.forwarded, m.queue())
	case resultCutShort:
		// Never sent: nothing reached the helpdesk; flag() notes it.
		mk.flagged = append(mk.flagged, m.queue())
	case resultRefused:
		p.m.ForwardFailed(p.mb.Name, failureKind(o.err))
		p.log.Warn("forward refused for good: flagging", cy.attrs(m, EntryForwardFailed, o.err)...)
		m.Flags = append(m.Flags, KeywordForwardFailed)
		mk.flagged = append(mk.flagged, m.queue())
	case resultDeferred:
		p.m.ForwardFailed(p.mb.Name, failureKind(o.err))
		entry.Action, entry.Err = EntryDeferred, o.err
		cy.note(entry)
	case resultUnread:
		p.log.Warn("body not read: left for a later cycle", cy.attrs(m, EntryDeferred, o.err)...)
		entry.Action, entry.Err = EntryDeferred, o.err
		cy.note(entry)
	}
}

// deferUnsent notes m, which has no outcome, as deferred: it was not
// reached (forwarding halted or stopped), or it is a second copy of a
// message not sent; when every body was streamed and forwarding goes on,
// it is one the server no longer has.
func (cy *cycle) deferUnsent(m *message, released, whole bool) {
	e := Entry{Folder: cy.folder, UID: uint32(m.UID), Released: released, Action: EntryDeferred, Verdict: m.v}
	if whole && !m.copy && cy.forwarding && cy.stop.Err() == nil {
		e.Err = fmt.Errorf("uid %d in %s: %w", m.UID, cy.folder, ErrGone)
	}
	cy.note(e)
}

// flight is one forward in progress, shared by its three goroutines. msgs,
// index and the settings are read-only; bodies[i] is set by the feeder
// before the Job of msgs[i] goes out and taken by the cycle's goroutine
// once its Result is in (the channels order the two).
type flight struct {
	msgs       []*message
	index      map[imap.UID]int // UID -> position in msgs
	bodies     []*spool.Buffer
	released   bool
	checkClose bool // read each body through analyzer.CloseCheck
	rec        *recorder

	results   chan forwarder.Result // Deliver's, and the feeder's for a body it could not read
	delivered chan struct{}         // closed when Deliver returns
	cancel    context.CancelFunc    // ends the FETCH and Deliver: the forward is over
	halt      context.CancelFunc    // stops the feeder: nothing more goes out

	copies []copyOf // from the feeder, once results is closed
	whole  bool     // from the feeder: every body was streamed
	err    error    // from the feeder: the body FETCH failed

	mu       sync.Mutex
	panicked any // the first panic of the feeder or Deliver, raised again in the cycle's goroutine
}

// copyOf is a second copy of a message submitted in the same forward.
type copyOf struct{ uid, first imap.UID }

// deliver runs the feeder and Deliver, settles each Result as it comes in,
// and returns once both are done, with the outcomes and whether every
// body was streamed. An error (the session or the lease gone, the FETCH
// failed) ends the cycle; the records of mail sent until then are queued
// all the same.
func (cy *cycle) deliver(msgs []*message, released bool, rec *recorder) ([]sendOutcome, bool, error) {
	fl := cy.startFlight(msgs, released, rec)
	var outs []sendOutcome
	var fatal error
	for res := range fl.results {
		i, ok := fl.index[imap.UID(res.Key)]
		if !ok {
			continue // not a key of ours: nothing to settle
		}
		fl.closeBody(i)
		o, err := cy.settle(fl.msgs[i], res.Err, released, rec)
		switch {
		case err != nil && fatal == nil:
			fatal = err
			fl.cancel()
		case err != nil || fatal != nil:
			// The forward is over; a record queued above still counts.
		default:
			outs = append(outs, o)
			if o.kind == resultDeferred {
				cy.forwarding = false
			}
			if o.kind == resultDeferred || o.kind == resultUnread || rec.failed() != nil {
				fl.halt()
			}
		}
	}
	fl.end()
	if fatal == nil {
		fatal = fl.err
	}
	return append(outs, fl.copiesSent(outs)...), fl.whole, fatal
}

// firstDeferral returns the first temporary SMTP failure of outs, if any.
func firstDeferral(outs []sendOutcome) *sendOutcome {
	for i := range outs {
		if outs[i].kind == resultDeferred {
			return &outs[i]
		}
	}
	return nil
}

// startFlight starts the feeder and Deliver of msgs.
func (cy *cycle) startFlight(msgs []*message, released bool, rec *recorder) *flight {
	fl := &flight{
		msgs:     msgs,
		index:    make(map[imap.UID]int, len(msgs)),
		bodies:   make([]*spool.Buffer, len(msgs)),
		released: released,
		// A multipart cut short shows only while its body streams by;
		// released mail goes as the reviewer said.
		checkClose: !released && cy.p.mb.Policy.Action(analyzer.ClassUnparseable) == analyzer.ActionFlag,
		rec:        rec,
		results:    make(chan forwarder.Result),
		delivered:  make(chan struct{}),
	}
	for i, m := range msgs {
		fl.index[m.UID] = i
	}
	ctx, cancel := context.WithCancel(cy.ctx)
	stop, halt := context.WithCancel(cy.stop)
	fl.cancel = cancel
	fl.halt = halt
	jobs := make(chan forwarder.Job)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(jobs)
		defer fl.recover()
		f := feeder{cy: cy, fl: fl, ctx: ctx, stop: stop, jobs: jobs, sent: make(map[string]imap.UID), seen: make(map[imap.UID]bool)}
		f.run()
	})
	wg.Go(func() {
		defer close(fl.delivered)
		defer fl.recover()
		cy.p.fw.Deliver(ctx, jobs, fl.results)
	})
	go func() {
		wg.Wait()
		halt()
		cancel()
		close(fl.results)
	}()
	return fl
}

// recover keeps a panic of the goroutine it is deferred in, for end: the
// other one then ends too (jobs closed, or delivered).
func (fl *flight) recover() {
	v := recover()
	if v == nil {
		return
	}
	fl.mu.Lock()
	if fl.panicked == nil {
		fl.panicked = fmt.Sprintf("%v\n%s", v, debug.Stack())
	}
	fl.mu.Unlock()
}

// closeBody gives back the spool buffer of msgs[i], once its Result is in.
func (fl *flight) closeBody(i int) {
	if b := fl.bodies[i]; b != nil {
		b.Close()
		fl.bodies[i] = nil
	}
}

// end runs once both goroutines are done: it closes the buffers of jobs
// that got no Result (a Deliver that broke its contract: those messages
// stay unhandled) and raises a panic of either goroutine here, where the
// scheduler recovers it.
func (fl *flight) end() {
	for i := range fl.bodies {
		fl.closeBody(i)
	}
	if fl.panicked != nil {
		panic(fl.panicked)
	}
}

// copiesSent are the outcomes of the second copies whose first copy was
// sent; the others stay unhandled (deferred).
func (fl *flight) copiesSent(outs []sendOutcome) []sendOutcome {
	sent := make(map[imap.UID]bool)
	for _, o := range outs {
		if o.kind == resultSent {
			sent[o.m.UID] = true
		}
	}
	var more []sendOutcome
	for _, c := range fl.copies {
		m := fl.msgs[fl.index[c.uid]]
		m.copy = true
		if sent[c.first] {
			more = append(more, sendOutcome{m: m, kind: resultCopy})
		}
	}
	return more
}

// settle says what became of m from the error of its Result. The record
// of a message sent is queued on rec at once: SMTP 250 → record → mark →
// high-water. An error means the session or the lease is gone, which is
// not the SMTP server's fault (no backoff, no flag): the cycle ends.
func (cy *cycle) settle(m *message, err error, released bool, rec *recorder) (sendOutcome, error) {
	var truncated *analyzer.TruncationError
	var source *sourceError
	switch {
	case err == nil:
		out := cy.outcome(m, analyzer.ActionForwarded, cy.forwardedFolder(released))
		// Written behind the next transfers, flushed before any marking
		// (recorder.go); add waits while the window is full.
		rec.add(out)
		return sendOutcome{m: m, kind: resultSent, movedTo: out.Folder}, nil
	case errors.As(err, &truncated):
		m.v.MarkUnparseable(truncated.Error(), cy.p.mb.Policy)
		return sendOutcome{m: m, kind: resultCutShort, err: err}, nil
	case cy.ctx.Err() != nil || cy.c.broken():
		cause := err
		if cy.ctx.Err() != nil {
			cause = context.Cause(cy.ctx)
		}
		return sendOutcome{}, fmt.Errorf("forward uid %d in %s: %w", m.UID, cy.folder, cause)
	case errors.As(err, &source):
		return sendOutcome{m: m, kind: resultUnread, err: err}, nil
	case temporary(err):
		return sendOutcome{m: m, kind: resultDeferred, err: err}, nil
	default:
		return sendOutcome{m: m, kind: resultRefused, err: err}, nil
	}
}

// feeder is the goroutine that reads the bodies of a flight into the
// spool and hands them to Deliver. Its maps are its own.
type feeder struct {
	cy   *cycle
	fl   *flight
	ctx  context.Context // the forward's I/O: ends when the forward is over
	stop context.Context // ends at a halt or a stop request
	jobs chan<- forwarder.Job
	sent map[string]imap.UID // fingerprint -> the UID whose Job went out
	seen map[imap.UID]bool
}

// run streams the bodies chunk by chunk until the last or a halt; what it
// found is left in the flight for the cycle's goroutine.
func (f *feeder) run() {
	fl := f.fl
	for _, uids := range bodyChunks(fl.msgs) {
		if f.halted() {
			return
		}
		stream := f.cy.c.streamBodies(f.ctx, uids)
		more := true
		for uid, body := range stream.All() {
			if more = f.send(uid, body); !more {
				break
			}
		}
		if err := stream.Err(); err != nil {
			fl.err = fmt.Errorf("fetch bodies of uids %v in %s: %w", imap.UIDSetNum(uids...), f.cy.folder, err)
			return
		}
		if !more {
			return
		}
	}
	fl.whole = true
}

// halted reports whether nothing more may go out: a deferral, a stop
// request, or a record that could not be written (then the marking must
// make the mail sent so far safe first).
func (f *feeder) halted() bool {
	return f.stop.Err() != nil || f.fl.rec.failed() != nil
}

// send spools the body of uid and hands it to Deliver; false stops the
// feed.
func (f *feeder) send(uid imap.UID, body io.Reader) bool {
	fl := f.fl
	i, ok := fl.index[uid]
	if !ok || f.seen[uid] {
		return true
	}
	if f.halted() {
		return false
	}
	f.seen[uid] = true
	m := fl.msgs[i]
	fp := m.v.Fingerprint
	if first, dup := f.sent[fp]; dup && fp != "" {
		fl.copies = append(fl.copies, copyOf{uid: uid, first: first})
		return true
	}
	if fl.checkClose {
		body = analyzer.CloseCheck(body, m.BodyStructure)
	}
	buf, err := f.cy.p.spool.Fill(body)
	if err != nil {
		err = &sourceError{fmt.Errorf("read body of uid %d in %s: %w", uid, f.cy.folder, err)}
		fl.results <- forwarder.Result{Key: uint32(uid), Err: err}
		var truncated *analyzer.TruncationError
		return errors.As(err, &truncated) // a body cut short is its message's trouble alone
	}
	fl.bodies[i] = buf
	select {
	case f.jobs <- forwarder.Job{Key: uint32(uid), Verdict: m.v, Released: fl.released, Body: buf}:
		if fp != "" {
			f.sent[fp] = uid
		}
		return true
	case <-f.stop.Done():
	case <-fl.rec.failing():
	case <-f.ctx.Done():
	case <-fl.delivered:
	}
	fl.bodies[i] = nil
	buf.Close()
	return false
}
