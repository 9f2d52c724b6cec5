// Package store holds mailtriage's state: per mailbox the UIDVALIDITY and
// high-water mark, per message an outcome record keyed by a fingerprint that
// survives UID changes, thread keys with the relay addresses and reply tokens
// seen in each thread, and a lease so that one worker at a time works a
// mailbox.
//
// Two engines implement Store and pass one contract test suite:
//
//   - bbolt, an embedded file ("file:/var/lib/mailtriage/state.db"), the
//     default for a single instance. bbolt locks the file, so one process at
//     a time opens it; a second one gets ErrLocked after a short wait. Leases
//     live in the file and serialize the workers inside that one process.
//   - Redis ("redis://user:password@host:6379/0", "rediss://…" for TLS,
//     verified against the system roots or Options.RootCAs), for
//     several replicas sharing mailboxes; or a Redis Cluster through
//     go-redis' cluster client, "redis+cluster://user:password@host1:6379?addr=host2:6379&addr=host3:6379"
//     ("rediss+cluster://…" for TLS): the host and the addr parameters are
//     the seeds the client learns the cluster's slots from (go-redis'
//     ParseClusterURL form, its other parameters included); database 0
//     only.
//
// The store never interprets what it holds. It never moves a high-water mark
// on its own: SetMailboxState stores exactly what it is given, backwards
// included, because only the poller knows whether UIDVALIDITY changed (RFC
// 9051 section 2.3.1.1) and a reset must be able to lower the mark. It never
// decodes the relay addresses or reply tokens it keeps. Errors never carry
// the password of a state URL.
//
// # bbolt layout
//
// One top-level bucket per mailbox, named by the mailbox, holding:
//
//	state     bucket: "uidvalidity", "highwater" → 4-byte big-endian uint32
//	outcomes  bucket: fingerprint → outcome JSON (see below)
//	done      bucket: 8-byte big-endian outcome time (Unix ns) + fingerprint → empty
//	msgids    bucket: Message-ID → {"k": thread key, "x": expiry}
//	threads   bucket: thread key → {"m": [Message-IDs], "r": [relay addresses], "t": [reply tokens], "x": expiry}
//	expiry    bucket: 8-byte big-endian expiry (Unix ns) + "m" or "t" + Message-ID or thread key → empty
//	lease     key:    {"t": token, "x": expiry}
//	cycled    key:    8-byte big-endian Unix ns until which the last cycle is recent
//
// Expired thread entries are ignored on read, overwritten on the next note
// and deleted when the file is opened, found through the expiry index.
// Outcomes older than Options.Retention are ignored on read and deleted
// when the file is opened and by each RecordOutcomes (at most 10,000 per
// write), found through the done index; it holds times rather than
// expiries, so a changed retention applies to every record at once. So
// opening reads only what expired, not the whole state (a file written
// before an index existed is read whole once and indexed). Leases are
// deleted when the file is opened too: holding the file lock proves their
// holder has exited.
//
// # Redis key layout
//
// P is Options.Prefix ("mailtriage" by default) and M the mailbox name. The
// mailbox sits in a hash tag, {M}, so that all of one mailbox's keys share a
// Redis Cluster slot (and one MULTI or Lua script may touch several):
//
//	P:{M}:state                  hash   uidvalidity, highwater (decimal)
//	P:{M}:outcome:<fingerprint>  string outcome JSON; PEXPIRE retention from the outcome's time
//	P:{M}:outcomes               hash   fingerprint → outcome JSON: the layout before retention; read, never written
//	P:{M}:msgid:<Message-ID>     string thread key; PEXPIRE thread TTL
//	P:{M}:thread:<key>:msgids    set    Message-IDs of the thread; PEXPIRE thread TTL
//	P:{M}:thread:<key>:relays    set    relay addresses seen; PEXPIRE thread TTL
//	P:{M}:thread:<key>:tokens    set    reply tokens seen; PEXPIRE thread TTL
//	P:{M}:lease                  string lease token; SET NX PX lease TTL
//	P:{M}:cycled                 string "1" while the last cycle is recent; SET PX spacing
//
// Outcome records are one key each, so that each expires on its own (a hash
// field cannot expire before Redis 7.4's HPEXPIRE). The outcomes of a batch
// are read with one MGET, pipelined with an HMGET of the old hash (a record
// key wins over the hash), and written with one SET PX per record in one
// pipeline. The first write also gives the old hash the retention as its
// expiry, once: every record in it is older than that write, so all of
// them are due when it expires. Thread notes go out in one pipeline. A lease
// is taken with SET NX PX, renewed by a Lua compare-and-PEXPIRE and released
// by a Lua compare-and-DEL, so a worker whose lease expired and was taken
// over can neither extend nor delete the new owner's lease. Every command,
// pipeline and script touches the keys of one mailbox only, so in a
// cluster each goes to the one node serving that mailbox's slot, scripts
// included (their KEYS share the slot, as the cluster requires).
//
// An outcome record is compact JSON: {"m": Message-ID, "a": action,
// "f": folder, "k": thread key, "v": UIDVALIDITY, "u": UID, "t": time}; the
// fingerprint is its field name (Redis) or key (bbolt).
package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
)

