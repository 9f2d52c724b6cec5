package poller

import (
	"time"

	"github.com/emersion/go-imap/v2"
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
	forwarded []*message   // recorded as forwarded
	flagged   []*message   // to flag; recorded says whose outcome is written already
	batches   [][]imap.UID // read, in order
	done      map[imap.UID]bool
	read      int       // messages in batches
	since     time.Time // when the first of batches was queued
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

// due reports whether the marks should be made now.
func (mk *marks) due(every int, delay time.Duration) bool {
	return len(mk.batches) > 0 && (mk.read >= every || time.Since(mk.since) >= delay)
}

// mark makes the queued marks: forwarded mail first (its outcome is
// written), then the flagged, then after sees each batch's done UIDs in
// order. The queue is empty afterwards, whatever the result.
func (cy *cycle) mark(released bool, after func(batch []imap.UID, done map[imap.UID]bool) error) error {
	mk := cy.marks
	cy.marks = newMarks()
	if err := cy.markForwarded(mk.forwarded, released, mk.done); err != nil {
		return err
	}
	if err := cy.flag(mk.flagged, mk.done); err != nil {
		return err
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
