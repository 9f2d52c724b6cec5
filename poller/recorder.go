package poller

import (
	"sync"

	"github.com/mailtriage/mailtriage/store"
)

// recorderQueue bounds the records waiting to be written; a full queue
// makes the forward loop wait for the disk, so the duplicate window stays
// at most this many messages.
const recorderQueue = 64

// recorder writes the outcome records of forwarded mail behind the forward
// loop. Each record is queued right after its SMTP 250 and written together
// with whatever else is queued by then (group commit), so that a disk sync
// (bbolt) or a round trip (Redis) overlaps the next message's transfer
// instead of stalling it. Marking waits for flush: the order SMTP 250 →
// record → IMAP marking → high-water holds for every message. The duplicate
// window of DESIGN.md section 2 is the records queued but not yet written —
// in practice the messages sent during one sync, at most recorderQueue.
type recorder struct {
	cy      *cycle
	queue   chan recorded
	pending sync.WaitGroup // records queued and not yet written
	stopped chan struct{}
}

// recorded is one queued record and what to log if it cannot be written.
type recorded struct {
	out store.Outcome
	m   *message
}

func (cy *cycle) startRecorder() *recorder {
	r := &recorder{cy: cy, queue: make(chan recorded, recorderQueue), stopped: make(chan struct{})}
	go r.run()
	return r
}

// add queues the record of a message the SMTP server accepted.
func (r *recorder) add(m *message, out store.Outcome) {
	r.pending.Add(1)
	r.queue <- recorded{out: out, m: m}
}

// flush waits until every record added so far is written (or failed and
// logged).
func (r *recorder) flush() { r.pending.Wait() }

// stop flushes and ends the writer goroutine.
func (r *recorder) stop() {
	close(r.queue)
	<-r.stopped
}

func (r *recorder) run() {
	defer close(r.stopped)
	batch := make([]recorded, 0, recorderQueue)
	outs := make([]store.Outcome, 0, recorderQueue)
	for first := range r.queue {
		batch = append(batch[:0], first)
	more:
		for len(batch) < recorderQueue {
			select {
			case next, ok := <-r.queue:
				if !ok {
					break more
				}
				batch = append(batch, next)
			default:
				break more
			}
		}
		outs = outs[:0]
		for _, rec := range batch {
			outs = append(outs, rec.out)
		}
		if err := r.cy.record(outs); err != nil {
			for _, rec := range batch {
				r.cy.p.log.Error("forwarded but not recorded: a UIDVALIDITY reset would send it again",
					r.cy.attrs(rec.m, EntryForwarded, err)...)
			}
		}
		r.pending.Add(-len(batch))
	}
}
