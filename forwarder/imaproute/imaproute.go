// Package imaproute delivers clean mail into a folder that the helpdesk
// pulls over IMAP (Zammad, FreeScout, osTicket, Request Tracker through
// fetchmail): the `imap` route of forward.route.
//
// Each message is stored with one APPEND (RFC 9051 §6.3.12, RFC 3501
// §6.3.11): the annotation fields of DESIGN.md §3 (forwarder.Annotation)
// and an X-Mailtriage-Fingerprint field, then the original byte for byte,
// streamed from the FETCH literal into the APPEND literal, whose size is
// the original's RFC822.SIZE plus the fields'. No flag is set, so the copy
// is unseen and a pulling helpdesk takes it as new; From, To, Cc,
// Message-ID, In-Reply-To, References and any DKIM signature are the
// original's. There is no Resent-* block: nothing is resent, and the
// envelope of the original delivery is not ours to restate.
//
// Idempotent across crashes: when a session opens, the fingerprint field of
// every message in the folder is read, once (UID FETCH
// BODY.PEEK[HEADER.FIELDS (X-Mailtriage-Fingerprint)], RFC 9051 §6.4.5),
// and a message whose mark is there is not appended again. So a crash
// between the APPEND and the poller's record makes no second copy when the
// message is forwarded again; the one window left is a helpdesk that took
// the copy out of the folder in between. Only the topmost such field of a
// copy counts: the one mailtriage wrote, not one the original carried.
// With UIDPLUS (RFC 4315) the APPENDUID of each copy is logged.
//
// A missing folder is not created: a typo would otherwise hide every
// forwarded message from the helpdesk. It is a temporary failure, so the
// poller pauses forwarding and leaves the mail in place until someone
// creates the folder. Errors are *forwarder.Error values with the
// forwarder's kinds, so the poller's pause, backoff and flagging work as on
// the SMTP route: connection, TLS and login trouble, NO [TRYCREATE]
// (RFC 9051 §7.1) and NO [NONEXISTENT], [OVERQUOTA], [UNAVAILABLE],
// [INUSE], [SERVERBUG], [LIMIT] (RFC 5530) are temporary; NO [TOOBIG]
// (RFC 4469, as RFC 7889 uses it) is KindSize and any other NO to APPEND
// is KindRejected, both permanent for the message.
//
// The mark depends on the message only, so the same message watched in two
// mailboxes that forward into one folder is stored there once.
//
// It never sets \Seen, never changes the original, never holds a whole
// message in memory and never puts a credential in an error or a log line.
package imaproute

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/poller"
)

// HeaderFingerprint carries a hash of the source message's fingerprint
// (analyzer.Verdict.Fingerprint): what finds a copy appended before a crash.
const HeaderFingerprint = "X-Mailtriage-Fingerprint"

// DefaultFolder is where mail goes when Config.Folder is empty.
const DefaultFolder = "INBOX"

// copyBuffer is the size of the buffer the body is streamed through.
const copyBuffer = 64 << 10

// Config says which account and folder the helpdesk pulls.
type Config struct {
	IMAP   poller.IMAP // server, TLS and login, as for a watched mailbox
	Folder string      // DefaultFolder when empty
}

// Route appends messages over one IMAP session at a time. It is safe for
// concurrent use; forwards are serialized.
type Route struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	sess *session // nil when not connected
}

// session is one logged-in IMAP session with Folder selected.
type session struct {
	*poller.Session
	// marks are the fingerprint marks of the copies in the folder, read
	// when the session opened, and of those it appended since.
	marks map[string]imap.UID
}

