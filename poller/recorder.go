package poller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mailtriage/mailtriage/store"
)

// recorderWindow bounds the records added and not yet written: at the
// limit the cycle waits for the store before it takes the next Result, and
// Deliver, whose results then wait, sends no more. A crash costs at most
// the messages sent twice of the duplicate window (recorder). README
// "Guarantees" and the crash test (e2e) hold this figure.
const recorderWindow = 4

// recordRetries are the waits before each further attempt to write the
// records a failed write left behind, before the marking that follows
// them (marks): about two seconds in all, so that a store that blinked
// (a Redis failover, a restart) still gets them.
var recordRetries = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}

// recorder writes the outcome records of forwarded mail behind the forward
// path. Each record is queued as soon as its SMTP 250 comes back (settle)
// and written together with whatever else is queued by then (group
// commit), so that a disk sync (bbolt) or a round trip (Redis) overlaps the
// transfers in flight instead of stalling them. Marking waits for flush:
// the order SMTP 250 → record → IMAP marking → high-water holds for every
// message.
//
// The duplicate window of DESIGN.md section 2 — the messages a crash can
// make the helpdesk receive twice — is the records queued but not yet
// written (at most recorderWindow), plus the message whose 250 has just
// come and whose record is not queued yet, plus the messages in flight at
// the SMTP server, which may be accepted while nothing can record them
// (at most Connections*forwarder.PipelineDepth for the SMTP forwarder, one
// for the IMAP route).
//
// A write that fails (store down, disk full, a timeout) stops the damage:
// failed and failing report it to the feeder, which hands Deliver nothing
// more this cycle; the records of that write, and every one queued after
// it, are not tried again here but handed back by flush, so that the
// marking retries them and marks the mail on the server whatever the
// result — the server's marks then count as the record (batch).
type recorder struct {
	cy      *cycle
	queue   chan store.Outcome
	slots   chan struct{}  // one per record added and not yet written or given up
	pending sync.WaitGroup // records queued and not yet written
	stopped chan struct{}
	broken  chan struct{} // closed at the first failed write

	mu        sync.Mutex // guards the fields below
	err       error      // the first failed write; nil while the store works
	unwritten []store.Outcome
}

func (cy *cycle) startRecorder() *recorder {
	r := &recorder{
		cy:      cy,
		queue:   make(chan store.Outcome, recorderWindow),
		slots:   make(chan struct{}, recorderWindow),
		stopped: make(chan struct{}),
		broken:  make(chan struct{}),
	}
	go r.run()
	return r
}

// add queues the record of a message the SMTP server accepted, waiting
// while recorderWindow records are unwritten.
func (r *recorder) add(out store.Outcome) {
	r.slots <- struct{}{}
	r.pending.Add(1)
	r.queue <- out
}

// failed reports the first failed write, nil while every write succeeded.
func (r *recorder) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// failing is closed once a write has failed: the feeder selects on it, so
// that not one more message goes out.
func (r *recorder) failing() <-chan struct{} { return r.broken }

// flush waits until every record added so far is written or given up, and
// returns those given up with the first error.
func (r *recorder) flush() ([]store.Outcome, error) {
	r.pending.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.unwritten
	r.unwritten = nil
	return out, r.err
}

// stop ends the writer goroutine once the queue is written.
func (r *recorder) stop() {
	close(r.queue)
	<-r.stopped
}

func (r *recorder) run() {
	defer close(r.stopped)
	outs := make([]store.Outcome, 0, recorderWindow)
	for first := range r.queue {
		outs = append(outs[:0], first)
	more:
		for len(outs) < recorderWindow {
			select {
			case next, ok := <-r.queue:
				if !ok {
					break more
				}
				outs = append(outs, next)
			default:
				break more
			}
		}
		if r.failed() != nil {
			// The store failed a moment ago: the marking retries these.
			r.giveUp(outs, nil)
		} else if err := r.cy.record(outs); err != nil {
			r.giveUp(outs, err)
		}
		for range outs {
			<-r.slots
		}
		r.pending.Add(-len(outs))
	}
}

// giveUp keeps outs for the marking's retry; err, when set, is the write's.
func (r *recorder) giveUp(outs []store.Outcome, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unwritten = append(r.unwritten, outs...)
	if r.err == nil && err != nil {
		r.err = err
		close(r.broken)
	}
}

// recordWithRetries writes outs, trying again after each of recordRetries
// while the store fails; it returns the last error.
func (cy *cycle) recordWithRetries(outs []store.Outcome) error {
	err := cy.record(outs)
	for _, wait := range recordRetries {
		if err == nil {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-cy.ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %w)", err, context.Cause(cy.ctx))
		case <-t.C:
		}
		err = cy.record(outs)
	}
	return err
}
