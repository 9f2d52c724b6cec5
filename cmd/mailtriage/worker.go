package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/config"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/forwarder/imaproute"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/metrics"
	"github.com/mailtriage/mailtriage/notify"
	"github.com/mailtriage/mailtriage/poller"
	"github.com/mailtriage/mailtriage/store"
)

// worker is the wired process: one analyzer, one store, one metrics set, and
// a poller with its own forwarder per mailbox.
type worker struct {
	cfg     *config.Config
	log     *slog.Logger
	store   store.Store
	metrics *metrics.Metrics
	pollers []*poller.Poller
}

// newWorker wires cfg: analyzer.New(relays) → store.Open → forwarder.New and
// poller.New per mailbox. Close releases what it opened.
func newWorker(ctx context.Context, cfg *config.Config, scheduled bool, log *slog.Logger) (*worker, error) {
	st, err := openStore(ctx, cfg.State, false)
	if err != nil {
		return nil, err
	}
	w := &worker{cfg: cfg, log: log, store: st, metrics: metrics.New()}
	if w.pollers, _, err = mailboxes(cfg, st, w.metrics, scheduled, log); err != nil {
		st.Close()
		return nil, err
	}
	return w, nil
}

// openStore opens the state store, its password (if any) put into the URL;
// readOnly for a dry run (store.Options.ReadOnly).
func openStore(ctx context.Context, s config.State, readOnly bool) (store.Store, error) {
	url, err := s.StoreURL(ctx)
	if err != nil {
		return nil, err
	}
	roots, err := s.RootCAs()
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, url.Reveal(), store.Options{Prefix: s.Prefix, ThreadTTL: s.ThreadTTL, Retention: s.Retention, RootCAs: roots, ReadOnly: readOnly})
}

// mailboxState is what the pollers and the sender notices keep in the store.
type mailboxState interface {
	poller.State
	notify.Limits
}

// mailboxes builds the poller of every mailbox, each with its forwarder,
// sharing one analyzer built with the config's extra relay services.
// Scheduled pollers on a shared store space their cycles with the other
// replicas (spacing); `run --once`, run by hand, always cycles.
func mailboxes(cfg *config.Config, st mailboxState, m poller.Metrics, scheduled bool, log *slog.Logger) ([]*poller.Poller, []poller.Forwarder, error) {
	an := analyzer.New(relayServices(cfg.Relays))
	var ps []*poller.Poller
	var fws []poller.Forwarder
	shared := scheduled && !strings.HasPrefix(cfg.State.URL, "file:")
	for _, mb := range cfg.Mailboxes {
		pm, err := pollerMailbox(mb)
		if err != nil {
			return nil, nil, err
		}
		if shared {
			pm.Spacing = spacing(mb.Cron, time.Now())
		}
		fw, err := newRoute(mb, log.With("mailbox", mb.Name))
		if err != nil {
			return nil, nil, err
		}
		// Notices and digests go over SMTP: the forward route's session, or
		// notify.smtp; routes imap and mx reach only the helpdesk, so config
		// asks them for notify.smtp and refuses a digest.
		smtpRoute, _ := fw.(*forwarder.Forwarder)
		if pm.Notifier, err = mailboxNotifier(mb, smtpRoute, st, log); err != nil {
			return nil, nil, err
		}
		if pm.Digest, err = mailboxDigester(mb, smtpRoute, st); err != nil {
			return nil, nil, err
		}
		ps = append(ps, poller.New(pm, an, st, fw, m, log))
		fws = append(fws, fw)
	}
	return ps, fws, nil
}

// Close closes the store. The pollers close their own IMAP and SMTP
// connections at the end of each cycle.
func (w *worker) Close() error {
	if err := w.store.Close(); err != nil {
		return fmt.Errorf("close state: %w", err)
	}
	return nil
}

// once runs one cycle of every mailbox and returns their reports in config
// order; the error names every mailbox that failed.
func (w *worker) once(ctx context.Context) ([]poller.Report, error) {
	reports, err := poller.RunOnceReports(ctx, w.pollers)
	for _, rep := range reports {
		switch {
		case rep.SkipReason == poller.SkipLeaseHeld:
			w.log.Warn("mailbox leased by another worker: cycle skipped; the lease ends by lease_expires_by unless its holder renews it", "mailbox", rep.Mailbox,
				"lease_expires_by", rep.LeaseExpiresBy.UTC().Format(time.RFC3339))
		case rep.Skipped:
			w.log.Info("mailbox cycled by another worker moments ago: cycle skipped", "mailbox", rep.Mailbox, "reason", rep.SkipReason)
		default:
			// The keys of poller's "cycle done" line, with the same meaning.
			w.log.Info("cycle done", "mailbox", rep.Mailbox, "duration", rep.Duration,
				"seen", rep.Counts.Seen, "forwarded", rep.Counts.Forwarded, "flagged", rep.Counts.Flagged,
				"skipped", rep.Counts.Skipped, "failed", rep.Counts.Failed, "notified", rep.Counts.Notified)
		}
		if rep.ForwardingPaused {
			w.log.Warn("forwarding paused by SMTP trouble: clean mail waits", "mailbox", rep.Mailbox)
		}
	}
	return reports, err
}

