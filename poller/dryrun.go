package poller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/store"
)

// DryRunOptions choose the messages a dry run reads. The zero value reads
// what a cycle would: the watched folder above the recorded high-water
// mark, and the release folder.
type DryRunOptions struct {
	// Limit reads only the last Limit messages of each folder (by UID),
	// whatever the high-water mark; 0 = no limit.
	Limit int
	// Since reads only the messages whose internal date (delivery) is on or
	// after this day (IMAP SEARCH SINCE, RFC 9051 6.4.4: day granularity),
	// whatever the high-water mark; zero = no bound.
	Since time.Time
}

// errDryRunStopped ends a dry run whose consumer stopped reading.
var errDryRunStopped = errors.New("dry run stopped by its reader")

// DryRun classifies the messages a cycle would read (or those opt chooses)
// with the cycle's own facts fetch and classification, and yields for each
// one what the cycle would do with it: Action is EntryForwarded,
// EntryFlagged or EntryDone, MovedTo where the message would go, and the
// Verdict's Action and Reasons say it for the `scan --json` contract
// (released mail forwarded whatever its class, mail done before only
// re-marked).
//
// A dry run changes nothing: it opens the folders with EXAMINE (RFC 9051
// 6.3.3), fetches with BODY.PEEK (the bodies of what would be forwarded
// too, read and dropped, for the check a cycle makes while it sends them:
// analyzer.CloseCheck), sends nothing, and only reads the store
// (high-water mark, outcomes, thread keys; it notes no thread, so a reply
// to a message read in an earlier batch of the same dry run keeps the
// thread key its headers give). It
// takes no lease, because a lease is a write and would make a running
// worker skip the mailbox; a read-only session beside a running worker is
// safe, and what it shows is what a cycle starting now would do. A failure
// is yielded last, with a zero Entry.
func (p *Poller) DryRun(ctx context.Context, opt DryRunOptions) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		err := p.dryRun(ctx, opt, yield)
		if err != nil && !errors.Is(err, errDryRunStopped) {
			yield(Entry{}, fmt.Errorf("dry run of %s: %w", p.mb.Name, err))
		}
	}
}

func (p *Poller) dryRun(ctx context.Context, opt DryRunOptions, yield func(Entry, error) bool) error {
	state, err := p.st.MailboxState(ctx, p.mb.Name)
	if err != nil {
		return fmt.Errorf("read state of %s: %w", p.mb.Name, err)
	}
	c, err := p.dial(ctx, nil)
	if err != nil {
		return err
	}
	defer c.logout(ctx)
	cy := &cycle{p: p, c: c, stop: ctx, ctx: ctx, rep: &Report{Mailbox: p.mb.Name}, ensured: make(map[string]bool), dryRun: true}

	if err := cy.selectFolder(p.mb.Folder); err != nil {
		return err
	}
	after := uint32(0)
	if opt.Limit == 0 && opt.Since.IsZero() && state.UIDValidity == cy.sel.UIDValidity {
		after = state.HighWater
	}
	if err := cy.preview(opt, after, false, yield); err != nil {
		return err
	}
	if p.mb.ReleaseFolder == "" {
		return nil
	}
	ok, err := c.exists(ctx, p.mb.ReleaseFolder)
	if err != nil || !ok {
		return err
	}
	if err := cy.selectFolder(p.mb.ReleaseFolder); err != nil {
		return err
	}
	return cy.preview(opt, 0, true, yield)
}

// preview yields what a cycle would do with the chosen messages of the
// examined folder, batch by batch.
func (cy *cycle) preview(opt DryRunOptions, after uint32, released bool, yield func(Entry, error) bool) error {
	if cy.sel.NumMessages == 0 {
		return nil
	}
	uids, err := cy.dryRunUIDs(opt, after)
	if err != nil {
		return err
	}
	for len(uids) > 0 {
		n := min(len(uids), cy.p.mb.BatchSize)
		batch := uids[:n]
		uids = uids[n:]
		msgs, err := cy.facts(batch)
		if err != nil {
			return err
		}
		if err := cy.classify(msgs); err != nil {
			return err
		}
		cy.threads(msgs)
		fps := make([]string, 0, len(msgs))
		for _, m := range msgs {
			if m.v.Fingerprint != "" {
				fps = append(fps, m.v.Fingerprint)
			}
		}
		outcomes, err := cy.p.st.Outcomes(cy.ctx, cy.p.mb.Name, fps)
		if err != nil {
			return fmt.Errorf("look up %d outcomes in %s: %w", len(fps), cy.p.mb.Name, err)
		}
		var forward []*message
		for _, m := range msgs {
			if _, known := outcomes[m.v.Fingerprint]; !known && !released && m.v.Action == analyzer.ActionForward {
				forward = append(forward, m)
			}
		}
		if err := cy.closeCheck(forward); err != nil {
			return err
		}
		for _, m := range msgs {
			if released && hasFlag(m.Flags, imap.FlagDeleted) {
				continue // our moved-out original on a server without UIDPLUS
			}
			out, known := outcomes[m.v.Fingerprint]
			if !yield(cy.wouldDo(m, out, known, released), nil) {
				return errDryRunStopped
			}
		}
	}
	return nil
}