// New checks cfg and returns a Route. It does not connect: the first
// Forward does.
func New(cfg Config, log *slog.Logger) (*Route, error) {
	if host, _, err := net.SplitHostPort(cfg.IMAP.Address); err != nil || host == "" {
		return nil, fmt.Errorf("imap route: address %q: want host:port", cfg.IMAP.Address)
	}
	if cfg.Folder == "" {
		cfg.Folder = DefaultFolder
	}
	if strings.ContainsAny(cfg.Folder, "\r\n\x00") {
		return nil, fmt.Errorf("imap route: folder %q holds a control character", cfg.Folder)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Route{cfg: cfg, log: log.With("imap_route", cfg.IMAP.Address, "folder", cfg.Folder)}, nil
}

// Forward appends the message read from body, size octets long (its
// RFC822.SIZE), with the annotation for v; released adds
// X-Mailtriage-Released: yes. A copy already in the folder with the same
// fingerprint counts as done and nothing is appended. A session found dead
// before the body was touched is reopened once; a body that ends before or
// after size octets, or fails, is never completed: the connection is
// closed in the middle of the literal and the server stores nothing.
func (r *Route) Forward(ctx context.Context, v analyzer.Verdict, released bool, size int64, body io.Reader) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if size <= 0 {
		return &forwarder.Error{Op: r.op("APPEND"), Kind: forwarder.KindRejected,
			Err: errors.New("message size unknown; an APPEND literal needs it")}
	}
	if r.sess != nil && r.sess.Broken() {
		r.drop() // the server closed it since the last forward
	}
	for attempt := 0; ; attempt++ {
		reused := r.sess != nil
		if !reused {
			s, err := r.open(ctx)
			if err != nil {
				return err
			}
			r.sess = s
		}
		started, err := r.append(ctx, r.sess, v, released, size, body)
		if err == nil {
			return nil
		}
		if r.sess.Broken() || started {
			r.drop()
		}
		if reused && !started && attempt == 0 && err.Kind == forwarder.KindConnect {
			r.log.Info("imap session closed by the server; reconnecting", "error", err)
			continue
		}
		return err
	}
}

// Deliver forwards each job read from jobs with Forward, one at a time
// (APPEND is one command at a time on the session), and sends its Result,
// until jobs is closed: the poller's Forwarder.
func (r *Route) Deliver(ctx context.Context, jobs <-chan forwarder.Job, results chan<- forwarder.Result) {
	for j := range jobs {
		err := r.Forward(ctx, j.Verdict, j.Released, j.Body.Size(), j.Body.Reader())
		results <- forwarder.Result{Key: j.Key, Err: err}
	}
}

// append looks the message up among the folder's marks and APPENDs it on s
// when it is not there. started reports whether body was touched.
func (r *Route) append(ctx context.Context, s *session, v analyzer.Verdict, released bool, size int64, body io.Reader) (started bool, err *forwarder.Error) {
	header := forwarder.Annotation(v, released)
	var mark string
	if v.Fingerprint != "" {
		mark = fingerprintMark(v.Fingerprint)
		if uid, ok := s.marks[mark]; ok {
			r.log.Info("copy already in the folder; not appended again", "message_id", v.MessageID, "uid", uid)
			return false, nil
		}
		header += HeaderFingerprint + ": " + mark + "\r\n"
	}

	var data *imap.AppendData
	var srcErr error // the message source failed, or its length is not size
	werr := s.Stream(ctx, func() error {
		cmd := s.Client().Append(r.cfg.Folder, int64(len(header))+size, nil)
		if _, err := io.WriteString(cmd, header); err != nil {
			return err
		}
		started = true
		var werr error
		if srcErr, werr = copyLiteral(cmd, body, size); srcErr != nil || werr != nil {
			return errors.Join(srcErr, werr)
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		var err error
		data, err = cmd.Wait()
		return err
	})
	switch {
	case srcErr != nil:
		// The literal was not finished: the caller's drop closes the
		// connection and the server discards the partial message.
		kind := forwarder.KindTemporary
		if errors.Is(srcErr, errLength) {
			kind = forwarder.KindRejected
		}
		return true, &forwarder.Error{Op: r.op("read message body for APPEND"), Kind: kind, Err: srcErr}
	case werr != nil:
		return started, classify(r.op("APPEND"), werr, false)
	}
	if mark != "" {
		s.marks[mark] = data.UID // 0 without UIDPLUS: still a copy
	}
	r.log.Debug("appended", "message_id", v.MessageID, "octets", int64(len(header))+size, "uid", data.UID, "uidvalidity", data.UIDValidity)
	return started, nil
}

// readMarks reads the fingerprint mark of every message in the selected
// folder, with one UID FETCH of that field (RFC 9051 §6.4.5,
// BODY.PEEK[HEADER.FIELDS (...)]): once per session, rather than a search
// of the whole folder per message.
func (r *Route) readMarks(ctx context.Context, s *poller.Session, exists uint32) (map[string]imap.UID, *forwarder.Error) {
	marks := make(map[string]imap.UID)
	if exists == 0 {
		return marks, nil
	}
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{HeaderFingerprint}, Peek: true}
	err := s.Stream(ctx, func() error {
		cmd := s.Client().Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}})
		buf := make([]byte, maxFieldBlock)
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			var uid imap.UID
			for item := msg.Next(); item != nil; item = msg.Next() {
				switch item := item.(type) {
				case imapclient.FetchItemDataUID:
					uid = item.UID
				case imapclient.FetchItemDataBodySection:
					if item.Literal == nil {
						continue
					}
					n, _ := io.ReadFull(item.Literal, buf)
					if _, err := io.Copy(io.Discard, item.Literal); err != nil {
						return err
					}
					if mark, ok := parseMark(buf[:n]); ok {
						marks[mark] = uid
					}
				}
			}
		}
		return cmd.Close()
	})
	if err != nil {
		return nil, classify(r.op("UID FETCH "+HeaderFingerprint+" of"), err, false)
	}
	return marks, nil
}

