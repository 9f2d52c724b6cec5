package notify

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailtriage/mailtriage/internal/mailheader"
)

// The digest: once per period, a message to an operator about the review
// folder: how many wait, by reason, since when, and a line per message
// (date, From, Subject; never a body).

// DefaultDigestPeriod is how often a digest goes out.
const DefaultDigestPeriod = 24 * time.Hour

// maxDigestLines bounds the message lines of one digest; the counts cover
// every message.
const maxDigestLines = 500

// digestKey is the digest's claim in Limits, beside the senders' keys
// (which are hex hashes, so never this).
const digestKey = "digest"

// DigestItem is one message of the review folder, as the digest lists it.
type DigestItem struct {
	From     string    // the From field's first address, as the envelope gives it
	Subject  string    // decoded
	Arrived  time.Time // INTERNALDATE
	Reasons  []string  // the reason keywords it carries: encrypted, unparseable, private relay, forward failed
	Notified bool      // its sender got a notice ($Notified)
}

// DigestConfig is one mailbox's digest settings.
type DigestConfig struct {
	From     string        // From and envelope sender; required
	To       []string      // the operators; required
	Folder   string        // the review folder's name, for the text
	Period   time.Duration // DefaultDigestPeriod when 0
	Hostname string        // Message-ID domain; the domain of From when empty
}

// Digester sends a mailbox's digest once per period, over a Sender.
type Digester struct {
	cfg  DigestConfig
	send Sender
	lim  Limits
	now  func() time.Time

	mu   sync.Mutex
	next map[string]time.Time // mailbox → when to ask the store again
}

// NewDigester checks cfg and returns its Digester.
func NewDigester(cfg DigestConfig, send Sender, lim Limits) (*Digester, error) {
	if err := checkFrom(cfg.From); err != nil {
		return nil, fmt.Errorf("digest: %w", err)
	}
	if len(cfg.To) == 0 {
		return nil, fmt.Errorf("digest: no recipient")
	}
	for _, to := range cfg.To {
		if err := checkFrom(to); err != nil {
			return nil, fmt.Errorf("digest: to: %w", err)
		}
	}
	if cfg.Period <= 0 {
		cfg.Period = DefaultDigestPeriod
	}
	cfg.Hostname = hostname(cfg.Hostname, cfg.From)
	return &Digester{cfg: cfg, send: send, lim: lim, now: time.Now, next: make(map[string]time.Time)}, nil
}

// Due claims the digest of mailbox for the period: true means this
// caller sends it now (and must call Send, which drops the claim when it
// fails). Between claims it answers from memory, so that an idle cycle
// costs the store nothing; a claim held elsewhere (a replica, or a run
// before a restart) is asked again after a 24th of the period.
func (d *Digester) Due(ctx context.Context, mailbox string) (bool, error) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Before(d.next[mailbox]) {
		return false, nil
	}
	ok, err := d.lim.ClaimNotice(ctx, mailbox, digestKey, d.cfg.Period)
	if err != nil {
		return false, fmt.Errorf("digest of %s: %w", mailbox, err)
	}
	if ok {
		d.next[mailbox] = now.Add(d.cfg.Period)
	} else {
		d.next[mailbox] = now.Add(d.cfg.Period / 24)
	}
	return ok, nil
}

// Send composes the digest of items and sends it; on failure the claim is
// dropped, so that the next cycle tries again.
func (d *Digester) Send(ctx context.Context, mailbox string, items []DigestItem) error {
	msg := d.compose(mailbox, items)
	if err := d.send.Send(ctx, d.cfg.From, d.cfg.To, msg); err != nil {
		d.mu.Lock()
		delete(d.next, mailbox)
		d.mu.Unlock()
		if rerr := d.lim.ReleaseNotice(ctx, mailbox, digestKey); rerr != nil {
			err = fmt.Errorf("%w (and dropping the digest's claim: %v)", err, rerr)
		}
		return fmt.Errorf("send digest of %s: %w", mailbox, err)
	}
	return nil
}

// compose writes the digest: counts by reason, the oldest waiting, then a
// line per message, oldest first.
func (d *Digester) compose(mailbox string, items []DigestItem) []byte {
	now := d.now().UTC()
	items = slices.Clone(items)
	slices.SortStableFunc(items, func(a, b DigestItem) int { return a.Arrived.Compare(b.Arrived) })
	var t strings.Builder
	fmt.Fprintf(&t, "Review folder %s of mailbox %s, %s\n\n", mailheader.Sanitize(d.cfg.Folder), mailbox, now.Format("2006-01-02 15:04 MST"))
	if len(items) == 0 {
		t.WriteString("Nothing is waiting.\n")
	} else {
		oldest := items[0].Arrived
		fmt.Fprintf(&t, "Waiting: %d messages; the oldest since %s (%s).\n\n", len(items), oldest.UTC().Format("2006-01-02 15:04 MST"), waited(now.Sub(oldest)))
		counts := map[string]int{}
		notified := 0
		for _, it := range items {
			if len(it.Reasons) == 0 {
				counts["other"]++
			}
			for _, r := range it.Reasons {
				counts[r]++
			}
			if it.Notified {
				notified++
			}
		}
		t.WriteString("By reason:\n")
		for _, r := range slices.Sorted(maps.Keys(counts)) {
			fmt.Fprintf(&t, "  %-16s %d\n", r, counts[r])
		}
		fmt.Fprintf(&t, "  %-16s %d\n\nMessages, oldest first (date, from, subject):\n", "sender notified", notified)
		for i, it := range items {
			if i == maxDigestLines {
				fmt.Fprintf(&t, "  … and %d more\n", len(items)-i)
				break
			}
			tags := strings.Join(it.Reasons, ", ")
			if it.Notified {
				tags = strings.TrimPrefix(tags+", notified", ", ")
			}
			fmt.Fprintf(&t, "  %s  %s  %s  [%s]\n", it.Arrived.UTC().Format("2006-01-02 15:04"),
				mailheader.Sanitize(orDefault(it.From, "(no From)")), mailheader.Sanitize(orDefault(it.Subject, "(no subject)")), tags)
		}
	}
	var b bytes.Buffer
	field := func(name, value string) { b.WriteString(mailheader.Field(name, value)) }
	field("From", d.cfg.From)
	field("To", strings.Join(d.cfg.To, ", "))
	field("Subject", fmt.Sprintf("mailtriage digest: %d waiting in review (%s)", len(items), mailbox))
	field("Date", mailheader.Date(now))
	field("Message-ID", mailheader.MessageID(d.cfg.Hostname))
	field("Auto-Submitted", "auto-generated") // RFC 3834 §5
	field("MIME-Version", "1.0")
	writePart(&b, "text/plain; charset=utf-8", t.String())
	return b.Bytes()
}

// waited says a duration in days or hours.
func waited(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	}
	return fmt.Sprintf("%d minutes", max(int(d/time.Minute), 0))
}
