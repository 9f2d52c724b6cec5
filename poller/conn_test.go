package poller

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/secret"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// Login over each path, and the refusals: plaintext without consent, an
// untrusted certificate, a mechanism the server lacks, a wrong password.
// No error ever carries the password.
func TestDialAndLogin(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tc := range []struct {
		name    string
		edit    func(*IMAP)
		wantErr string // "" = logs in
		is      error
	}{
		{name: "AUTHENTICATE PLAIN", edit: func(*IMAP) {}},
		{name: "LOGIN command when AUTH=LOGIN is not offered", edit: func(c *IMAP) { c.Auth.Mechanism = credential.Login }},
		{name: "XOAUTH2 not offered", edit: func(c *IMAP) { c.Auth.Mechanism = credential.XOAuth2 }, is: ErrNoMechanism},
		{name: "wrong password", edit: func(c *IMAP) { c.Auth.Secret = credential.Static(secret.New("wrong-pass-xyz")) }, wantErr: "log in to"},
		{name: "plaintext without consent", edit: func(c *IMAP) { c.TLS = tlsmode.None }, is: ErrPlaintext},
		{name: "untrusted certificate", edit: func(c *IMAP) { c.RootCAs = x509.NewCertPool() }, wantErr: "certificate"},
		{name: "wrong server name", edit: func(c *IMAP) { c.ServerName = "imap.example.com" }, wantErr: "certificate"},
		{name: "no secret", edit: func(c *IMAP) { c.Auth.Secret = nil }, is: credential.ErrNoSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := e.poller(nil, func(mb *Mailbox) { tc.edit(&mb.IMAP) })
			c, err := p.dial(t.Context(), nil)
			if err == nil {
				defer c.logout(t.Context())
			}
			switch {
			case tc.wantErr == "" && tc.is == nil:
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
			case err == nil:
				t.Fatal("dial succeeded, want an error")
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Fatalf("dial error %v, want %v", err, tc.is)
			case !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("dial error %q, want it to mention %q", err, tc.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), "wrong-pass-xyz")) {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

// OAUTHBEARER through AUTHENTICATE with the token as the secret.
func TestOAuthLogin(t *testing.T) {
	const token = "ya29.token-never-logged"
	e := newEnv(t, envOptions{oauthToken: token})
	for _, tc := range []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid token", token, true},
		{"expired token", "ya29.expired", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := e.poller(nil, func(mb *Mailbox) {
				mb.IMAP.Auth = credential.Auth{Mechanism: credential.OAuthBearer, Username: testUser, Secret: credential.Static(secret.New(tc.token))}
			})
			c, err := p.dial(t.Context(), nil)
			if err == nil {
				c.logout(t.Context())
			}
			if (err == nil) != tc.ok {
				t.Fatalf("dial error %v, want ok=%v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), tc.token) {
				t.Fatalf("error leaks the token: %v", err)
			}
		})
	}
}

// Check reports login, the watched folder and the review and release
// folders (created when missing), one line each.
func TestCheck(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.appendMsg("INBOX", cleanMessage("clean-1"))
	res := e.poller(nil, nil).Check(t.Context())
	want := []struct{ name, detail string }{
		{"mailbox support: imap login", "as " + testUser},
		{"mailbox support: folder names", `prefix "", separator "/"`},
		{"mailbox support: folder INBOX", "1 messages"},
		{"mailbox support: review folder Triage/Review", "created"},
		{"mailbox support: release folder Triage/Release", "created"},
	}
	if len(res) != len(want) {
		t.Fatalf("check gave %d lines: %+v", len(res), res)
	}
	for i, w := range want {
		if res[i].Name != w.name || res[i].Err != nil || !strings.Contains(res[i].Detail, w.detail) {
			t.Errorf("line %d = %+v, want %s: ...%s...", i, res[i], w.name, w.detail)
		}
	}
	if res := e.poller(nil, nil).Check(t.Context()); res[3].Detail != "exists" {
		t.Errorf("second check: %+v, want the review folder to exist", res[3])
	}

	bad := e.poller(nil, func(mb *Mailbox) { mb.IMAP.Auth.Secret = credential.Static(secret.New("nope-secret")) })
	res = bad.Check(t.Context())
	if len(res) != 1 || res[0].Err == nil {
		t.Fatalf("check with a wrong password: %+v, want one failed line", res)
	}
	if strings.Contains(res[0].Err.Error(), "nope-secret") || strings.Contains(res[0].Detail, "nope-secret") {
		t.Errorf("check output leaks the password: %+v", res[0])
	}
}
