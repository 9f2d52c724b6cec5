package poller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/store"
)

// ErrStopping is the cause of a cycle's cancellation when the caller stopped
// it and the message in hand did not finish within Mailbox.StopGrace.
var ErrStopping = errors.New("stopping")

// What happened to one message (Entry.Action).
const (
	EntryForwarded                     = analyzer.ActionForwarded     // sent; marked per after_forward
	EntryFlagged                       = analyzer.ActionFlagged       // in the review folder
	EntryForwardFailed                 = analyzer.ActionForwardFailed // SMTP refused it for good; in the review folder
	EntryDeferred      analyzer.Action = "deferred"                   // left untouched for a later cycle (SMTP backoff, error)
	EntryDone          analyzer.Action = "done-before"                // an outcome was recorded earlier; only the marking was made sure of
)

// maxReportEntries bounds Report.Entries so that a huge first cycle keeps
// flat memory; the counts are always complete.
const maxReportEntries = 1000

// Why a cycle was skipped (Report.SkipReason).
const (
	SkipLeaseHeld = "lease-held" // another worker holds the mailbox lease
	SkipSpacing   = "spacing"    // a worker cycled the mailbox less than Mailbox.Spacing ago
)

// Report is what one cycle did.
type Report struct {
	Mailbox string
	// Skipped: the cycle did nothing, for SkipReason. A skipped cycle is
	// not a finished one: `run --once` exits non-zero (75).
	Skipped    bool
	SkipReason string
	// LeaseExpiresBy is, with SkipLeaseHeld, when the holder's lease ends
	// at the latest unless its holder renews it: now plus Mailbox.LeaseTTL.
	LeaseExpiresBy time.Time
	// ForwardingPaused: forwarding was paused by SMTP trouble when the
	// cycle ended (a temporary failure, or the backoff after one), so
	// mail may be waiting.
	ForwardingPaused bool
	Duration         time.Duration
	Counts           Counts
	Entries          []Entry // at most 1000, in the order handled
}

// Counts are the per-message totals of a cycle. The log keys of a cycle
// (`seen`, `forwarded`, `flagged`, `skipped`, `failed`) are these counts
// wherever they are logged.
type Counts struct {
	Seen      int // messages read (facts fetched)
	Forwarded int
	Flagged   int // including forward-failed
	Skipped   int // messages not acted on this cycle: done before, or deferred
	Failed    int // messages that failed: forward-failed, or an error on the message
	Notified  int // sender notices sent
}

// Entry is one message's line in the report.
type Entry struct {
	Folder   string // where it was read
	UID      uint32
	Released bool            // read from the release folder
	Action   analyzer.Action // Entry* constants
	MovedTo  string          // where it went; "" when it stayed
	Verdict  analyzer.Verdict
	Err      error
}

// Cycle runs one cycle of the mailbox: lease, log in, the watched folder,
// then the release folder. A lease held by another worker is not an error:
// the report says Skipped; so it does when a cycle by any worker finished
// less than Mailbox.Spacing ago. When ctx ends the message in hand is
// finished (within StopGrace), the lease released and the connections
// closed.
func (p *Poller) Cycle(ctx context.Context) (Report, error) { return p.cycle(ctx, true) }

// CycleNow is Cycle that ignores Mailbox.Spacing: an IDLE wake-up says mail
// has come since.
func (p *Poller) CycleNow(ctx context.Context) (Report, error) { return p.cycle(ctx, false) }