// Sentinel errors callers branch on.
var (
	// ErrLeaseHeld: AcquireLease found the mailbox leased by another worker.
	ErrLeaseHeld = errors.New("mailbox lease held by another worker")
	// ErrLeaseLost: Renew or Release found the lease expired or taken over.
	ErrLeaseLost = errors.New("mailbox lease lost")
	// ErrLocked: Open found the state file locked by another process.
	ErrLocked = errors.New("state file locked by another process")
)

// Defaults for Options; config fills its state.* defaults from these.
const (
	DefaultPrefix    = "mailtriage"
	DefaultThreadTTL = 30 * 24 * time.Hour
	DefaultRetention = 90 * 24 * time.Hour
)

// MailboxState is what a mailbox's cycle resumes from.
type MailboxState struct {
	UIDValidity uint32
	// HighWater: every UID <= HighWater (under UIDValidity) is done.
	HighWater uint32
}

// Outcome is what was done with one message.
type Outcome struct {
	Fingerprint string // Message-ID plus a hash of stable headers; the record's key
	MessageID   string
	Action      analyzer.Action // analyzer.ActionForwarded | ActionFlagged | ActionForwardFailed
	Folder      string          // where the message went or stayed
	ThreadKey   string
	UIDValidity uint32
	UID         uint32
	At          time.Time // when it was done; RecordOutcomes sets the time of recording when zero
}

// ThreadNote ties one message to its thread and adds what it showed.
// A note with an empty ThreadKey is ignored; an empty MessageID adds only
// the relay addresses and reply tokens.
type ThreadNote struct {
	MessageID      string
	ThreadKey      string
	RelayAddresses []string
	ReplyTokens    []string
}

// Thread is what is known of one conversation, each list sorted. An unknown
// or expired thread has its Key and empty lists.
type Thread struct {
	Key            string
	MessageIDs     []string
	RelayAddresses []string
	ReplyTokens    []string
}

// Lease is one worker's exclusive hold on a mailbox until it expires.
type Lease interface {
	// Token is the lease's random identity.
	Token() string
	// Renew extends the lease by its TTL from now; ErrLeaseLost when it
	// expired or another worker holds the mailbox.
	Renew(ctx context.Context) error
	// Release gives the lease up; only the owner's token deletes it.
	// ErrLeaseLost when it had already expired.
	Release(ctx context.Context) error
}

// Store is mailtriage's state, per mailbox.
type Store interface {
	// MailboxState returns the zero value when the mailbox is unknown.
	MailboxState(ctx context.Context, mailbox string) (MailboxState, error)
	// SetMailboxState stores st as given; it never compares with the old one.
	SetMailboxState(ctx context.Context, mailbox string, st MailboxState) error
	// Outcomes looks fingerprints up in one batch; unknown ones, and those
	// older than the retention, are absent from the map.
	Outcomes(ctx context.Context, mailbox string, fingerprints []string) (map[string]Outcome, error)
	// RecordOutcomes writes a batch, replacing records with the same
	// fingerprint. A record is kept for the retention after its At.
	RecordOutcomes(ctx context.Context, mailbox string, outs []Outcome) error
	// ThreadKey returns the thread of the first of messageIDs known, "" when none.
	ThreadKey(ctx context.Context, mailbox string, messageIDs []string) (string, error)
	// NoteThreads merges notes into the threads and (re)starts their TTL.
	NoteThreads(ctx context.Context, mailbox string, notes []ThreadNote) error
	// Thread returns what is known of the thread key.
	Thread(ctx context.Context, mailbox, key string) (Thread, error)
	// AcquireLease takes the mailbox for ttl; ErrLeaseHeld when another holds it.
	AcquireLease(ctx context.Context, mailbox string, ttl time.Duration) (Lease, error)
	// NoteCycled records that a cycle of mailbox has just finished; Cycled
	// says so for the next spacing, so that replicas sharing the store do
	// not each log in to a mailbox one of them has just read.
	NoteCycled(ctx context.Context, mailbox string, spacing time.Duration) error
	// Cycled reports whether a cycle of mailbox finished less than its
	// spacing ago.
	Cycled(ctx context.Context, mailbox string) (bool, error)
	// Notices: the sender notices' per-sender limit (notice.go).
	Notices
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Close releases the file or connections.
	Close() error
}

