package poller

import (
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/store"
)

// marks is the marking that waits while later batches are read: the
// forwarded messages to mark per after_forward, the messages to flag into
// the review folder, and the batches whose high-water advance waits for
// both. Every STORE and MOVE costs the server a resync of the folder (on
// a 10,000-message Maildir, Dovecot takes 5 to 30 ms each whatever the
// set's size), so several batches' marks go in one command each.
//
// The order SMTP 250 → outcome record → IMAP marking → high-water holds:
// only recorded mail waits here, so a crash before the marking is made
// costs a later cycle the marking of mail it finds done, never a second
// forward. Flagged mail waiting here is simply read again.
type marks struct {
	forwarded []*message // recorded as forwarded, or in unrecorded
	// unrecorded are the records of forwarded mail still to write: those a
	// failed write left (recorder) and those rebuilt from the server's
	// marks (batch). They are tried again before the marking, which is
	// made whatever the result; when they still fail the cycle ends.
	unrecorded  []store.Outcome
	storeFailed bool         // a record write failed and forwarding paused: mark now
	flagged     []*message   // to flag; recorded says whose outcome is written already
	batches     [][]imap.UID // read, in order
	done        map[imap.UID]bool
	read        int       // messages in batches
	since       time.Time // when the first of batches was queued
}

func newMarks() *marks { return &marks{done: make(map[imap.UID]bool)} }

// queued notes a batch read.
func (mk *marks) queued(uids []imap.UID) {
	if len(mk.batches) == 0 {
		mk.since = time.Now()
	}
	mk.batches = append(mk.batches, uids)
	mk.read += len(uids)
}

// due reports whether the marks should be made now: at once after a
// record could not be written.
func (mk *marks) due(every int, delay time.Duration) bool {
	return mk.storeFailed || len(mk.batches) > 0 && (mk.read >= every || time.Since(mk.since) >= delay)
}

// mark makes the queued marks: the records still to write first (with
// retries), then the forwarded mail — marked even when those records
// failed, so that the server's marks keep it from being sent again — then
// the flagged, then after sees each batch's done UIDs in order. A record
// that could not be written ends the cycle after the marking, before any
// high-water advance; one written on a retry resumes forwarding. The queue is empty afterwards, whatever the result.
func (cy *cycle) mark(released bool, after func(batch []imap.UID, done map[imap.UID]bool) error) error {
	mk := cy.marks
	cy.marks = newMarks()
	var recErr error
	if len(mk.unrecorded) > 0 {
		if recErr = cy.recordWithRetries(mk.unrecorded); recErr != nil {
			cy.p.log.Error("outcome records still not written: the marks on the server stand for them",
				"folder", cy.folder, "messages", len(mk.unrecorded), "error", recErr)
		}
	}
	if err := cy.markForwarded(mk.forwarded, released, mk.done); err != nil {
		return errors.Join(recErr, err)
	}
	if err := cy.flag(mk.flagged, mk.done); err != nil {
		return errors.Join(recErr, err)
	}
	if recErr != nil {
		return recErr
	}
	if mk.storeFailed {
		// The store answers again: forwarding goes on.
		cy.forwarding, _ = cy.p.forwardingAllowed(time.Now())
		cy.p.log.Info("outcome records written on a retry; forwarding resumes", "folder", cy.folder, "messages", len(mk.unrecorded))
	}
	if after == nil {
		return nil
	}
	for _, b := range mk.batches {
		if err := after(b, mk.done); err != nil {
			return err
		}
	}
	return nil
}