// maxFieldBlock bounds what is read of one message's fingerprint fields:
// ours comes first and takes 59 octets; the rest is drained unread.
const maxFieldBlock = 256

// parseMark returns the mark of the first HeaderFingerprint field of a
// header block, as the server returns it for HEADER.FIELDS: the field
// mailtriage put on top, not one the original may carry further down.
func parseMark(block []byte) (string, bool) {
	line, _, _ := bytes.Cut(block, []byte("\n"))
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok || !strings.EqualFold(string(bytes.TrimSpace(name)), HeaderFingerprint) {
		return "", false
	}
	value = bytes.TrimSpace(value)
	if len(value) != markLength {
		return "", false
	}
	for _, c := range value {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return string(value), true
}

// open logs in and selects the folder read-only: EXAMINE, so that the
// \Recent flag of new copies stays for the helpdesk's session.
func (r *Route) open(ctx context.Context) (*session, *forwarder.Error) {
	s, err := poller.Dial(ctx, r.cfg.IMAP, r.log)
	if err != nil {
		return nil, classify(r.op("log in"), err, true)
	}
	sel, err := s.Select(ctx, r.cfg.Folder, true)
	if err != nil {
		s.Logout(ctx)
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo {
			// RFC 5530 NONEXISTENT, or a server that gives no code.
			return nil, &forwarder.Error{Op: r.op("EXAMINE"), Kind: forwarder.KindTemporary,
				Err: fmt.Errorf("folder %q cannot be opened (create it: it is the folder the helpdesk pulls): %w", r.cfg.Folder, err)}
		}
		return nil, classify(r.op("EXAMINE"), err, false)
	}
	marks, ferr := r.readMarks(ctx, s, sel.NumMessages)
	if ferr != nil {
		s.Close()
		return nil, ferr
	}
	return &session{Session: s, marks: marks}, nil
}

// Check opens a separate session, logs in, opens the folder read-only and
// logs out. It is what `mailtriage check` runs.
func (r *Route) Check(ctx context.Context) error {
	s, err := r.open(ctx)
	if err != nil {
		return err
	}
	s.Logout(ctx)
	return nil
}

// op names an operation and its object for an error.
func (r *Route) op(what string) string {
	return what + " " + r.cfg.Folder + " at " + r.cfg.IMAP.Address
}

// drop closes the current session without LOGOUT.
func (r *Route) drop() {
	if r.sess != nil {
		r.sess.Close()
		r.sess = nil
	}
}

// Close ends the IMAP session with LOGOUT; the next Forward reconnects.
func (r *Route) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sess != nil {
		r.sess.Logout(context.Background())
		r.sess = nil
	}
	return nil
}