// closeCheck reads the bodies of the messages a cycle would forward
// through analyzer.CloseCheck, as the cycle does while it sends them, and
// marks a multipart cut short unparseable (flagged by the default policy).
// Nothing is sent: the bodies are read and dropped.
func (cy *cycle) closeCheck(msgs []*message) error {
	policy := cy.p.mb.Policy
	if len(msgs) == 0 || policy.Action(analyzer.ClassUnparseable) != analyzer.ActionFlag {
		return nil
	}
	byUID := make(map[imap.UID]*message, len(msgs))
	for _, m := range msgs {
		byUID[m.UID] = m
	}
	for _, uids := range bodyChunks(msgs) {
		stream := cy.c.streamBodies(cy.ctx, uids)
		for uid, body := range stream.All() {
			m := byUID[uid]
			if m == nil {
				continue
			}
			_, err := io.Copy(io.Discard, analyzer.CloseCheck(body, m.BodyStructure))
			var truncated *analyzer.TruncationError
			if errors.As(err, &truncated) {
				m.v.MarkUnparseable(truncated.Error(), policy)
			}
		}
		if err := stream.Err(); err != nil {
			return fmt.Errorf("read bodies of uids %v in %s: %w", imap.UIDSetNum(uids...), cy.folder, err)
		}
	}
	return nil
}

// dryRunUIDs are the UIDs of the examined folder a dry run reads: above
// after, or those opt chooses.
func (cy *cycle) dryRunUIDs(opt DryRunOptions, after uint32) ([]imap.UID, error) {
	var uids []imap.UID
	if opt.Since.IsZero() {
		var err error
		if uids, err = cy.c.search(cy.ctx, cy.folder, after); err != nil {
			return nil, err
		}
	} else {
		err := cy.c.do(cy.ctx, func() error {
			data, err := cy.c.c.UIDSearch(&imap.SearchCriteria{Since: opt.Since}, nil).Wait()
			if err != nil {
				return err
			}
			uids = data.AllUIDs()
			slices.Sort(uids)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("search %s since %s: %w", cy.folder, opt.Since.Format(time.DateOnly), err)
		}
	}
	if opt.Limit > 0 && len(uids) > opt.Limit {
		uids = uids[len(uids)-opt.Limit:]
	}
	return uids, nil
}

// wouldDo is the Entry of what a cycle would do with m, in the order batch
// decides it: mail with a recorded outcome is only re-marked (released mail
// flagged before is forwarded), released mail is forwarded whatever its
// class, the rest goes by its verdict. The verdict's
// Action and Reasons are set to say so.
func (cy *cycle) wouldDo(m *message, out store.Outcome, known, released bool) Entry {
	e := Entry{Folder: cy.folder, UID: uint32(m.UID), Released: released, Verdict: m.v}
	v := &e.Verdict
	switch {
	case known && (!released || out.Action == analyzer.ActionForwarded || hasFlag(m.Flags, imap.FlagDeleted)):
		e.Action = EntryDone
		e.MovedTo = out.Folder
		v.Action = analyzer.ActionFlag
		if out.Action == analyzer.ActionForwarded {
			v.Action = analyzer.ActionForward
		}
		v.Reasons = append([]string{fmt.Sprintf("done before: recorded as %s at %s; only its marking would be made sure of",
			out.Action, out.At.UTC().Format(time.RFC3339))}, v.Reasons...)
	case released:
		e.Action = EntryForwarded
		e.MovedTo = cy.forwardedFolder(true)
		v.Action = analyzer.ActionForward
		v.Reasons = append([]string{fmt.Sprintf("released: in %s, so forwarded whatever its class", cy.folder)}, v.Reasons...)
	case v.Action == analyzer.ActionFlag:
		e.Action = EntryFlagged
		e.MovedTo = cy.p.mb.ReviewFolder
	default:
		e.Action = EntryForwarded
		e.MovedTo = cy.forwardedFolder(false)
	}
	if e.MovedTo == cy.folder {
		e.MovedTo = ""
	}
	return e
}
