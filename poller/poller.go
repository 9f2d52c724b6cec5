// Package poller runs one mailbox's cycle: take the mailbox lease, log in
// over IMAPS, read the messages above the recorded high-water mark (a
// cycle with nothing new asks STATUS and selects nothing) in batches of facts (flags, size, BODYSTRUCTURE, header, the first 4 KiB of
// each text part), classify them with the analyzer, flag what a person must
// see into the review folder, stream the rest into the forwarder, record the
// outcome and advance the high-water mark. It also runs the release loop
// (mail a reviewer moved into the release folder is forwarded whatever its
// class) and schedules cycles with cron and IMAP IDLE. DryRun reads as a
// cycle would and changes nothing (`mailtriage run --dry-run`).
//
// The poller never decrypts, never unmasks a relay address, never holds a
// big forwarded body in memory (each is read from the FETCH literal into a
// spool buffer, in memory up to spool.DefaultMemLimit and in a temporary
// file above it, until the forwarder is done with it), never issues a plain EXPUNGE (only UID EXPUNGE of its own
// UIDs, RFC 4315) and never marks or moves a message before the SMTP server
// accepted it or it was flagged into the review folder.
//
// Order of operations (DESIGN.md section 2). Forwarded mail: SMTP 250, then
// the outcome record (one store write per message), then the IMAP marking
// ($Forwarded and \Seen, or MOVE, or \Deleted and UID EXPUNGE; one command
// per marking round by UID set, a round covering several batches: see
// marks), then the high-water mark, which only advances over a contiguous
// prefix of done UIDs. A crash between the 250 and the record is the only
// way to send a message twice, and the window is the records not yet
// written (recorderWindow, 4) plus the message whose 250 just came plus the
// messages in flight at the SMTP server (at most
// Connections*forwarder.PipelineDepth): see recorder. Flagged
// mail: keywords and \Flagged (one STORE per distinct flag set), MOVE to
// the review folder, then the outcome records of the round. Every message
// read again (a crash, a UIDVALIDITY reset, a copy restored) is looked up
// by fingerprint first: a recorded outcome is never acted on twice, only
// its marking made sure of. The mailbox's own marks count as records: a
// message carrying $Forwarded is never forwarded again, and when the store
// has no record of it (state lost, a record that could not be written) the
// record is rebuilt from the mark.
//
// A record that cannot be written (store down, disk full, a timeout)
// stops forwarding at once; the mail sent is marked on the server all the
// same, the records are retried before the marking, and if they still
// fail the cycle ends with an error before the high-water mark moves.
//
// Hostile servers: the header block is fetched with a partial range (one
// octet over the analyzer's limit, which then flags it unparseable), and a
// guard under the IMAP client (nesting) drops a session whose responses
// nest deeper than go-imap's recursive BODYSTRUCTURE reader survives; the
// message the response was about is then flagged over a new session
// (quarantine), so that it cannot block the mailbox.
//
// Failures: a temporary SMTP failure (an error whose Temporary method says
// so: connection trouble, 4xx) stops forwarding for the rest of the cycle
// and pauses it for the mailbox with exponential backoff (30 s doubling to
// MaxBackoff), leaving the message untouched; flagging goes on. A permanent
// one (5xx, over size) flags the message with $ForwardFailed. Keywords and
// \Flagged are set only where PERMANENTFLAGS allow ("\*" or listed); a
// server without MOVE gets UID COPY, \Deleted and UID EXPUNGE of our UIDs
// (RFC 4315), and one without UIDPLUS keeps our originals marked \Deleted.
//
// Folder names follow the server (Folders): the personal namespace of
// RFC 2342 and the hierarchy separator, and no review folder inside an
// RFC 6154 \Trash or \Junk folder.
// Sender notices (Mailbox.Notifier, package notify) go out once a flag is
// final (moved and recorded), for the classes configured; at the end of the
// cycle the copies in the review folder, found by Message-ID, get
// $Notified. The end of a cycle also reports the review folder's backlog
// (Metrics.Review) and, once per period, sends its digest
// (Mailbox.Digest).
//
// It follows RFC 9051 / RFC 3501 (IMAP), RFC 2595 (STARTTLS), RFC 6851
// (MOVE), RFC 4315 (UIDPLUS), RFC 2177 (IDLE), RFC 4959 (SASL-IR), RFC 7628
// (OAUTHBEARER), RFC 2342 (NAMESPACE), RFC 6154 (SPECIAL-USE) and RFC 5550
// ($Forwarded).
package poller

