package poller

import (
	"time"

	"github.com/emersion/go-imap/v2"
)

// reviewState is what the last look at the review folder found; the
// oldest message is read again only when STATUS says the folder changed.
type reviewState struct {
	validity, next, n uint32
	oldest            time.Time
}

// backlog reports the review folder's backlog to Metrics.Review at the end
// of a cycle: its messages (STATUS, answered from the server's index) and
// the INTERNALDATE of its first message, the one waiting longest (read with
// EXAMINE and FETCH only when the folder changed). With no metrics it
// asks nothing. A failure is logged; the cycle has done its work.
func (cy *cycle) backlog() {
	p := cy.p
	if _, off := p.m.(noMetrics); off {
		return
	}
	folder := p.mb.ReviewFolder
	var st *imap.StatusData
	err := cy.c.do(cy.ctx, func() error {
		var err error
		st, err = cy.c.c.Status(folder, &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true}).Wait()
		return err
	})
	if err != nil || st.NumMessages == nil {
		p.log.Debug("review backlog not measured", "folder", folder, "error", err)
		return
	}
	now := reviewState{validity: st.UIDValidity, next: uint32(st.UIDNext), n: *st.NumMessages}
	last := p.review
	switch {
	case now.n == 0:
	case now.validity == last.validity && now.next == last.next && now.n == last.n:
		now.oldest = last.oldest
	default:
		if now.oldest, err = cy.firstArrival(folder); err != nil {
			p.log.Debug("review backlog: oldest message not read", "folder", folder, "error", err)
			return
		}
	}
	p.review = now
	p.m.Review(p.mb.Name, int(now.n), now.oldest)
}

// firstArrival is the INTERNALDATE of folder's first message.
func (cy *cycle) firstArrival(folder string) (time.Time, error) {
	if _, err := cy.c.selectFolder(cy.ctx, folder, true); err != nil {
		return time.Time{}, err
	}
	var at time.Time
	err := cy.c.do(cy.ctx, func() error {
		bufs, err := cy.c.c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{InternalDate: true}).Collect()
		if len(bufs) > 0 {
			at = bufs[0].InternalDate
		}
		return err
	})
	return at, err
}