func (p *Poller) cycle(ctx context.Context, spaced bool) (rep Report, err error) {
	p.run.Lock()
	defer p.run.Unlock()
	start := time.Now()
	rep.Mailbox = p.mb.Name
	defer func() {
		rep.Duration = time.Since(start)
		rep.ForwardingPaused = p.forwardingPaused()
		if !rep.Skipped {
			p.m.Cycle(p.mb.Name, rep.Duration, err)
		}
	}()

	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("cycle of %s: %w", p.mb.Name, context.Cause(ctx))
	}
	if spaced && p.mb.Spacing > 0 {
		recent, err := p.st.Cycled(ctx, p.mb.Name)
		if err != nil {
			// Spacing only spares logins; the lease still guards the mailbox.
			p.m.StoreError(p.mb.Name)
			p.log.Warn("reading when the mailbox was last cycled failed; cycling", "error", err)
		}
		if recent {
			p.m.Lease(p.mb.Name, false)
			p.log.Debug("mailbox cycled by a worker less than the spacing ago; cycle skipped", "spacing", p.mb.Spacing)
			rep.Skipped, rep.SkipReason = true, SkipSpacing
			return rep, nil
		}
	}
	lease, err := p.st.AcquireLease(ctx, p.mb.Name, p.mb.LeaseTTL)
	if errors.Is(err, store.ErrLeaseHeld) {
		p.m.Lease(p.mb.Name, false)
		rep.Skipped, rep.SkipReason = true, SkipLeaseHeld
		rep.LeaseExpiresBy = time.Now().Add(p.mb.LeaseTTL)
		p.log.Debug("mailbox leased by another worker; cycle skipped", "lease_expires_by", rep.LeaseExpiresBy)
		return rep, nil
	}
	if err != nil {
		p.m.StoreError(p.mb.Name)
		return rep, fmt.Errorf("lease mailbox %s: %w", p.mb.Name, err)
	}
	p.m.Lease(p.mb.Name, true)

	work, cancel, stopWork := p.workContext(ctx)
	defer stopWork()
	stopRenew := p.keepLease(work, lease, cancel)
	defer func() {
		stopRenew()
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), p.mb.IMAP.CommandTimeout)
		defer rcancel()
		// Noted before the lease goes, so that no replica slips in between.
		if err == nil && p.mb.Spacing > 0 {
			if nerr := p.st.NoteCycled(rctx, p.mb.Name, p.mb.Spacing); nerr != nil {
				p.m.StoreError(p.mb.Name)
				p.log.Warn("noting the cycle failed; replicas may cycle the mailbox again", "error", nerr)
			}
		}
		if rerr := lease.Release(rctx); rerr != nil {
			p.log.Warn("release lease", "error", rerr)
		}
		p.m.Lease(p.mb.Name, false)
	}()
	defer func() {
		if cerr := p.fw.Close(); cerr != nil {
			p.log.Debug("close forwarder", "error", cerr)
		}
		if nt := p.mb.Notifier; nt != nil {
			if cerr := nt.Close(); cerr != nil {
				p.log.Debug("close notice sender", "error", cerr)
			}
		}
	}()

	c, err := p.dial(work, nil)
	if err != nil {
		return rep, err
	}
	defer c.logout(work)

	f, err := p.folders(work, c)
	if err != nil {
		return rep, err
	}
	cy := &cycle{p: p, c: c, f: f, stop: ctx, ctx: work, rep: &rep, ensured: make(map[string]bool)}
	cy.forwarding, _ = p.forwardingAllowed(time.Now())
	if !cy.forwarding {
		p.log.Debug("forwarding backed off this cycle")
	}
	if err := cy.watched(); err != nil {
		return rep, cy.setAsideAfterTrip(err)
	}
	if f.Release != "" {
		if err := cy.release(); err != nil {
			return rep, cy.setAsideAfterTrip(err)
		}
	}
	cy.markNotified()
	cy.backlog()
	cy.digest()
	return rep, nil
}

// workContext is the context of a cycle's I/O. It outlives ctx by StopGrace
// so that the message in hand finishes; cancel ends it at once (lease lost).
func (p *Poller) workContext(ctx context.Context) (context.Context, context.CancelCauseFunc, func()) {
	work, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(p.mb.StopGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel(ErrStopping)
		case <-work.Done():
		}
	})
	return work, cancel, func() { stop(); cancel(nil) }
}

// keepLease renews the lease every LeaseTTL/3 until the returned stop is
// called. A lease found lost (store.ErrLeaseLost: expired or taken over)
// cancels the cycle at once. A renewal that fails because the store does
// not answer is tried again at the next tick while the lease is still ours
// with a third of its TTL to spare, so that a store outage shorter than
// that leaves the cycle time to mark the mail it sent (marks); after that
// the cycle is cancelled, since another worker may take the mailbox over.
func (p *Poller) keepLease(work context.Context, lease store.Lease, cancel context.CancelCauseFunc) func() {
	quit := make(chan struct{})
	done := make(chan struct{})
	every := p.mb.LeaseTTL / 3
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		renewed := time.Now()
		for {
			select {
			case <-quit:
				return
			case <-work.Done():
				return
			case <-t.C:
				rctx, rcancel := context.WithTimeout(work, every)
				err := lease.Renew(rctx)
				rcancel()
				switch {
				case err == nil:
					renewed = time.Now()
				case errors.Is(err, store.ErrLeaseLost) || time.Since(renewed) >= p.mb.LeaseTTL-every:
					p.m.StoreError(p.mb.Name)
					p.log.Error("lease renewal failed; cycle cancelled", "error", err)
					cancel(fmt.Errorf("renew lease of %s: %w", p.mb.Name, err))
					return
				default:
					p.m.StoreError(p.mb.Name)
					p.log.Warn("lease renewal failed; trying again while the lease lasts", "expires_in", p.mb.LeaseTTL-time.Since(renewed), "error", err)
				}
			}
		}
	}()
	return func() { close(quit); <-done }
}

