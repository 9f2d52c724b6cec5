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

	"github.com/emersion/go-smtp"
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
		{"421 in the transaction", phaseMail, &smtp.SMTPError{Code: 421, Message: "bye"}, KindTemporary, true},
		{"452 in the transaction", phaseMail, &smtp.SMTPError{Code: 452}, KindTemporary, true},
		{"550 in the transaction", phaseMail, &smtp.SMTPError{Code: 550}, KindRejected, false},
		{"554 greeting", phaseConnect, &smtp.SMTPError{Code: 554}, KindConnect, true},
		{"535 to AUTH", phaseAuth, &smtp.SMTPError{Code: 535}, KindAuth, true},
		{"timeout in the transaction", phaseMail, timeout, KindConnect, true},
		{"timeout in TLS", phaseTLS, timeout, KindConnect, true},
		{"EOF in the transaction", phaseMail, io.EOF, KindConnect, true},
		{"certificate", phaseTLS, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, KindTLS, true},
		{"garbled reply", phaseMail, textproto.ProtocolError("short response"), KindProtocol, true},
		{"cancelled", phaseMail, context.Canceled, KindConnect, true},
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
