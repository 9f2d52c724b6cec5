package imaproute

import (
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/poller"
)

// TestClassify: each answer or failure has the forwarder's kind, so the
// poller retries what may pass later and flags what will not.
func TestClassify(t *testing.T) {
	no := func(code imap.ResponseCode) error {
		return fmt.Errorf("append: %w", &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: "refused"})
	}
	tests := []struct {
		name      string
		err       error
		login     bool
		kind      forwarder.Kind
		temporary bool
	}{
		{"over quota (RFC 5530)", no(imap.ResponseCodeOverQuota), false, forwarder.KindTemporary, true},
		{"folder gone", no(imap.ResponseCodeTryCreate), false, forwarder.KindTemporary, true},
		{"folder missing", no(imap.ResponseCodeNonExistent), false, forwarder.KindTemporary, true},
		{"server unavailable", no(imap.ResponseCodeUnavailable), false, forwarder.KindTemporary, true},
		{"folder in use", no(imap.ResponseCodeInUse), false, forwarder.KindTemporary, true},
		{"server bug", no(imap.ResponseCodeServerBug), false, forwarder.KindTemporary, true},
		{"limit", no(imap.ResponseCodeLimit), false, forwarder.KindTemporary, true},
		{"too big (RFC 4469)", no(imap.ResponseCodeTooBig), false, forwarder.KindSize, false},
		{"refused without a code", no(""), false, forwarder.KindRejected, false},
		{"no permission", no(imap.ResponseCodeNoPerm), false, forwarder.KindRejected, false},
		{"login refused without a code", no(""), true, forwarder.KindAuth, true},
		{"authentication failed", no(imap.ResponseCodeAuthenticationFailed), true, forwarder.KindAuth, true},
		{"bad command", &imap.Error{Type: imap.StatusResponseTypeBad, Text: "parse error"}, false, forwarder.KindProtocol, true},
		{"server says bye", &imap.Error{Type: imap.StatusResponseTypeBye, Text: "shutting down"}, false, forwarder.KindConnect, true},
		{"no mechanism", fmt.Errorf("XOAUTH2: %w", poller.ErrNoMechanism), true, forwarder.KindAuth, true},
		{"unknown CA", fmt.Errorf("connect: %w", x509.UnknownAuthorityError{}), false, forwarder.KindTLS, true},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("connection refused")}, false, forwarder.KindConnect, true},
		{"connection dropped", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), false, forwarder.KindConnect, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := classify("APPEND INBOX at imap.example.com:993", tc.err, tc.login)
			if e.Kind != tc.kind || e.Temporary() != tc.temporary {
				t.Errorf("classify(%v) = %s, temporary %v; want %s, %v", tc.err, e.Kind, e.Temporary(), tc.kind, tc.temporary)
			}
		})
	}
}