// cycle is the state of one cycle's IMAP session.
type cycle struct {
	p          *Poller
	c          *conn
	f          Folders         // the folders as the server names them
	stop       context.Context // ends when the caller asks the cycle to stop
	ctx        context.Context // the I/O context
	rep        *Report
	marks      *marks           // of the folder being read
	sel        *imap.SelectData // the selected folder
	folder     string           // its name
	ensured    map[string]bool  // folders known to exist this cycle
	forwarding bool             // false after a temporary SMTP failure or while backing off
	dryRun     bool             // a dry run (DryRun): the store is only read
	notices    noticeRound      // the sender notices of the cycle (notify.go)
}

// stopped reports the caller's stop request as an error, between messages.
func (cy *cycle) stopped() error {
	if cy.stop.Err() != nil {
		return fmt.Errorf("cycle of %s stopped: %w", cy.p.mb.Name, context.Cause(cy.stop))
	}
	return nil
}

// watched handles the new messages of the watched folder, batch by batch,
// and advances the high-water mark over the done prefix.
func (cy *cycle) watched() error {
	p := cy.p
	state, err := p.st.MailboxState(cy.ctx, p.mb.Name)
	if err != nil {
		p.m.StoreError(p.mb.Name)
		return fmt.Errorf("read state of %s: %w", p.mb.Name, err)
	}
	if state.UIDValidity != 0 {
		// STATUS costs the server far less than SELECT on a big folder
		// (Dovecot answers it from its indexes without a resync), so an
		// idle cycle ends here.
		st, err := cy.c.status(cy.ctx, cy.f.Watched)
		if err != nil {
			return err
		}
		if st.UIDValidity == state.UIDValidity && st.UIDNext != 0 && uint32(st.UIDNext) <= state.HighWater+1 {
			return nil
		}
	}
	if err := cy.selectFolder(cy.f.Watched); err != nil {
		return err
	}
	if state.UIDValidity != cy.sel.UIDValidity {
		if state.UIDValidity != 0 {
			p.log.Warn("UIDVALIDITY changed: rereading the folder; recorded outcomes keep done mail from being acted on again",
				"folder", cy.folder, "old", state.UIDValidity, "new", cy.sel.UIDValidity)
		}
		state = store.MailboxState{UIDValidity: cy.sel.UIDValidity}
		if err := cy.setState(state); err != nil {
			return err
		}
	}
	if cy.sel.NumMessages == 0 || (cy.sel.UIDNext != 0 && uint32(cy.sel.UIDNext) <= state.HighWater+1) {
		return nil
	}
	uids, err := cy.c.search(cy.ctx, cy.folder, state.HighWater)
	if err != nil {
		return err
	}
	blocked := false
	return cy.pipeline(uids, false, func(batch []imap.UID, done map[imap.UID]bool) error {
		advanced := false
		for _, uid := range batch {
			if blocked || !done[uid] {
				blocked = true
				break
			}
			state.HighWater = uint32(uid)
			advanced = true
		}
		if !advanced {
			return nil
		}
		return cy.setState(state)
	})
}

// prefetch is the facts of one batch, fetched ahead.
type prefetch struct {
	uids []imap.UID
	msgs []*message
	err  error
}

// ahead is a facts FETCH in flight in its own goroutine, followed by the
// classification of what it brought and the thread lookups. The goroutines
// of a pipeline run one after the other, so a batch finds the threads of
// the batches before it noted.
type ahead struct {
	fetched chan struct{} // closed once the IMAP commands are done
	ch      chan prefetch
	got     *prefetch
}

// wait returns the classified facts; it may be called again.
func (a *ahead) wait() prefetch {
	if a.got == nil {
		f := <-a.ch
		a.got = &f
	}
	return *a.got
}