import (
	"context"
	"crypto/x509"
	"log/slog"
	"sync"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/spool"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
	"github.com/mailtriage/mailtriage/store"
	"github.com/robfig/cron/v3"
)

// After-forward handling of a forwarded message (Mailbox.AfterForward).
const (
	AfterForwardSeen   = "seen"   // STORE $Forwarded and \Seen, leave it in place
	AfterForwardMove   = "move"   // STORE the flags, then MOVE to ForwardedFolder
	AfterForwardDelete = "delete" // STORE \Deleted, then UID EXPUNGE of that UID
)

// Defaults applied by New to zero fields.
const (
	DefaultBatchSize      = 200
	DefaultMarkEvery      = 1000
	DefaultMarkDelay      = 5 * time.Second
	DefaultLeaseTTL       = 2 * time.Minute
	DefaultDialTimeout    = 30 * time.Second
	DefaultCommandTimeout = 60 * time.Second
	DefaultBodyTimeout    = 10 * time.Minute
	DefaultStopGrace      = 8 * time.Second
	DefaultMaxBackoff     = 30 * time.Minute
	minBackoff            = 30 * time.Second
)

// IMAP says how to reach and log in to the IMAP server.
type IMAP struct {
	Address           string       // host:port
	TLS               tlsmode.Mode // tlsmode.Implicit (default) | tlsmode.StartTLS | tlsmode.None
	InsecurePlaintext bool         // required for tlsmode.None
	RootCAs           *x509.CertPool
	ServerName        string // TLS server name; the host of Address when empty
	Auth              credential.Auth
	DialTimeout       time.Duration // TCP connect + TLS handshake + greeting
	CommandTimeout    time.Duration // each command, login included
	BodyTimeout       time.Duration // streaming one message body into the forwarder
}

// Mailbox is one watched mailbox's settings, converted from the config.
type Mailbox struct {
	Name     string        // unique; used in store keys, logs and metrics
	Schedule cron.Schedule // the parsed cron spec (config.Mailbox.Cron)
	Idle     bool          // also wake the cycle on IMAP IDLE
	IMAP     IMAP

	Folder          string // watched folder, INBOX by default
	ReviewFolder    string // where flagged mail goes
	ReleaseFolder   string // a reviewer moves mail here to have it forwarded anyway; "" = no release loop
	AfterForward    string // AfterForwardSeen (default) | AfterForwardMove | AfterForwardDelete
	ForwardedFolder string // for AfterForwardMove

	Policy    analyzer.Policy // nil = analyzer.DefaultPolicy()
	BatchSize int             // messages per FETCH batch
	// Marking (keywords, moves, the high-water mark) is done for several
	// batches at once: when MarkEvery messages have been read since the
	// last marking, MarkDelay has passed, or the folder is done.
	MarkEvery  int
	MarkDelay  time.Duration
	LeaseTTL   time.Duration // the lease is renewed every LeaseTTL/3
	MaxBackoff time.Duration // cap of the forwarding backoff after temporary SMTP failures
	StopGrace  time.Duration // on stop, how long the message in hand may take to finish
	// Spacing: a scheduled or --once cycle is skipped when a cycle of the
	// mailbox, by any worker sharing the store, finished less than Spacing
	// ago; an IDLE wake-up is not. 0 = never skipped.
	Spacing time.Duration
	// Notifier sends sender notices for flagged mail; nil sends none.
	Notifier Notifier
	// Digest sends the review folder's digest; nil sends none.
	Digest Digester
}

// Forwarder sends messages on to the helpdesk: forwarder.Forwarder (SMTP,
// several messages in flight) and imaproute.Route (APPEND, one at a time)
// implement it. Deliver sends every job read from jobs until jobs is
// closed or ctx ends and gives back exactly one Result per job received,
// in any order, then returns; it closes neither channel. A Result's Err
// with a Temporary() bool method that reports true leaves the message for
// a later cycle; any other error is permanent.
type Forwarder interface {
	Deliver(ctx context.Context, jobs <-chan forwarder.Job, results chan<- forwarder.Result)
	Close() error
}

