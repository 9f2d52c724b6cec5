// Package metrics exposes what the worker does to Prometheus and answers the
// container's health probes.
//
// Metrics live on their own registry (never the process-global default one)
// and are served with client_golang's text exposition format on
// metrics.listen, next to /healthz (the process is up) and /readyz (every
// mailbox had a successful cycle within three schedule intervals, none has
// had its forwarding paused by SMTP trouble for longer than one interval,
// and the store answers). Labels carry mailbox names, policy classes, actions and error
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
	pausedSince    *prometheus.GaugeVec

	now func() time.Time

	mu      sync.Mutex
	review  map[string]backlog   // mailbox → the review folder at its last cycle
	checkIn map[string]time.Time // mailbox → last successful cycle, or last lease found held elsewhere
	held    map[string]bool      // mailbox → this process holds its lease
	paused  map[string]time.Time // mailbox → since when SMTP trouble pauses its forwarding
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
		pausedSince: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "forwarding_paused_since_timestamp_seconds",
			Help:      "Unix time since which SMTP trouble pauses the mailbox's forwarding; 0 while it forwards.",
		}, []string{"mailbox"}),
		now:     time.Now,
		checkIn: make(map[string]time.Time),
		held:    make(map[string]bool),
		review:  make(map[string]backlog),
		paused:  make(map[string]time.Time),
	}
	m.reg.MustRegister(
		m.messages, m.forwardFailure, m.storeErrors, m.cycleDuration, m.lastSuccess, m.leaseHeld, m.pausedSince,
		reviewCollector{m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry returns the registry the metrics are registered on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Message counts one message handled in mailbox: its policy class and the
// action taken ("forwarded", "flagged" or "forward-failed").
func (m *Metrics) Message(mailbox string, c analyzer.Class, action analyzer.Action) {
	m.messages.WithLabelValues(mailbox, string(c), string(action)).Inc()
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

// ForwardingPaused records since when SMTP trouble has paused the
// forwarding of mailbox; the zero time when it forwards again.
func (m *Metrics) ForwardingPaused(mailbox string, since time.Time) {
	v := 0.0
	if !since.IsZero() {
		v = float64(since.UnixNano()) / 1e9
	}
	m.pausedSince.WithLabelValues(mailbox).Set(v)
	m.mu.Lock()
	defer m.mu.Unlock()
	if since.IsZero() {
		delete(m.paused, mailbox)
	} else {
		m.paused[mailbox] = since
	}
}

// forwardingPausedSince returns since when the forwarding of mailbox has been paused.
func (m *Metrics) forwardingPausedSince(mailbox string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.paused[mailbox]
	return t, ok
}

// lastCheckIn returns when mailbox last completed a cycle without error or
// was found leased by another worker.
func (m *Metrics) lastCheckIn(mailbox string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.checkIn[mailbox]
	return t, ok
}

// backlog is one mailbox's review folder.
type backlog struct {
	messages int
	oldest   time.Time // zero when empty
}

// Review records the review folder of mailbox: its messages and when the
// one waiting longest arrived.
func (m *Metrics) Review(mailbox string, messages int, oldest time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.review[mailbox] = backlog{messages: messages, oldest: oldest}
}

// The review backlog's metrics: the age is taken at scrape time.
var (
	reviewMessagesDesc = prometheus.NewDesc(namespace+"_review_messages",
		"Messages in the mailbox's review folder at the end of its last cycle.", []string{"mailbox"}, nil)
	reviewAgeDesc = prometheus.NewDesc(namespace+"_review_oldest_age_seconds",
		"Age of the message waiting longest in the review folder (its INTERNALDATE); 0 when the folder is empty.", []string{"mailbox"}, nil)
)

// reviewCollector exports the backlogs Review recorded.
type reviewCollector struct{ m *Metrics }

func (reviewCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- reviewMessagesDesc
	ch <- reviewAgeDesc
}

func (c reviewCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.m.now()
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	for mailbox, b := range c.m.review {
		age := 0.0
		if !b.oldest.IsZero() {
			age = max(now.Sub(b.oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(reviewMessagesDesc, prometheus.GaugeValue, float64(b.messages), mailbox)
		ch <- prometheus.MustNewConstMetric(reviewAgeDesc, prometheus.GaugeValue, age, mailbox)
	}
}