// pipeline handles uids in batches of BatchSize. The facts of the next
// batch are fetched (same connection, pipelined), classified and threaded
// while the current batch is looked up and forwarded. The fetch ends
// before the current batch's bodies stream (awaitFacts), so that no command
// waits behind a long body transfer and runs out of its timeout;
// classification goes on beside the transfer. The marking of several
// batches is made together (marks); after sees each batch's done UIDs once
// it is made.
func (cy *cycle) pipeline(uids []imap.UID, released bool, after func(batch []imap.UID, done map[imap.UID]bool) error) error {
	cy.marks = newMarks()
	var next *ahead
	fetchNext := func() {
		next = nil
		if len(uids) == 0 {
			return
		}
		n := min(len(uids), cy.p.mb.BatchSize)
		batch := uids[:n]
		uids = uids[n:]
		a := &ahead{fetched: make(chan struct{}), ch: make(chan prefetch, 1)}
		go func() {
			msgs, err := cy.facts(batch)
			close(a.fetched)
			if err == nil {
				err = cy.classify(msgs)
			}
			if err == nil {
				cy.threads(msgs)
			}
			a.ch <- prefetch{uids: batch, msgs: msgs, err: err}
		}()
		next = a
	}
	awaitFacts := func() {
		if next != nil {
			<-next.fetched
		}
	}
	defer func() { // the goroutine in flight ends before the cycle does
		if next != nil {
			next.wait()
		}
	}()
	fetchNext()
	for next != nil {
		if err := cy.stopped(); err != nil {
			return cy.markBefore(err, released, after)
		}
		f := next.wait()
		if f.err != nil {
			next = nil
			return cy.markBefore(f.err, released, after)
		}
		fetchNext()
		if err := cy.batch(f.msgs, released, awaitFacts); err != nil {
			return cy.markBefore(err, released, after)
		}
		cy.marks.queued(f.uids)
		if cy.marks.due(cy.p.mb.MarkEvery, cy.p.mb.MarkDelay) {
			if err := cy.mark(released, after); err != nil {
				return err
			}
		}
	}
	return cy.mark(released, after)
}

// markBefore makes the queued marks before the cycle ends with err (a stop,
// a failed fetch, a store that fails): a few commands, and mail sent but
// not recorded is then marked on the server.
func (cy *cycle) markBefore(err error, released bool, after func(batch []imap.UID, done map[imap.UID]bool) error) error {
	if cy.c.broken() {
		return err
	}
	if merr := cy.mark(released, after); merr != nil {
		return errors.Join(err, merr)
	}
	return err
}

// release forwards every message of the release folder, whatever its class.
func (cy *cycle) release() error {
	ok, err := cy.c.exists(cy.ctx, cy.f.Release)
	if err != nil || !ok {
		return err
	}
	if err := cy.selectFolder(cy.f.Release); err != nil {
		return err
	}
	if cy.sel.NumMessages == 0 {
		return nil
	}
	uids, err := cy.c.search(cy.ctx, cy.folder, 0)
	if err != nil {
		return err
	}
	return cy.pipeline(uids, true, nil)
}

func (cy *cycle) selectFolder(folder string) error {
	sel, err := cy.c.selectFolder(cy.ctx, folder, cy.dryRun) // EXAMINE in a dry run
	if err != nil {
		return err
	}
	cy.sel, cy.folder = sel, folder
	return nil
}

func (cy *cycle) setState(st store.MailboxState) error {
	if err := cy.p.st.SetMailboxState(cy.ctx, cy.p.mb.Name, st); err != nil {
		cy.p.m.StoreError(cy.p.mb.Name)
		return fmt.Errorf("save state of %s: %w", cy.p.mb.Name, err)
	}
	return nil
}

// record writes outcomes; a failure is returned after counting it.
func (cy *cycle) record(outs []store.Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	if err := cy.p.st.RecordOutcomes(cy.ctx, cy.p.mb.Name, outs); err != nil {
		cy.p.m.StoreError(cy.p.mb.Name)
		return fmt.Errorf("record %d outcomes in %s: %w", len(outs), cy.p.mb.Name, err)
	}
	return nil
}

// note adds a message's line to the report and counts it.
func (cy *cycle) note(e Entry) {
	c := &cy.rep.Counts
	switch e.Action {
	case EntryForwarded:
		c.Forwarded++
	case EntryFlagged:
		c.Flagged++
	case EntryForwardFailed:
		c.Flagged++
		c.Failed++
	default:
		c.Skipped++
		if e.Err != nil {
			c.Failed++
		}
	}
	if len(cy.rep.Entries) < maxReportEntries {
		cy.rep.Entries = append(cy.rep.Entries, e)
	}
}

// temporary reports whether err says to try again later (SMTP 4xx,
// connection trouble): forwarder errors carry a Temporary method.
func temporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// failureKind labels a forward failure for Metrics.ForwardFailed: the
// forwarder's kind (connect, session, tls, auth, temporary, rejected, size,
// protocol) when it says one, else temporary or permanent.
func failureKind(err error) string {
	var k interface{ FailureKind() string }
	if errors.As(err, &k) && k.FailureKind() != "" {
		return k.FailureKind()
	}
	if temporary(err) {
		return "temporary"
	}
	return "permanent"
}
