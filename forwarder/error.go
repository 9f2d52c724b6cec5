package forwarder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"

	"github.com/mailtriage/mailtriage/forwarder/smtpclient"
)

// Kind says what failed, so that the poller can choose between retrying
// later and flagging the message.
type Kind string

// The kinds of failure.
const (
	KindConnect   Kind = "connect"   // dial, a dropped connection, a timeout
	KindSession   Kind = "session"   // the server refuses the session, not this message (sessionReply): every message would meet it
	KindTLS       Kind = "tls"       // STARTTLS missing or refused, handshake or certificate failure
	KindAuth      Kind = "auth"      // AUTH missing, mechanism not offered, credential unreadable, AUTH refused
	KindTemporary Kind = "temporary" // a 4xx reply about this message, or the message source failed
	KindRejected  Kind = "rejected"  // a 5xx reply about this message: to its RCPT, DATA or content (RFC 5321 §4.2.1)
	KindSize      Kind = "size"      // the message exceeds the server's SIZE limit (RFC 1870); nothing was sent
	KindProtocol  Kind = "protocol"  // a reply the client cannot make sense of
)

// Error is a failed forward. Message holds the server's reply text
// (sanitized) when there was one; it never holds a credential.
type Error struct {
	Kind    Kind
	Code    int    // SMTP reply code, 0 when the server did not answer
	Message string // the server's reply text, sanitized to one line
	Err     error  // the underlying error
	Op      string // the operation and its object: "RCPT TO <a@b> at smtp.example.com:587"
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "forward: %s: %s", e.Op, e.Kind)
	if e.Code != 0 {
		fmt.Fprintf(&b, ": %d %s", e.Code, e.Message)
	} else if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether trying the same message again later may succeed.
// It is true for connection, session, TLS, authentication and protocol
// failures (nothing is wrong with the message; the path to the server or the
// server is) and for 4xx replies. Only a 5xx reply about this message
// (KindRejected) and an over-size message (KindSize) are permanent for it.
func (e *Error) Temporary() bool {
	return e.Kind != KindRejected && e.Kind != KindSize
}

// FailureKind is Kind as a string, for callers that label metrics without
// importing this package.
func (e *Error) FailureKind() string { return string(e.Kind) }

// phase is the stage of the session an error happened in; it decides the
// kind of errors that are neither SMTP replies nor network failures, and of
// replies before the mail transaction.
type phase int

const (
	phaseConnect phase = iota // greeting and EHLO
	phaseTLS
	phaseAuth
	phaseMail     // MAIL FROM, which names our sender, the same for every message
	phaseMailSize // MAIL FROM with the message's SIZE declared (RFC 1870)
	phaseRcpt     // RCPT TO and the DATA command
	phaseContent  // the reply to the end of data, about the content
)

// fail turns err, met during op in phase p, into an *Error.
func fail(op string, p phase, err error) *Error {
	e := &Error{Op: op, Err: err}
	var se *smtpclient.Error
	var ne net.Error
	switch {
	case errors.As(err, &se) && se.Code != 0:
		e.Code, e.Message = se.Code, se.Line
		if se.Secode != "" {
			e.Message = se.Secode + " " + se.Line
		}
		e.Kind = replyKind(p, se)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		e.Kind = KindConnect
	case p == phaseTLS:
		e.Kind = KindTLS
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		e.Kind = KindConnect
	case p == phaseAuth:
		e.Kind = KindAuth
	case p == phaseConnect:
		e.Kind = KindConnect
	default:
		e.Kind = KindProtocol
	}
	return e
}

// replyKind classifies an SMTP reply met in phase p. A refusal of what is
// the same for every message — the greeting, EHLO, our sender, a 421, our
// account's sending quota (quotaReply) — is KindSession: the poller pauses forwarding and leaves the message untouched,
// rather than blaming each message in turn. Only what the server says about
// this message is KindRejected or KindSize.
func replyKind(p phase, se *smtpclient.Error) Kind {
	switch {
	case p == phaseTLS:
		return KindTLS
	case p == phaseAuth:
		return KindAuth
	case se.Code == 421, p == phaseConnect, sessionReply(p, se):
		// RFC 5321 §3.8: 421 closes the session, whatever the command.
		return KindSession
	case p == phaseMailSize && se.Code == 552:
		// RFC 1870: 552 to MAIL with SIZE, the size over the fixed maximum.
		return KindSize
	case p == phaseMail || p == phaseMailSize:
		// The sender is ours: refused now, refused for every message.
		return KindSession
	case quotaReply(se):
		return KindSession
	case p == phaseRcpt && se.Code == 552:
		// RFC 5321 §4.5.3.1.10: 552 to RCPT ("too many recipients" or
		// storage) is to be taken as the temporary 452.
		return KindTemporary
	}
	switch se.Code / 100 {
	case 4:
		return KindTemporary
	case 5:
		return KindRejected
	}
	return KindProtocol
}

// sessionReply reports whether a reply to RCPT or DATA refuses the session
// rather than the message: servers that delay their HELO, sender or client
// checks to RCPT (Postfix's smtpd_delay_reject, the default) answer there
// "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified
// hostname". Our recipients are the same for every message, so only a reply
// that names nothing of the protocol is taken as about this message.
func sessionReply(p phase, se *smtpclient.Error) bool {
	if p != phaseRcpt || se.Code/100 != 5 {
		return false
	}
	switch {
	case se.Class() == [2]int{5, 5}:
		// RFC 3463 §3.6: X.5.X, mail delivery protocol status.
		return true
	case se.Code >= 500 && se.Code <= 504:
		// RFC 5321 §4.2.2: syntax and command errors, not mailbox ones.
		return true
	case se.Code == 530:
		// RFC 4954 §6: authentication required.
		return true
	}
	return false
}

// quotaRefusal matches what submission servers say when our account has
// used up its sending quota: Gmail's "550 5.4.5 Daily user sending limit
// exceeded" (and "... quota exceeded"), Exchange Online's "554 5.2.0
// STOREDRV.Submission.Exception:SubmissionQuotaExceededException" past its
// 10,000 recipients a day, its "550 5.2.25x Sender throttled due to
// continuous ... errors", and the sending mailbox over its storage quota
// ("554 5.2.2 mailbox full; ...QuotaExceededException").
var quotaRefusal = regexp.MustCompile(`(?i)quota|sending limit|daily limit|sender throttled`)

// quotaReply reports whether a 5xx reply refuses our account for a while
// rather than this message: the quota replies above, and any reply with
// RFC 3463's X.4.5, mail system congestion ("useful only as a persistent
// transient error"). Every message would meet it until the provider's
// window moves on, so the poller pauses forwarding and backs off instead of
// flagging each message as refused (and sending more into a block that
// Google may extend).
func quotaReply(se *smtpclient.Error) bool {
	return se.Code/100 == 5 && (strings.HasSuffix(se.Secode, ".4.5") || quotaRefusal.MatchString(se.Line))
}

// connUsable reports whether the session can carry another transaction
// after e: only a plain SMTP refusal of the message leaves it in a known
// state; a session refusal is met again on a new session, once the cause is
// gone, and 421 means the server is closing it (RFC 5321 §3.8).
func (e *Error) connUsable() bool {
	return (e.Kind == KindTemporary || e.Kind == KindRejected) && e.Code != 0 && e.Code != 421
}
