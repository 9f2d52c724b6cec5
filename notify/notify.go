// Package notify tells the sender of a message mailtriage could not pass
// on (encrypted, unparseable, or refused by the helpdesk) that it was
// kept for a person, at most once per sender and period, and never in a
// loop; and it writes the review folder's digest for operators (digest.go).
//
// A notice is an automatic response in the sense of RFC 3834. It is never
// sent to a list, bulk or automatic message, a null return path,
// MAILER-DAEMON, owner-*, *-request, no-reply addresses, mail with
// X-Auto-Response-Suppress, or to our own addresses (the rule tables in
// rules.go, each with its source: RFC 3834 §2, RFC 5230 §4.5, and what
// Zammad and Request Tracker check). It carries Auto-Submitted:
// auto-replied, In-Reply-To, References and an "Auto:" subject (RFC 3834
// §3 and §5), comes From the configured address, never the customer's,
// and goes with a null envelope sender (MAIL FROM:<>, RFC 3834 §3 and
// RFC 5321 §4.5.5), so that a bounce of it is dropped and no responder
// answers it. It goes to the single Reply-To address, else From (RFC 3834
// §4): a relay alias or reply token is answered as it stands, and the
// relay forwards it; notify never decodes one.
//
// The per-sender limit lives in the store, keyed by a SHA-256 hash of the
// lower-cased address: no address is kept in clear.
package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
)

// Class is why a message was not passed on, as notify.classes spells it.
type Class string

// The classes a notice can be configured for.
const (
	ClassNone          Class = ""               // flagged for another reason (a policy that flags relays, signed or clean mail): no notice
	ClassEncrypted     Class = "encrypted"      // end-to-end encrypted
	ClassUnparseable   Class = "unparseable"    // malformed or truncated
	ClassForwardFailed Class = "forward_failed" // the helpdesk's SMTP server refused it for good
)

// Classes lists the classes notify.classes accepts.
func Classes() []Class { return []Class{ClassEncrypted, ClassUnparseable, ClassForwardFailed} }

// ClassOf is the notice class of a flagged message.
func ClassOf(v analyzer.Verdict, forwardFailed bool) Class {
	switch {
	case forwardFailed:
		return ClassForwardFailed
	case v.Encryption == analyzer.EncryptionUnparseable:
		return ClassUnparseable
	case v.Encryption.Encrypted():
		return ClassEncrypted
	}
	return ClassNone
}

// DefaultPeriod is how long a sender waits for a second notice.
const DefaultPeriod = 7 * 24 * time.Hour

// Config is one mailbox's notify settings.
type Config struct {
	From                 string        // the notice's From; required
	Classes              []Class       // which flagged mail gets a notice
	Templates            Templates     // from LoadTemplates
	Operator             string        // the operator's line, e.g. "send it unencrypted or use our upload page"
	Period               time.Duration // per sender; DefaultPeriod when 0
	Own                  []string      // our own addresses besides From, never answered
	AppleRelayRegistered bool          // our domain may send to Sign in with Apple relay addresses
	Hostname             string        // Message-ID domain; the domain of From when empty
}

// Sender sends a composed message. forwarder.Forwarder implements it; ""
// as from is the null reverse-path.
type Sender interface {
	Send(ctx context.Context, from string, to []string, msg []byte) error
	Close() error // ends the session; the next Send opens one
}

// Limits keeps the per-sender limit. The store implements it.
type Limits interface {
	// ClaimNotice records a notice to the sender key for period, unless
	// one is recorded already; it reports whether the claim was made.
	ClaimNotice(ctx context.Context, mailbox, key string, period time.Duration) (bool, error)
	// ReleaseNotice drops a claim whose notice could not be sent.
	ReleaseNotice(ctx context.Context, mailbox, key string) error
}

// Message is what Notify reads of one flagged message.
type Message struct {
	Class   Class
	Header  analyzer.Header // Keep of the message's header
	Verdict analyzer.Verdict
}

