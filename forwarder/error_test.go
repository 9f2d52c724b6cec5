package forwarder

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/textproto"
	"os"
	"testing"

	"github.com/mailtriage/mailtriage/forwarder/smtpclient"
)

func TestFailKinds(t *testing.T) {
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name      string
		p         phase
		err       error
		kind      Kind
		temporary bool
	}{
		{"421 to RCPT closes the session", phaseRcpt, &smtpclient.Error{Code: 421, Line: "bye"}, KindSession, true},
		{"421 after the content closes the session", phaseContent, &smtpclient.Error{Code: 421}, KindSession, true},
		{"452 to RCPT", phaseRcpt, &smtpclient.Error{Code: 452}, KindTemporary, true},
		{"550 5.1.1 to RCPT is about the message", phaseRcpt, &smtpclient.Error{Code: 550, Secode: "5.1.1"}, KindRejected, false},
		{"552 to RCPT is 452 (RFC 5321 4.5.3.1.10)", phaseRcpt, &smtpclient.Error{Code: 552, Secode: "5.2.2"}, KindTemporary, true},
		{"504 5.5.2 Helo rejected, delayed to RCPT", phaseRcpt, &smtpclient.Error{Code: 504, Secode: "5.5.2"}, KindSession, true},
		{"554 5.5.0 protocol refusal to RCPT", phaseRcpt, &smtpclient.Error{Code: 554, Secode: "5.5.0"}, KindSession, true},
		{"530 authentication required to RCPT", phaseRcpt, &smtpclient.Error{Code: 530, Secode: "5.7.0"}, KindSession, true},
		{"554 to the DATA command", phaseRcpt, &smtpclient.Error{Code: 554, Secode: "5.7.1"}, KindRejected, false},
		{"550 to MAIL refuses our sender", phaseMail, &smtpclient.Error{Code: 550}, KindSession, true},
		{"452 to MAIL", phaseMail, &smtpclient.Error{Code: 452}, KindSession, true},
		{"552 to MAIL with SIZE", phaseMailSize, &smtpclient.Error{Code: 552, Secode: "5.3.4"}, KindSize, false},
		{"552 to MAIL without SIZE", phaseMail, &smtpclient.Error{Code: 552}, KindSession, true},
		{"500 after the content is about it", phaseContent, &smtpclient.Error{Code: 500, Secode: "5.5.0"}, KindRejected, false},
		{"554 after the content", phaseContent, &smtpclient.Error{Code: 554}, KindRejected, false},
		{"Gmail's daily quota after the content", phaseContent, &smtpclient.Error{Code: 550, Secode: "5.4.5", Line: "Daily user sending limit exceeded."}, KindSession, true},
		{"X.4.5 congestion to RCPT", phaseRcpt, &smtpclient.Error{Code: 550, Secode: "5.4.5", Line: "try later"}, KindSession, true},
		{"Exchange's submission quota after the content", phaseContent, &smtpclient.Error{Code: 554, Secode: "5.2.0",
			Line: "STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception"}, KindSession, true},
		{"Exchange's sender throttling to RCPT", phaseRcpt, &smtpclient.Error{Code: 550, Secode: "5.2.252", Line: "Sender throttled due to continuous send as denied errors."}, KindSession, true},
		{"550 5.4.1 to RCPT is about the recipient", phaseRcpt, &smtpclient.Error{Code: 550, Secode: "5.4.1", Line: "Recipient address rejected: Access denied"}, KindRejected, false},
		{"451 after the content", phaseContent, &smtpclient.Error{Code: 451}, KindTemporary, true},
		{"554 greeting", phaseConnect, &smtpclient.Error{Code: 554}, KindSession, true},
		{"504 to EHLO", phaseConnect, &smtpclient.Error{Code: 504, Secode: "5.5.2"}, KindSession, true},
		{"535 to AUTH", phaseAuth, &smtpclient.Error{Code: 535}, KindAuth, true},
		{"timeout in the transaction", phaseRcpt, timeout, KindConnect, true},
		{"timeout in TLS", phaseTLS, timeout, KindConnect, true},
		{"EOF in the transaction", phaseContent, io.EOF, KindConnect, true},
		{"certificate", phaseTLS, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, KindTLS, true},
		{"garbled reply", phaseRcpt, textproto.ProtocolError("short response"), KindProtocol, true},
		{"cancelled", phaseContent, context.Canceled, KindConnect, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := fail("op", tt.p, tt.err)
			if e.Kind != tt.kind || e.Temporary() != tt.temporary || !errors.Is(e, tt.err) {
				t.Errorf("fail = %v: kind %s temporary %v, want %s %v", e, e.Kind, e.Temporary(), tt.kind, tt.temporary)
			}
		})
	}
}
