package forwarder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/mailtriage/mailtriage/internal/mailheader"
)

// Kind says what failed, so that the poller can choose between retrying
// later and flagging the message.
type Kind string

// The kinds of failure.
const (
	KindConnect   Kind = "connect"   // dial, greeting, EHLO, a dropped connection, a timeout
	KindTLS       Kind = "tls"       // STARTTLS missing or refused, handshake or certificate failure
	KindAuth      Kind = "auth"      // AUTH missing, mechanism not offered, credential unreadable, AUTH refused
	KindTemporary Kind = "temporary" // a 4xx reply in the mail transaction, or the message source failed
	KindRejected  Kind = "rejected"  // a 5xx reply in the mail transaction (RFC 5321 §4.2.1)
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
// It is true for connection, TLS, authentication and protocol failures
// (nothing is wrong with the message; the path to the server or the server
// is) and for 4xx replies. Only a 5xx reply to the transaction (KindRejected)
// and an over-size message (KindSize) are permanent for the message.
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
	phaseConnect phase = iota
	phaseTLS
	phaseAuth
	phaseMail
)

// fail turns err, met during op in phase p, into an *Error.
func fail(op string, p phase, err error) *Error {
	e := &Error{Op: op, Err: err}
	var se *smtp.SMTPError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		e.Code, e.Message = se.Code, mailheader.Sanitize(se.Message)
		e.Kind = replyKind(p, se.Code)
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

// replyKind classifies an SMTP reply code met in phase p.
func replyKind(p phase, code int) Kind {
	switch p {
	case phaseConnect:
		return KindConnect
	case phaseTLS:
		return KindTLS
	case phaseAuth:
		return KindAuth
	}
	switch code / 100 {
	case 4:
		return KindTemporary
	case 5:
		return KindRejected
	}
	return KindProtocol
}

// connUsable reports whether the session can carry another transaction
// after e: only a plain SMTP refusal leaves it in a known state, and 421
// means the server is closing it (RFC 5321 §3.8).
func (e *Error) connUsable() bool {
	return (e.Kind == KindTemporary || e.Kind == KindRejected) && e.Code != 0 && e.Code != 421
}
