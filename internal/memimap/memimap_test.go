package memimap

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailtriage/mailtriage/internal/selfsigned"
)

// TestHide logs in to servers hiding capabilities or keywords, over each
// transport, and checks what the client is told.
func TestHide(t *testing.T) {
	cert, err := selfsigned.Loopback("memimap test")
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	all := []imap.Cap{imap.CapMove, imap.CapUIDPlus, imap.CapNamespace, imap.CapIdle}
	for _, tc := range []struct {
		name     string
		opt      Options
		keywords bool // PERMANENTFLAGS has \*
	}{
		{"plaintext, everything", Options{}, true},
		{"plaintext, no MOVE", Options{Hide: []imap.Cap{imap.CapMove}}, true},
		{"plaintext, no UIDPLUS nor MOVE", Options{Hide: []imap.Cap{imap.CapUIDPlus, imap.CapMove}}, true},
		{"plaintext, no IDLE", Options{Hide: []imap.Cap{imap.CapIdle}}, true},
		{"implicit TLS, no IDLE nor NAMESPACE", Options{TLS: tlsConf, Hide: []imap.Cap{imap.CapIdle, imap.CapNamespace}}, true},
		{"implicit TLS, no keywords", Options{TLS: tlsConf, NoKeywords: true}, false},
		{"STARTTLS, no MOVE, no keywords", Options{TLS: tlsConf, StartTLS: true, Hide: []imap.Cap{imap.CapMove}, NoKeywords: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Start(t.Context(), tc.opt)
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			if _, err := s.AddUser("u", "p"); err != nil {
				t.Fatal(err)
			}
			c := dial(t, s, tc.opt, cert.RootCAs)
			if err := c.Login("u", "p").Wait(); err != nil {
				t.Fatalf("login: %v", err)
			}
			caps, err := c.Capability().Wait()
			if err != nil {
				t.Fatalf("capability: %v", err)
			}
			for _, cp := range all {
				if want := !slices.Contains(tc.opt.Hide, cp); caps.Has(cp) != want {
					t.Errorf("%s offered: %v, want %v (caps %v)", cp, caps.Has(cp), want, caps)
				}
			}
			sel, err := c.Select("INBOX", nil).Wait()
			if err != nil {
				t.Fatalf("select: %v", err)
			}
			if got := slices.Contains(sel.PermanentFlags, imap.FlagWildcard); got != tc.keywords {
				t.Errorf("PERMANENTFLAGS %v: \\* %v, want %v", sel.PermanentFlags, got, tc.keywords)
			}
			if slices.Contains(tc.opt.Hide, imap.CapIdle) {
				// Hidden, not gone: the command still works.
				idle, err := c.Idle()
				if err != nil {
					t.Fatalf("idle: %v", err)
				}
				if err := idle.Close(); err != nil {
					t.Errorf("hidden IDLE: %v", err)
				}
			}
		})
	}
}

func dial(t *testing.T, s *Server, opt Options, roots *x509.CertPool) *imapclient.Client {
	t.Helper()
	conf := &tls.Config{RootCAs: roots}
	var c *imapclient.Client
	var err error
	switch {
	case opt.TLS == nil:
		c, err = imapclient.DialInsecure(s.Addr, nil)
	case opt.StartTLS:
		c, err = imapclient.DialStartTLS(s.Addr, &imapclient.Options{TLSConfig: conf})
	default:
		c, err = imapclient.DialTLS(s.Addr, &imapclient.Options{TLSConfig: conf})
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStartTLSCannotHideIdle(t *testing.T) {
	cert, err := selfsigned.Loopback("memimap test")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(t.Context(), Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert.TLS}}, StartTLS: true, Hide: []imap.Cap{imap.CapIdle}})
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("Start = %v, want an error naming STARTTLS", err)
	}
}

// TestCapFilter runs server output through the filter: capability lists
// lose the hidden names, literals and other lines pass untouched.
func TestCapFilter(t *testing.T) {
	hide := []string{"IDLE", "MOVE"}
	for _, tc := range []struct{ name, in, want string }{
		{"untagged list", "* CAPABILITY IMAP4rev1 IDLE UIDPLUS move\r\n", "* CAPABILITY IMAP4rev1 UIDPLUS\r\n"},
		{"greeting code", "* OK [CAPABILITY IMAP4rev1 IDLE SASL-IR] ready\r\n", "* OK [CAPABILITY IMAP4rev1 SASL-IR] ready\r\n"},
		{"tagged code", "T3 OK [CAPABILITY IMAP4rev1 MOVE] logged in\r\n", "T3 OK [CAPABILITY IMAP4rev1] logged in\r\n"},
		{"literal passes", "* 1 FETCH (BODY[] {26}\r\n* CAPABILITY IDLE MOVE\r\n)\r\n", "* 1 FETCH (BODY[] {26}\r\n* CAPABILITY IDLE MOVE\r\n)\r\n"},
		{"quoted text passes", "* 1 FETCH (ENVELOPE (\"x OK [CAPABILITY IDLE]\"))\r\n", "* 1 FETCH (ENVELOPE (\"x OK [CAPABILITY IDLE]\"))\r\n"},
		{"other lines pass", "* 3 EXISTS\r\nT1 OK IDLE done\r\n", "* 3 EXISTS\r\nT1 OK IDLE done\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			f := &capFilter{w: &out, hide: hide}
			// One octet at a time: lines and literals cross writes.
			for i := range len(tc.in) {
				if n, err := f.Write([]byte{tc.in[i]}); n != 1 || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if out.String() != tc.want {
				t.Errorf("got %q, want %q", out.String(), tc.want)
			}
		})
	}
}

// FuzzCapFilter: whatever the server writes and however it is split into
// writes, the filter never panics and writes the same octets.
func FuzzCapFilter(f *testing.F) {
	f.Add([]byte("* CAPABILITY IMAP4rev1 IDLE\r\n* 1 FETCH (BODY[] {5}\r\nIDLE\n)\r\n"), 7)
	f.Add([]byte("T1 OK [CAPABILITY IDLE] x\r\n{99999999999999999999}\r\n"), 3)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		whole, parts := &bytes.Buffer{}, &bytes.Buffer{}
		if _, err := (&capFilter{w: whole, hide: []string{"IDLE"}}).Write(data); err != nil {
			t.Fatal(err)
		}
		if split < 0 || split > len(data) {
			split = len(data) / 2
		}
		pf := &capFilter{w: parts, hide: []string{"IDLE"}}
		if _, err := pf.Write(data[:split]); err != nil {
			t.Fatal(err)
		}
		if _, err := pf.Write(data[split:]); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(whole.Bytes(), parts.Bytes()) {
			t.Errorf("split at %d: %q, whole: %q", split, parts.Bytes(), whole.Bytes())
		}
	})
}