// Metrics receives what the poller counts. metrics.Metrics implements it.
type Metrics interface {
	Message(mailbox string, c analyzer.Class, action analyzer.Action)
	ForwardFailed(mailbox, kind string)
	Cycle(mailbox string, d time.Duration, err error)
	Lease(mailbox string, held bool)
	StoreError(mailbox string)
	// Review reports the review folder's messages and the arrival of the
	// one waiting longest (zero when empty).
	Review(mailbox string, messages int, oldest time.Time)
	// ForwardingPaused says since when forwarding of mailbox has been
	// paused by SMTP trouble; the zero time when it resumed.
	ForwardingPaused(mailbox string, since time.Time)
}

// State is the part of store.Store the poller uses.
type State interface {
	MailboxState(ctx context.Context, mailbox string) (store.MailboxState, error)
	SetMailboxState(ctx context.Context, mailbox string, st store.MailboxState) error
	Outcomes(ctx context.Context, mailbox string, fingerprints []string) (map[string]store.Outcome, error)
	RecordOutcomes(ctx context.Context, mailbox string, outs []store.Outcome) error
	ThreadKey(ctx context.Context, mailbox string, messageIDs []string) (string, error)
	NoteThreads(ctx context.Context, mailbox string, notes []store.ThreadNote) error
	AcquireLease(ctx context.Context, mailbox string, ttl time.Duration) (store.Lease, error)
	NoteCycled(ctx context.Context, mailbox string, spacing time.Duration) error
	Cycled(ctx context.Context, mailbox string) (bool, error)
}

// Poller runs the cycles of one mailbox. Cycles of one Poller never overlap.
type Poller struct {
	mb    Mailbox
	an    *analyzer.Analyzer
	st    State
	fw    Forwarder
	spool *spool.Pool // the bodies in flight to fw
	m     Metrics
	log   *slog.Logger

	run    sync.Mutex  // held for a whole cycle
	review reviewState // the review folder at the last cycle's end; guarded by run

	mu       sync.Mutex // guards the fields below
	backoff  backoff
	warned   map[string]bool // one-time warnings already logged
	resolved *Folders        // the server's names of the folders, once read
}

// New returns the poller of mb. A nil Metrics counts nothing; a nil logger
// logs nothing.
func New(mb Mailbox, an *analyzer.Analyzer, st State, fw Forwarder, m Metrics, log *slog.Logger) *Poller {
	if mb.Folder == "" {
		mb.Folder = "INBOX"
	}
	if mb.AfterForward == "" {
		mb.AfterForward = AfterForwardSeen
	}
	if mb.IMAP.TLS == "" {
		mb.IMAP.TLS = tlsmode.Implicit
	}
	if mb.Policy == nil {
		mb.Policy = analyzer.DefaultPolicy()
	}
	setDefault(&mb.BatchSize, DefaultBatchSize)
	setDefault(&mb.MarkEvery, DefaultMarkEvery)
	setDefault(&mb.MarkDelay, DefaultMarkDelay)
	setDefault(&mb.LeaseTTL, DefaultLeaseTTL)
	setDefault(&mb.MaxBackoff, DefaultMaxBackoff)
	setDefault(&mb.StopGrace, DefaultStopGrace)
	setDefault(&mb.IMAP.DialTimeout, DefaultDialTimeout)
	setDefault(&mb.IMAP.CommandTimeout, DefaultCommandTimeout)
	setDefault(&mb.IMAP.BodyTimeout, DefaultBodyTimeout)
	if m == nil {
		m = noMetrics{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Poller{
		mb:     mb,
		an:     an,
		st:     st,
		fw:     fw,
		spool:  spool.New(spool.DefaultMemLimit, ""),
		m:      m,
		log:    log.With("mailbox", mb.Name),
		warned: make(map[string]bool),
	}
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// warnOnce logs msg at warning level the first time key is seen.
func (p *Poller) warnOnce(key, msg string, args ...any) {
	p.mu.Lock()
	seen := p.warned[key]
	p.warned[key] = true
	p.mu.Unlock()
	if !seen {
		p.log.Warn(msg, args...)
	}
}

type noMetrics struct{}

func (noMetrics) Message(string, analyzer.Class, analyzer.Action) {}
func (noMetrics) ForwardFailed(string, string)                    {}
func (noMetrics) Cycle(string, time.Duration, error)              {}
func (noMetrics) Lease(string, bool)                              {}
func (noMetrics) StoreError(string)                               {}
func (noMetrics) Review(string, int, time.Time)                   {}
func (noMetrics) ForwardingPaused(string, time.Time)              {}