// Result says whether a notice went out, and the rule when not.
type Result struct {
	Sent bool
	Rule *Rule // why not; nil when sent, or when the class takes no notice
}

// Notifier sends notices for one mailbox's flagged mail.
type Notifier struct {
	cfg  Config
	send Sender
	lim  Limits
	now  func() time.Time
}

// New checks cfg and returns its Notifier.
func New(cfg Config, send Sender, lim Limits) (*Notifier, error) {
	if err := checkFrom(cfg.From); err != nil {
		return nil, err
	}
	for _, c := range cfg.Classes {
		if !slices.Contains(Classes(), c) {
			return nil, fmt.Errorf("notify: class %q: want encrypted, unparseable or forward_failed", c)
		}
	}
	if cfg.Templates.Text == nil {
		t, err := LoadTemplates("", "")
		if err != nil {
			return nil, err
		}
		cfg.Templates.Text = t.Text
	}
	if cfg.Period <= 0 {
		cfg.Period = DefaultPeriod
	}
	cfg.Hostname = hostname(cfg.Hostname, cfg.From)
	cfg.Own = append(slices.Clone(cfg.Own), cfg.From)
	return &Notifier{cfg: cfg, send: send, lim: lim, now: time.Now}, nil
}

// Wants reports whether messages of class c get a notice.
func (n *Notifier) Wants(c Class) bool { return c != ClassNone && slices.Contains(n.cfg.Classes, c) }

// Notify sends the notice for m when its class takes one and no rule
// forbids it. An error means the notice was due and could not be sent (the
// claim on the sender is dropped again, so a later message may try).
func (n *Notifier) Notify(ctx context.Context, mailbox string, m Message) (Result, error) {
	if !n.Wants(m.Class) {
		return Result{}, nil
	}
	to, rule := Check(m.Header, Options{Own: n.cfg.Own, AppleRelayRegistered: n.cfg.AppleRelayRegistered})
	if rule != nil {
		return Result{Rule: rule}, nil
	}
	msg, err := n.cfg.Templates.compose(notice{
		from: n.cfg.From, to: to, host: n.cfg.Hostname, now: n.now(),
		class: m.Class, header: m.Header, verdict: m.Verdict, operator: n.cfg.Operator,
	})
	if err != nil {
		return Result{}, err
	}
	key := SenderKey(to)
	claimed, err := n.lim.ClaimNotice(ctx, mailbox, key, n.cfg.Period)
	if err != nil {
		return Result{}, fmt.Errorf("notice rate limit of %s: %w", mailbox, err)
	}
	if !claimed {
		return Result{Rule: &RuleRateLimit}, nil
	}
	if err := n.send.Send(ctx, "", []string{to}, msg); err != nil {
		if rerr := n.lim.ReleaseNotice(ctx, mailbox, key); rerr != nil {
			err = fmt.Errorf("%w (and dropping the rate-limit claim: %v)", err, rerr)
		}
		return Result{}, fmt.Errorf("send notice for %s: %w", mailbox, err)
	}
	return Result{Sent: true}, nil
}

// hostname is h, else the domain of from, as a Message-ID domain: the
// domain we send from is ours to name message IDs in (RFC 5322 §3.6.4),
// where a container's host name is neither unique nor qualified.
func hostname(h, from string) string {
	if h == "" {
		_, h, _ = strings.Cut(from, "@")
	}
	if h == "" || strings.ContainsAny(h, "<>@ \r\n") {
		return "localhost"
	}
	return h
}

// Close ends the Sender's session (at the end of a cycle).
func (n *Notifier) Close() error { return n.send.Close() }

// SenderKey is the rate limit's key of an address: the hex SHA-256 of the
// lower-cased, trimmed address, so that the store keeps no address.
func SenderKey(addr string) string {
	sum := sha256.Sum256([]byte("mailtriage-notice\x00" + strings.ToLower(strings.TrimSpace(addr))))
	return hex.EncodeToString(sum[:])
}
