package poller

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/notify"
)

// KeywordNotified marks a flagged message whose sender got a notice.
const KeywordNotified imap.Flag = "$Notified"

// Notifier tells the sender of flagged mail that it was kept for a
// person. notify.Notifier implements it.
type Notifier interface {
	// Wants reports whether a class takes notices, so that the header is
	// kept only for mail that may need one.
	Wants(c notify.Class) bool
	Notify(ctx context.Context, mailbox string, m notify.Message) (notify.Result, error)
	Close() error // at the end of each cycle, as Forwarder's
}

// noticeRound is what a cycle's notices left to do.
type noticeRound struct {
	sent []string // Message-IDs whose senders got a notice, for KeywordNotified
	down bool     // a notice failed for a temporary reason: no more are tried
}

// notifySearchChunk bounds the Message-IDs one UID SEARCH of the review
// folder asks for.
const notifySearchChunk = 50

// keepNotice keeps the header fields a notice reads, when notices are on
// and the message may need one (flagged now, or refused by the helpdesk
// later).
func (cy *cycle) keepNotice(m *message, h analyzer.Header) {
	nt := cy.p.mb.Notifier
	if nt == nil {
		return
	}
	c := notify.ClassOf(m.v, false)
	if (m.v.Action == analyzer.ActionFlag && nt.Wants(c)) || nt.Wants(notify.ClassForwardFailed) {
		m.notice = notify.Keep(h)
	}
}

// notify sends the notices of msgs, just flagged into the review folder,
// and notes the Message-IDs whose copies get KeywordNotified at the end
// of the cycle (markNotified). A failed notice is logged; a temporary
// failure (the route down, 4xx) ends the notices of the cycle. The message
// stays flagged, without the keyword.
func (cy *cycle) notify(msgs []*message) {
	p := cy.p
	nt := p.mb.Notifier
	if nt == nil {
		return
	}
	for _, m := range msgs {
		if m.recorded || cy.notices.down {
			continue
		}
		c := notify.ClassOf(m.v, hasFlag(m.Flags, KeywordForwardFailed))
		if !nt.Wants(c) {
			continue
		}
		res, err := nt.Notify(cy.ctx, p.mb.Name, notify.Message{Class: c, Header: m.notice, Verdict: m.v})
		m.notice = nil
		attrs := []any{slog.Uint64("uid", uint64(m.UID)), slog.String("message_id", m.v.MessageID), slog.String("class", string(c))}
		switch {
		case err != nil && temporary(err):
			// The route is down or busy: the rest of the cycle's notices
			// would each wait for the same failure, and the flagging
			// with them.
			cy.notices.down = true
			p.log.Warn("sender notice failed; no more notices this cycle", append(attrs, slog.Any("error", err))...)
		case err != nil:
			// Refused for this recipient (5xx): the others may go.
			p.log.Warn("sender notice refused", append(attrs, slog.Any("error", err))...)
		case res.Sent:
			p.log.Info("sender notified", attrs...)
			cy.rep.Counts.Notified++
			if m.v.MessageID != "" {
				cy.notices.sent = append(cy.notices.sent, m.v.MessageID)
			} else {
				p.log.Info("no Message-ID to find the copy by: it goes without "+string(KeywordNotified), attrs...)
			}
		case res.Rule != nil:
			p.log.Info("no sender notice", append(attrs, slog.String("rule", res.Rule.Name), slog.String("why", res.Rule.Reason))...)
		}
	}
}

// markNotified sets KeywordNotified on the review folder's copies of the
// messages whose senders got a notice this cycle, found by Message-ID. It
// runs after the folders' pipelines, since it selects the review folder.
func (cy *cycle) markNotified() {
	ids := cy.notices.sent
	cy.notices.sent = nil
	if len(ids) == 0 {
		return
	}
	p := cy.p
	if err := cy.selectFolder(p.mb.ReviewFolder); err != nil {
		p.log.Warn("marking notified mail failed", "folder", p.mb.ReviewFolder, "error", err)
		return
	}
	flags := cy.allowed([]imap.Flag{KeywordNotified})
	if len(flags) == 0 {
		return
	}
	for len(ids) > 0 {
		n := min(len(ids), notifySearchChunk)
		chunk := ids[:n]
		ids = ids[n:]
		uids, err := cy.searchMessageIDs(chunk)
		if err == nil {
			err = cy.c.store(cy.ctx, uids, flags)
		}
		if err != nil {
			p.log.Warn("marking notified mail failed", "folder", p.mb.ReviewFolder, "error", err)
			return
		}
	}
}

// searchMessageIDs returns the UIDs of the selected folder whose
// Message-ID is one of ids.
func (cy *cycle) searchMessageIDs(ids []string) (imap.UIDSet, error) {
	var crit *imap.SearchCriteria
	for _, id := range ids {
		c := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "<" + id + ">"}}}
		if crit != nil {
			c = &imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{*crit, *c}}}
		}
		crit = c
	}
	var set imap.UIDSet
	err := cy.c.do(cy.ctx, func() error {
		data, err := cy.c.c.UIDSearch(crit, nil).Wait()
		if err != nil {
			return err
		}
		for _, uid := range data.AllUIDs() {
			set.AddNum(uid)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("search %s by Message-ID: %w", cy.folder, err)
	}
	return set, nil
}
