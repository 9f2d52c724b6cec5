package imaproute_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/forwarder/imaproute"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
	"github.com/mailtriage/mailtriage/poller"
)

// The signer's domain and selector, and the key record's name.
const (
	dkimDomain   = "example.com"
	dkimSelector = "mt2026"
	dkimRecord   = dkimSelector + "._domainkey." + dkimDomain
)

// signingKey is a throw-away key and its DKIM key record (RFC 6376 §3.6.1,
// RFC 8463 for Ed25519).
type signingKey struct {
	name   string
	signer crypto.Signer
	txt    string
}

func signingKeys(t *testing.T) []signingKey {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generate RSA key: %v", err)
	}
	rpub, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatalf("marshal RSA key: %v", err)
	}
	epub, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate Ed25519 key: %v", err)
	}
	return []signingKey{
		{"rsa-sha256", rk, "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(rpub)},
		{"ed25519-sha256", ek, "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(epub)},
	}
}

// signedMessage is message(id) signed by key with the canonicalization c
// for header and body, over the fields a helpdesk relies on.
func signedMessage(t *testing.T, id string, key signingKey, c dkim.Canonicalization) []byte {
	t.Helper()
	raw := message(id)
	// A body that dot-stuffing, trailing white space and a long line put to
	// the test on the SMTP route.
	raw = append(raw, []byte("..two dots\r\ntrailing white space \t\r\n"+strings.Repeat("long line ", 90)+"\r\n\r\n")...)
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(raw), &dkim.SignOptions{
		Domain: dkimDomain, Selector: dkimSelector, Signer: key.signer,
		HeaderCanonicalization: c, BodyCanonicalization: c,
		HeaderKeys: []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "MIME-Version", "Content-Type"},
	})
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return out.Bytes()
}

// verifyDKIM checks every signature of raw against key's record, as the
// helpdesk's side would, with no DNS.
func verifyDKIM(raw []byte, key signingKey) error {
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if name != dkimRecord {
				return nil, fmt.Errorf("no TXT record %s in this test", name)
			}
			return []string{key.txt}, nil
		},
	})
	switch {
	case err != nil:
		return err
	case len(vs) != 1:
		return fmt.Errorf("%d DKIM signatures, want 1", len(vs))
	case vs[0].Err != nil:
		return fmt.Errorf("signature of d=%s: %w", vs[0].Domain, vs[0].Err)
	}
	return nil
}

// TestDKIMSurvivesEachRoute: a message signed by the sender's domain is
// still signed when the helpdesk receives it, on the SMTP route (redirect
// mode, through the SMTP sink) and on the IMAP route (APPEND into Dovecot):
// both only prepend fields the signature does not cover.
func TestDKIMSurvivesEachRoute(t *testing.T) {
	dc, acct := helpdesk(t)
	ctx := t.Context()
	sink, err := smtpsink.Start(ctx, smtpsink.Options{TLS: tlsmode.StartTLS})
	if err != nil {
		t.Fatalf("start SMTP sink: %v", err)
	}
	t.Cleanup(func() { sink.Close() })
	smtpRoute, err := forwarder.New(forwarder.Config{
		Address: sink.Addr(), TLS: tlsmode.StartTLS, RootCAs: sink.RootCAs(),
		From: "triage@example.test", To: []string{"support@helpdesk.example"}, Mode: forwarder.ModeRedirect,
	}, nil)
	if err != nil {
		t.Fatalf("forwarder.New: %v", err)
	}
	t.Cleanup(func() { smtpRoute.Close() })
	imapRoute := newRoute(t, imaproute.Config{IMAP: acct})

	routes := []struct {
		name     string
		fw       poller.Forwarder
		received func(t *testing.T) []byte // the last message the helpdesk got
	}{
		{"smtp", smtpRoute, func(t *testing.T) []byte {
			msgs := sink.Messages()
			if len(msgs) == 0 {
				t.Fatal("the SMTP sink received nothing")
			}
			return msgs[len(msgs)-1].Data
		}},
		{"imap", imapRoute, func(t *testing.T) []byte {
			copies := folder(t, dc, helpdeskUser, helpdeskPassword, "INBOX")
			if len(copies) == 0 {
				t.Fatal("the helpdesk's INBOX is empty")
			}
			return copies[len(copies)-1].Raw
		}},
	}
	n := 0
	for _, key := range signingKeys(t) {
		for _, c := range []dkim.Canonicalization{dkim.CanonicalizationSimple, dkim.CanonicalizationRelaxed} {
			for _, rt := range routes {
				t.Run(fmt.Sprintf("%s/%s/%s", rt.name, key.name, c), func(t *testing.T) {
					n++
					raw := signedMessage(t, fmt.Sprintf("dkim-%d", n), key, c)
					// The test's own signature is sound, and a changed body breaks it.
					if err := verifyDKIM(raw, key); err != nil {
						t.Fatalf("the signed original does not verify: %v", err)
					}
					if err := verifyDKIM(bytes.Replace(raw, []byte("floor 3"), []byte("floor 4"), 1), key); err == nil {
						t.Fatal("a changed body verifies: the check cannot fail")
					}
					if err := deliverOne(ctx, rt.fw, verdict(t, raw), raw); err != nil {
						t.Fatalf("Deliver: %v", err)
					}
					got := rt.received(t)
					if !bytes.HasSuffix(got, raw) {
						t.Errorf("the original is not intact at the end of what the helpdesk received:\n%s", got)
					}
					if err := verifyDKIM(got, key); err != nil {
						t.Errorf("the DKIM signature does not verify at the receiving end: %v\n%s", err, got)
					}
				})
			}
		}
	}
}