// Options tune Open.
type Options struct {
	// Prefix of every Redis key; DefaultPrefix when empty. bbolt ignores it.
	Prefix string
	// ThreadTTL is how long thread data lives after its last note;
	// DefaultThreadTTL when zero.
	ThreadTTL time.Duration
	// Retention is how long an outcome record is kept after its At;
	// DefaultRetention when zero.
	Retention time.Duration
	// RootCAs verifies a rediss:// server instead of the system roots when
	// set (a private CA). Verification is never turned off by this package.
	RootCAs *x509.CertPool
	// ReadOnly opens a bbolt file for reading only (a shared lock, no
	// tidying on open; every write fails), for `run --dry-run`. A missing
	// file is an error. Redis ignores it: the caller simply writes nothing.
	ReadOnly bool
}

// Open opens the store named by rawURL: "file:/path/state.db" (also
// "file:///path/state.db") for bbolt, "redis://…" or "rediss://…" for one
// Redis server, "redis+cluster://…" or "rediss+cluster://…" for a Redis
// Cluster.
func Open(ctx context.Context, rawURL string, opt Options) (Store, error) {
	if opt.Prefix == "" {
		opt.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(opt.Prefix, "{}") {
		return nil, fmt.Errorf("open state: prefix %q must not contain { or }", opt.Prefix)
	}
	if opt.ThreadTTL == 0 {
		opt.ThreadTTL = DefaultThreadTTL
	}
	if opt.ThreadTTL < time.Millisecond {
		return nil, fmt.Errorf("open state: thread TTL %v is below 1ms", opt.ThreadTTL)
	}
	if opt.Retention == 0 {
		opt.Retention = DefaultRetention
	}
	if opt.Retention < time.Millisecond {
		return nil, fmt.Errorf("open state: retention %v is below 1ms", opt.Retention)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the whole URL, password included: drop it.
		return nil, errors.New("open state: malformed state URL")
	}
	switch u.Scheme {
	case "file":
		path := u.Path
		if path == "" {
			path = u.Opaque
		}
		if path == "" {
			return nil, errors.New("open state: file URL without a path")
		}
		return openBolt(ctx, path, opt)
	case "redis", "rediss", "redis+cluster", "rediss+cluster":
		return openRedis(ctx, u, opt)
	default:
		return nil, fmt.Errorf("open state %s: unsupported scheme %q (want file, redis, rediss, redis+cluster or rediss+cluster)", u.Redacted(), u.Scheme)
	}
}

// checkMailbox rejects names that cannot key a mailbox: empty ones, and
// braces, which would break the Redis hash tag.
func checkMailbox(mailbox string) error {
	if mailbox == "" {
		return errors.New("empty mailbox name")
	}
	if strings.ContainsAny(mailbox, "{}") {
		return fmt.Errorf("mailbox name %q must not contain { or }", mailbox)
	}
	return nil
}

// newToken returns a random lease token.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// stamp gives o the time now when its At is zero: a record's age counts
// from its At.
func stamp(o Outcome, now time.Time) Outcome {
	if o.At.IsZero() {
		o.At = now
	}
	return o
}

// outlived reports whether an outcome done at at is older than retention
// at now.
func outlived(at, now time.Time, retention time.Duration) bool {
	return !now.Before(at.Add(retention))
}

// outcomeRecord is an Outcome as stored, without its fingerprint.
type outcomeRecord struct {
	MessageID   string          `json:"m,omitempty"`
	Action      analyzer.Action `json:"a"`
	Folder      string          `json:"f,omitempty"`
	ThreadKey   string          `json:"k,omitempty"`
	UIDValidity uint32          `json:"v,omitempty"`
	UID         uint32          `json:"u,omitempty"`
	At          time.Time       `json:"t"`
}

func encodeOutcome(o Outcome) ([]byte, error) {
	if o.Fingerprint == "" {
		return nil, fmt.Errorf("encode outcome of uid %d: empty fingerprint", o.UID)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // Message-IDs are full of < and >
	err := enc.Encode(outcomeRecord{
		MessageID: o.MessageID, Action: o.Action, Folder: o.Folder, ThreadKey: o.ThreadKey,
		UIDValidity: o.UIDValidity, UID: o.UID, At: o.At.UTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("encode outcome %s: %w", o.Fingerprint, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func decodeOutcome(fingerprint string, b []byte) (Outcome, error) {
	var r outcomeRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return Outcome{}, fmt.Errorf("decode outcome %s: %w", fingerprint, err)
	}
	return Outcome{
		Fingerprint: fingerprint, MessageID: r.MessageID, Action: r.Action, Folder: r.Folder,
		ThreadKey: r.ThreadKey, UIDValidity: r.UIDValidity, UID: r.UID, At: r.At,
	}, nil
}