// serve runs a first cycle of every mailbox, then the pollers on their
// schedules, and the metrics server, until ctx ends; then it waits for the
// cycles in hand to finish.
func (w *worker) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var metricsErr error
	if w.cfg.Metrics.Listen != "" {
		mbs := make([]metrics.Mailbox, len(w.cfg.Mailboxes))
		for i, mb := range w.cfg.Mailboxes {
			mbs[i] = metrics.Mailbox{Name: mb.Name, Schedule: mb.Cron}
		}
		h, err := w.metrics.Handler(mbs, w.store)
		if err != nil {
			return err
		}
		srv, err := metrics.Listen(w.cfg.Metrics.Listen, h, w.log)
		if err != nil {
			return err
		}
		wg.Go(func() {
			if metricsErr = srv.Serve(ctx); metricsErr != nil {
				cancel()
			}
		})
	}
	// A first cycle of every mailbox right away, rather than one schedule
	// interval after start: mail that waited while the worker was down moves
	// at once, and /readyz need not wait for the first tick of a long
	// schedule. Cycles of one mailbox never overlap, so the scheduler's
	// first tick simply waits for it.
	wg.Go(func() {
		if _, err := w.once(ctx); err != nil {
			w.log.Warn("first cycle failed; the schedule tries again", "error", err)
		}
	})
	err := poller.Run(ctx, w.pollers, w.log)
	cancel()
	wg.Wait()
	return errors.Join(err, metricsErr)
}

// relayServices turns the config's relays into analyzer table rows.
func relayServices(rs []config.Relay) []analyzer.RelayService {
	out := make([]analyzer.RelayService, len(rs))
	for i, r := range rs {
		out[i] = analyzer.RelayService{Name: r.Service, Domains: r.Domains}
	}
	return out
}

// spacing is half the interval of a schedule: replicas sharing a store
// each tick on the schedule, and a mailbox one of them has just cycled is
// skipped by the others until its next tick is near (poller.Mailbox.Spacing).
// A bbolt file has one process, so no replicas to space.
func spacing(sched cron.Schedule, now time.Time) time.Duration {
	next := sched.Next(now)
	return sched.Next(next).Sub(next) / 2
}

// checkRoute runs the connection test of a mailbox's route (the poller's
// Forwarder: a *forwarder.Forwarder or an *imaproute.Route); the SMTP route
// also says the EHLO name it used.
func checkRoute(ctx context.Context, r poller.Forwarder) (hello string, err error) {
	switch r := r.(type) {
	case *forwarder.Forwarder:
		return r.Check(ctx)
	case *imaproute.Route:
		return "", r.Check(ctx)
	}
	return "", fmt.Errorf("no connection test for route %T", r)
}

// newRoute builds the forward route the mailbox's config names.
func newRoute(mb config.Mailbox, log *slog.Logger) (poller.Forwarder, error) {
	if mb.Forward.Route == config.RouteIMAP {
		login, err := imapLogin(mb.Forward.IMAP)
		if err != nil {
			return nil, fmt.Errorf("mailbox %s: forward.imap: %w", mb.Name, err)
		}
		r, err := imaproute.New(imaproute.Config{IMAP: login, Folder: mb.Forward.IMAP.Folder}, log)
		if err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", mb.Name, err)
		}
		return r, nil
	}
	var fc forwarder.Config
	var err error
	if mb.Forward.Route == config.RouteMX {
		fc, err = mxForwarderConfig(mb, log)
	} else {
		fc, err = forwarderConfig(mb)
	}
	if err != nil {
		return nil, err
	}
	fw, err := forwarder.New(fc, log)
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: %w", mb.Name, err)
	}
	return fw, nil
}

// imapLogin converts a config IMAP server to the poller's login settings.
func imapLogin(s config.Server) (poller.IMAP, error) {
	auth, err := s.Credential()
	if err != nil {
		return poller.IMAP{}, err
	}
	roots, err := s.RootCAs()
	if err != nil {
		return poller.IMAP{}, err
	}
	return poller.IMAP{
		Address:           s.Address,
		TLS:               s.TLS,
		InsecurePlaintext: s.InsecurePlaintext,
		RootCAs:           roots,
		Auth:              auth,
	}, nil
}

// pollerMailbox converts a config mailbox to the poller's settings.
func pollerMailbox(mb config.Mailbox) (poller.Mailbox, error) {
	login, err := imapLogin(mb.IMAP)
	if err != nil {
		return poller.Mailbox{}, fmt.Errorf("mailbox %s: imap: %w", mb.Name, err)
	}
	return poller.Mailbox{
		Name:            mb.Name,
		Schedule:        mb.Cron,
		Idle:            mb.Idle,
		IMAP:            login,
		Folder:          mb.Folder,
		ReviewFolder:    mb.ReviewFolder,
		ReleaseFolder:   mb.ReleaseFolder,
		AfterForward:    mb.AfterForward,
		ForwardedFolder: mb.ForwardedFolder,
		Policy:          mb.AnalyzerPolicy(),
		BatchSize:       mb.BatchSize,
		LeaseTTL:        mb.LeaseTTL,
	}, nil
}

// forwarderConfig converts a config mailbox's forward section.
func forwarderConfig(mb config.Mailbox) (forwarder.Config, error) {
	s := mb.Forward.SMTP
	var auth *credential.Auth
	if s.HasCredential() {
		a, err := s.Credential()
		if err != nil {
			return forwarder.Config{}, fmt.Errorf("mailbox %s: smtp: %w", mb.Name, err)
		}
		auth = &a
	}
	roots, err := s.RootCAs()
	if err != nil {
		return forwarder.Config{}, fmt.Errorf("mailbox %s: smtp: %w", mb.Name, err)
	}
	return forwarder.Config{
		Address:           s.Address,
		TLS:               s.TLS,
		InsecurePlaintext: s.InsecurePlaintext,
		RootCAs:           roots,
		Auth:              auth,
		From:              mb.Forward.From,
		To:                mb.Forward.To,
		Mode:              mb.Forward.Mode,
		Hostname:          s.EHLOName,
		Connections:       s.Connections,
		MaxPerMinute:      s.MaxPerMinute,
		MaxPerDay:         s.MaxPerDay,
	}, nil
}
