package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/robfig/cron/v3"
)

// Scheduling limits.
const (
	// Parallel bounds how many mailbox cycles Run and RunOnce work on at
	// once, so that hundreds of mailboxes on one schedule do not open
	// hundreds of IMAP and SMTP connections in the same second.
	Parallel = 4
	// idleRefresh is how often an IDLE is ended with a NOOP to find dead
	// connections (RFC 2177 asks for less than 29 minutes).
	idleRefresh = 10 * time.Minute
	// idleMaxBackoff caps the wait between IDLE reconnection attempts.
	idleMaxBackoff = 5 * time.Minute
)

// Run schedules every poller's cycles with cron (standard five-field specs
// and descriptors such as "@every 1m") and, for mailboxes with Idle, IMAP
// IDLE wake-ups, until ctx ends. Cycles of one mailbox never overlap; a
// panic in one mailbox is logged and the others go on. It returns when every
// goroutine it started has ended: the cycles in hand finished their message,
// released their lease and closed their connections.
func Run(ctx context.Context, pollers []*Poller, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl := cronLogger{log}
	// Recover inside SkipIfStillRunning: a panic that escaped the latter
	// would keep its token and skip the mailbox for good.
	c := cron.New(cron.WithLogger(cl), cron.WithChain(cron.SkipIfStillRunning(cl), cron.Recover(cl)))
	// A cycle waits for one of Parallel slots; while it waits its mailbox
	// counts as running, so SkipIfStillRunning drops the ticks meanwhile.
	slots := make(chan struct{}, Parallel)
	bounded := func(run func(context.Context, string), trigger string) {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-slots }()
		run(ctx, trigger)
	}
	for _, p := range pollers {
		if p.mb.Schedule == nil {
			return fmt.Errorf("mailbox %s: no schedule", p.mb.Name)
		}
		c.Schedule(p.mb.Schedule, cron.FuncJob(func() { bounded(p.runLogged, "schedule") }))
	}

	var wg sync.WaitGroup
	for _, p := range pollers {
		if !p.mb.Idle {
			continue
		}
		wake := make(chan struct{}, 1)
		wg.Add(2)
		go func() {
			defer wg.Done()
			p.idle(ctx, wake)
		}()
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-wake:
					bounded(p.runRecovered, "idle")
				}
			}
		}()
	}
	c.Start()
	<-ctx.Done()
	<-c.Stop().Done()
	wg.Wait()
	return nil
}

// RunOnce runs one cycle of every mailbox, at most Parallel at once,
// and returns an error naming each mailbox that failed.
func RunOnce(ctx context.Context, pollers []*Poller) error {
	_, err := RunOnceReports(ctx, pollers)
	return err
}

// RunOnceReports is RunOnce that also returns each mailbox's report, in the
// order of pollers. A skipped cycle (Report.Skipped) and paused forwarding
// (Report.ForwardingPaused) are not errors: the reports say so.
func RunOnceReports(ctx context.Context, pollers []*Poller) ([]Report, error) {
	reports := make([]Report, len(pollers))
	errs := make([]error, len(pollers))
	sem := make(chan struct{}, Parallel)
	var wg sync.WaitGroup
	for i, p := range pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			defer func() {
				if v := recover(); v != nil {
					p.log.Error("panic in cycle", "panic", v, "stack", string(debug.Stack()))
					errs[i] = fmt.Errorf("mailbox %s: panic: %v", p.mb.Name, v)
				}
			}()
			rep, err := p.Cycle(ctx)
			reports[i] = rep
			if err != nil {
				errs[i] = fmt.Errorf("mailbox %s: %w", p.mb.Name, err)
			}
		}()
	}
	wg.Wait()
	return reports, errors.Join(errs...)
}

// runLogged runs a cycle and logs its outcome; panics reach the caller.
func (p *Poller) runLogged(ctx context.Context, trigger string) {
	cycle := p.Cycle
	if trigger == "idle" {
		cycle = p.CycleNow
	}
	rep, err := cycle(ctx)
	switch {
	case err != nil:
		p.log.Error("cycle failed", "trigger", trigger, "error", err)
	case rep.Skipped:
	default:
		p.log.Info("cycle done", "trigger", trigger, "duration", rep.Duration,
			"seen", rep.Counts.Seen, "forwarded", rep.Counts.Forwarded, "flagged", rep.Counts.Flagged,
			"skipped", rep.Counts.Skipped, "failed", rep.Counts.Failed)
	}
}

// runRecovered is runLogged that logs a panic instead of crashing.
func (p *Poller) runRecovered(ctx context.Context, trigger string) {
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("panic in cycle", "trigger", trigger, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	p.runLogged(ctx, trigger)
}

// idle holds an IDLE connection on the watched folder and signals wake
// (coalesced) when messages arrive, reconnecting with backoff until ctx ends.
func (p *Poller) idle(ctx context.Context, wake chan<- struct{}) {
	delay := time.Second
	for {
		start := time.Now()
		err := p.idleSession(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > idleMaxBackoff {
			delay = time.Second
		}
		p.log.Warn("IDLE connection ended; reconnecting", "in", delay, "error", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, idleMaxBackoff)
	}
}

// idleSession is one IDLE connection's life.
func (p *Poller) idleSession(ctx context.Context, wake chan<- struct{}) error {
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	handler := &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				signal()
			}
		},
	}
	c, err := p.dial(ctx, handler)
	if err != nil {
		return err
	}
	defer c.logout(context.WithoutCancel(ctx))
	f, err := p.folders(ctx, c)
	if err != nil {
		return err
	}
	if _, err := c.selectFolder(ctx, f.Watched, true); err != nil {
		return err
	}
	if !c.caps.Has(imap.CapIdle) {
		return fmt.Errorf("idle on %s: server lacks IDLE", p.mb.IMAP.Address)
	}
	signal() // mail that arrived while no IDLE session was open
	for {
		var cmd *imapclient.IdleCommand
		if err := c.do(ctx, func() error {
			var err error
			cmd, err = c.c.Idle()
			return err
		}); err != nil {
			return fmt.Errorf("idle on %s: %w", p.mb.Folder, err)
		}
		t := time.NewTimer(idleRefresh)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = c.do(context.WithoutCancel(ctx), cmd.Close)
			return nil
		case <-c.c.Closed():
			t.Stop()
			return fmt.Errorf("idle on %s: connection closed", p.mb.Folder)
		case <-t.C:
		}
		if err := c.do(ctx, func() error {
			if err := cmd.Close(); err != nil {
				return err
			}
			return c.c.Noop().Wait()
		}); err != nil {
			return fmt.Errorf("refresh idle on %s: %w", p.mb.Folder, err)
		}
	}
}

// cronLogger sends cron's log lines to slog; its routine lines are debug.
type cronLogger struct{ log *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "error", err)...)
}
