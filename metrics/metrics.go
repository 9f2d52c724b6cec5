// Package metrics exposes what the worker does to Prometheus and answers the
// container's health probes.
//
// Metrics live on their own registry (never the process-global default one)
// and are served with client_golang's text exposition format on
// metrics.listen, next to /healthz (the process is up) and /readyz (every
// mailbox had a successful cycle within three schedule intervals and the store
// answers). Labels carry mailbox names, policy classes, actions and error
// kinds only: never an address, a subject or a credential.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mailtriage/mailtriage/analyzer"
)

// namespace prefixes every metric name.
const namespace = "mailtriage"

// Metrics records what the pollers report. It implements poller.Metrics and
// is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	messages       *prometheus.CounterVec
	forwardFailure *prometheus.CounterVec
	storeErrors    *prometheus.CounterVec
	cycleDuration  *prometheus.HistogramVec
	lastSuccess    *prometheus.GaugeVec
	leaseHeld      *prometheus.GaugeVec

	now func() time.Time

	mu      sync.Mutex
	checkIn map[string]time.Time // mailbox → last successful cycle, or last lease found held elsewhere
	held    map[string]bool      // mailbox → this process holds its lease
}

// New returns Metrics registered on a fresh registry, together with the Go
// runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "messages_total",
			Help:      "Messages handled, by mailbox, policy class and action (forwarded, flagged, forward-failed).",
		}, []string{"mailbox", "class", "action"}),
		forwardFailure: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "forward_failures_total",
			Help:      "Failed SMTP forwards, by mailbox and error kind (connect, session, tls, auth, temporary, rejected, size, protocol).",
		}, []string{"mailbox", "kind"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "store_errors_total",
			Help:      "Failed state store operations, by mailbox.",
		}, []string{"mailbox"}),
		cycleDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "cycle_duration_seconds",
			Help:      "Duration of mailbox cycles, successful or not.",
			Buckets:   []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"mailbox"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "last_success_timestamp_seconds",
			Help:      "Unix time at which the mailbox's last successful cycle ended.",
		}, []string{"mailbox"}),
		leaseHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "lease_held",
			Help:      "1 while this process holds the mailbox lease, 0 otherwise.",
		}, []string{"mailbox"}),
		now:     time.Now,
		checkIn: make(map[string]time.Time),
		held:    make(map[string]bool),
	}
	m.reg.MustRegister(
		m.messages, m.forwardFailure, m.storeErrors, m.cycleDuration, m.lastSuccess, m.leaseHeld,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry returns the registry the metrics are registered on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Message counts one message handled in mailbox: its policy class and the
// action taken ("forwarded", "flagged" or "forward-failed").
func (m *Metrics) Message(mailbox string, c analyzer.Class, action string) {
	m.messages.WithLabelValues(mailbox, string(c), action).Inc()
}

// ForwardFailed counts one failed forward of kind (a forwarder.Kind).
func (m *Metrics) ForwardFailed(mailbox, kind string) {
	m.forwardFailure.WithLabelValues(mailbox, kind).Inc()
}

// Cycle records a finished cycle of mailbox that took d; a nil err marks the
// mailbox as having succeeded now.
func (m *Metrics) Cycle(mailbox string, d time.Duration, err error) {
	m.cycleDuration.WithLabelValues(mailbox).Observe(d.Seconds())
	if err != nil {
		return
	}
	at := m.now()
	m.lastSuccess.WithLabelValues(mailbox).Set(float64(at.UnixNano()) / 1e9)
	m.mu.Lock()
	m.checkIn[mailbox] = at
	m.mu.Unlock()
}

// Lease records whether this process holds the lease of mailbox.
//
// The poller reports a lease as not held in two cases: when it releases the
// lease at the end of its own cycle, and when a cycle is skipped because
// another worker holds it. The second one (not held, and not held before)
// counts for readiness like a successful cycle: the store answered and the
// mailbox is being worked on, by another replica.
func (m *Metrics) Lease(mailbox string, held bool) {
	v := 0.0
	if held {
		v = 1
	}
	m.leaseHeld.WithLabelValues(mailbox).Set(v)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !held && !m.held[mailbox] {
		m.checkIn[mailbox] = m.now()
	}
	m.held[mailbox] = held
}

// StoreError counts one failed store operation for mailbox.
func (m *Metrics) StoreError(mailbox string) {
	m.storeErrors.WithLabelValues(mailbox).Inc()
}

// lastCheckIn returns when mailbox last completed a cycle without error or
// was found leased by another worker.
func (m *Metrics) lastCheckIn(mailbox string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.checkIn[mailbox]
	return t, ok
}
