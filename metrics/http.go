package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"
)

// Timeouts of the HTTP server and of the readiness probe.
const (
	readHeaderTimeout = 5 * time.Second
	pingTimeout       = 2 * time.Second
	shutdownTimeout   = 5 * time.Second
	// staleIntervals is how many schedule intervals may pass without a
	// successful cycle before a mailbox counts as not ready.
	staleIntervals = 3
)

// Pinger is the part of the state store that readiness needs.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Mailbox names a watched mailbox and its cron schedule, for /readyz.
type Mailbox struct {
	Name     string
	Schedule cron.Schedule // the parsed cron spec (config.Mailbox.Cron)
}

// watched is a mailbox with its parsed schedule.
type watched struct {
	name     string
	schedule cron.Schedule
}

// Handler serves /metrics, /healthz and /readyz. /readyz answers 200 when
// every mailbox had a successful cycle (or found its lease held by another
// replica) within three schedule intervals, no mailbox has had its
// forwarding paused by SMTP trouble for longer than one schedule interval
// (a cycle that flags encrypted mail while every clean message waits is
// not a healthy one), and store answers Ping; otherwise 503 with one line
// per thing not ready.
func (m *Metrics) Handler(mailboxes []Mailbox, store Pinger) (http.Handler, error) {
	ws := make([]watched, 0, len(mailboxes))
	for _, mb := range mailboxes {
		if mb.Schedule == nil {
			return nil, fmt.Errorf("mailbox %s: no schedule", mb.Name)
		}
		ws = append(ws, watched{name: mb.Name, schedule: mb.Schedule})
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		problems := m.notReady(r.Context(), ws, store)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(problems, "\n"))
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux, nil
}

// notReady lists what keeps the worker from being ready; empty when ready.
func (m *Metrics) notReady(ctx context.Context, ws []watched, store Pinger) []string {
	var problems []string
	now := m.now()
	for _, w := range ws {
		last, ok := m.lastCheckIn(w.name)
		if !ok {
			problems = append(problems, fmt.Sprintf("mailbox %s: no successful cycle yet", w.name))
			continue
		}
		next := w.schedule.Next(now)
		interval := w.schedule.Next(next).Sub(next)
		if age := now.Sub(last); age > staleIntervals*interval {
			problems = append(problems, fmt.Sprintf("mailbox %s: last successful cycle %s ago, more than %d intervals of %s",
				w.name, age.Round(time.Second), staleIntervals, interval))
		}
		if since, ok := m.forwardingPausedSince(w.name); ok && now.Sub(since) > interval {
			problems = append(problems, fmt.Sprintf("mailbox %s: forwarding paused by SMTP trouble for %s, more than one interval of %s",
				w.name, now.Sub(since).Round(time.Second), interval))
		}
	}
	if store != nil {
		ctx, cancel := context.WithTimeout(ctx, pingTimeout)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			problems = append(problems, fmt.Sprintf("store: %v", err))
		}
	}
	return problems
}

// Server is the HTTP server of /metrics, /healthz and /readyz.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// Listen binds addr (host:port; ":9090" for every interface) for h.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	return &Server{
		ln:  ln,
		srv: &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)},
		log: log,
	}, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers requests until ctx is done, then shuts down gracefully:
// requests in flight get up to five seconds to finish.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info("metrics listening", "address", s.ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve metrics on %s: %w", s.ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shut down metrics server on %s: %w", s.ln.Addr(), err)
	}
	return nil
}
