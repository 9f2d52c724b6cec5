package poller

import (
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/analyzer"
)

// setAsideAfterTrip follows a cycle error: when the nesting guard dropped
// the session in the response about one message, that message is flagged
// $Unparseable and moved to the review folder over a new session, so that
// the next cycle gets past it instead of failing on it for good. The
// message is flagged whatever the policy says of unparseable mail: nothing
// of it could be read. err is returned, joined with any failure of this.
func (cy *cycle) setAsideAfterTrip(err error) error {
	seq := cy.c.guard.trippedAt()
	if !errors.Is(err, ErrNestingTooDeep) || seq == 0 {
		return err
	}
	return errors.Join(err, cy.setAside(seq))
}

// setAside flags message seq of the folder being read and moves it to the
// review folder, over a new session.
func (cy *cycle) setAside(seq uint32) error {
	p := cy.p
	folder := cy.folder
	c, err := p.dial(cy.ctx, nil)
	if err != nil {
		return fmt.Errorf("set aside message %d of %s: %w", seq, folder, err)
	}
	defer c.logout(cy.ctx)
	q := &cycle{p: p, c: c, stop: cy.stop, ctx: cy.ctx, rep: cy.rep, ensured: cy.ensured}
	if err := q.selectFolder(folder); err != nil {
		return fmt.Errorf("set aside message %d: %w", seq, err)
	}
	uid, err := c.uidOf(cy.ctx, seq)
	if err != nil {
		return fmt.Errorf("set aside message %d of %s: %w", seq, folder, err)
	}
	set := imap.UIDSetNum(uid)
	if err := c.store(cy.ctx, set, q.allowed([]imap.Flag{KeywordUnparseable, imap.FlagFlagged})); err != nil {
		return fmt.Errorf("flag uid %d in %s: %w", uid, folder, err)
	}
	moved, err := q.moveOut(set, p.mb.ReviewFolder)
	if err != nil {
		return err
	}
	var v analyzer.Verdict
	v.MarkUnparseable(ErrNestingTooDeep.Error(), analyzer.Policy{analyzer.ClassUnparseable: analyzer.ActionFlag})
	m := &message{Facts: Facts{UID: uid}, v: v}
	p.m.Message(p.mb.Name, v.Class, EntryFlagged)
	p.log.Warn("flagged", q.attrs(m, EntryFlagged, nil)...)
	e := Entry{Folder: folder, UID: uint32(uid), Released: folder == p.mb.ReleaseFolder, Action: EntryFlagged, Verdict: v, Err: ErrNestingTooDeep}
	if moved {
		e.MovedTo = p.mb.ReviewFolder
	}
	q.note(e)
	return nil
}