// markLength is the length of a mark: 32 hex digits.
const markLength = 32

// fingerprintMark is the value of HeaderFingerprint: 32 lower-case hex
// digits of the SHA-256 of the fingerprint, a fixed alphabet and length
// that are safe as a header value whatever the fingerprint holds.
func fingerprintMark(fp string) string {
	sum := sha256.Sum256([]byte(fp))
	return hex.EncodeToString(sum[:16])
}

// temporaryCodes are the NO response codes (RFC 5530) after which the same
// message may be stored later.
var temporaryCodes = map[imap.ResponseCode]bool{
	imap.ResponseCodeOverQuota:   true, // the helpdesk has not pulled the folder empty yet
	imap.ResponseCodeUnavailable: true,
	imap.ResponseCodeInUse:       true,
	imap.ResponseCodeServerBug:   true,
	imap.ResponseCodeLimit:       true,
	imap.ResponseCodeTryCreate:   true, // the folder went away; someone must create it again
	imap.ResponseCodeNonExistent: true,
}

// classify turns an IMAP session error met during op into a
// *forwarder.Error of the forwarder's kinds.
// login says err came from logging in, where a NO is a refused login.
func classify(op string, err error, login bool) *forwarder.Error {
	e := &forwarder.Error{Op: op, Err: err}
	var ie *imap.Error
	var ne net.Error
	switch {
	case errors.As(err, &ie):
		switch {
		case login && ie.Type == imap.StatusResponseTypeNo,
			ie.Code == imap.ResponseCodeAuthenticationFailed, ie.Code == imap.ResponseCodeAuthorizationFailed,
			ie.Code == imap.ResponseCodeExpired, ie.Code == imap.ResponseCodePrivacyRequired:
			e.Kind = forwarder.KindAuth
		case ie.Type == imap.StatusResponseTypeBye:
			e.Kind = forwarder.KindConnect
		case ie.Type == imap.StatusResponseTypeBad:
			e.Kind = forwarder.KindProtocol
		case ie.Code == imap.ResponseCodeTooBig:
			e.Kind = forwarder.KindSize
		case temporaryCodes[ie.Code]:
			e.Kind = forwarder.KindTemporary
		default:
			e.Kind = forwarder.KindRejected
		}
	case errors.Is(err, poller.ErrNoMechanism):
		e.Kind = forwarder.KindAuth
	case isTLS(err):
		e.Kind = forwarder.KindTLS
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Kind = forwarder.KindConnect
	default:
		e.Kind = forwarder.KindProtocol
	}
	return e
}

// errLength: the message source ended before, or went on after, the size
// it was announced with.
var errLength = errors.New("message length differs from its RFC822.SIZE")

// copyLiteral copies exactly size octets from src to w, then makes sure src
// has no more. srcErr is a failure of src or a wrong length (errLength);
// werr a failure of w, the connection.
func copyLiteral(w io.Writer, src io.Reader, size int64) (srcErr, werr error) {
	buf := make([]byte, min(size+1, copyBuffer))
	var n int64
	for {
		k, err := src.Read(buf[:min(int64(len(buf)), size+1-n)])
		n += int64(k)
		if n > size {
			return fmt.Errorf("%w: longer than %d octets", errLength, size), nil
		}
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return nil, werr
			}
		}
		switch {
		case err == io.EOF && n < size:
			return fmt.Errorf("%w: ended after %d of %d octets", errLength, n, size), nil
		case err == io.EOF:
			return nil, nil
		case err != nil:
			return err, nil
		}
	}
}

// isTLS reports whether err is a TLS handshake or certificate failure.
func isTLS(err error) bool {
	var cv *tls.CertificateVerificationError
	var rh tls.RecordHeaderError
	var alert tls.AlertError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	return errors.As(err, &cv) || errors.As(err, &rh) || errors.As(err, &alert) || errors.As(err, &ua) || errors.As(err, &he)
}
