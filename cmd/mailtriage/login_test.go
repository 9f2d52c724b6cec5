package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
)

const loginUser = "helpdesk@contoso.example"

const loginMessage = "From: Alice <alice@example.com>\r\nTo: helpdesk@contoso.example\r\nSubject: Printer\r\n" +
	"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\nMessage-ID: <login-1@example.com>\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n\r\nThe printer is on fire.\r\n"

// `mailtriage login`, `check` and `run --once` for each provider's shape, against a
// local OAuth2 server and IMAP and SMTP servers that check the bearer
// token with it. Nothing the server issued shows in any output.
func TestLoginThenRunOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		login  bool   // the flow needs `mailtriage login` first
		oauth2 string // the oauth2 block; %[1]s token URL, %[2]s device URL, %[3]s directory
	}{
		{"microsoft delegated (device code, refresh token)", true,
			"provider: microsoft\n  tenant: contoso.example\n  client_id: app-1\n  token_url: %[1]s\n  device_auth_url: %[2]s\n  refresh_token_file: %[3]s/refresh-token"},
		{"microsoft app-only (client credentials)", false,
			"provider: microsoft\n  flow: client_credentials\n  tenant: contoso.example\n  client_id: app-1\n  client_secret_file: %[3]s/client-secret\n  token_url: %[1]s"},
		{"google (service account)", false,
			"provider: google\n  service_account_file: %[3]s/service-account.json\n  token_url: %[1]s"},
		{"generic (device code, refresh token)", true,
			"provider: generic\n  client_id: app-1\n  client_secret_file: %[3]s/client-secret\n  token_url: %[1]s\n  device_auth_url: %[2]s\n  refresh_token_file: %[3]s/refresh-token\n  scopes: [imap, smtp, offline_access]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			srv := testenv.StartOAuth2(t, testenv.OAuth2Options{ClientID: "app-1", Rotate: true})
			if err := os.WriteFile(filepath.Join(dir, "client-secret"), []byte("client-secret-value\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			srv.ServiceAccountKey(t, dir, "mailtriage@project.iam.gserviceaccount.com")
			imapAddr, user := testenv.OAuthIMAP(t, loginUser, srv.Valid)
			msg := []byte(loginMessage)
			if _, err := user.Append("INBOX", literal{bytes.NewReader(msg), int64(len(msg))}, &imap.AppendOptions{}); err != nil {
				t.Fatal(err)
			}
			sink, err := smtpsink.Start(t.Context(), smtpsink.Options{Username: loginUser, Verify: func(_, tok string) bool { return srv.Valid(tok) }})
			if err != nil {
				t.Fatal(err)
			}
			block := fmt.Sprintf(tc.oauth2, srv.TokenURL, srv.DeviceAuthURL, dir)
			indent := func(n int) string { return strings.ReplaceAll(block, "\n  ", "\n"+strings.Repeat(" ", n+2)) }
			cfgPath := filepath.Join(dir, "mailtriage.yaml")
			cfg := fmt.Sprintf(`state:
  url: file:%s/state.db
mailboxes:
  - name: support
    imap:
      address: %s
      tls: none
      insecure_plaintext: true
      username: %s
      auth: oauth2
      oauth2:
        %s
    forward:
      to: [desk@example.zendesk.com]
      from: %s
      smtp:
        address: %s
        tls: none
        insecure_plaintext: true
        username: %s
        auth: oauth2
        oauth2:
          %s
`, dir, imapAddr, loginUser, indent(6), loginUser, sink.Addr(), loginUser, indent(8))
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if tc.login {
				var stdout, stderr bytes.Buffer
				if code := dispatch([]string{"login", "--config", cfgPath, "--mailbox", "support"}, &stdout, &stderr); code != exitOK {
					t.Fatalf("login: exit %d\n%s%s", code, stdout.String(), stderr.String())
				}
				if !strings.Contains(stdout.String(), "WDJB-MJHT") {
					t.Errorf("login did not show the user code:\n%s", stdout.String())
				}
				out.Write(stdout.Bytes())
				out.Write(stderr.Bytes())
			}
			var check bytes.Buffer
			if code := dispatch([]string{"check", "--config", cfgPath}, &check, &check); code != exitOK || !strings.Contains(check.String(), "imap login") {
				t.Fatalf("check: exit %d\n%s", code, check.String())
			}
			out.Write(check.Bytes())
			var stdout, stderr bytes.Buffer
			if code := dispatch([]string{"run", "--config", cfgPath, "--once"}, &stdout, &stderr); code != exitOK {
				t.Fatalf("run --once: exit %d\n%s", code, stderr.String())
			}
			out.Write(stdout.Bytes())
			out.Write(stderr.Bytes())
			if sink.Count() != 1 {
				t.Fatalf("sink got %d messages, want 1\n%s", sink.Count(), out.String())
			}
			if st, err := user.Status("INBOX", &imap.StatusOptions{NumMessages: true, NumUnseen: true}); err != nil || *st.NumMessages != 1 || *st.NumUnseen != 0 {
				t.Errorf("INBOX after the cycle: %+v, %v; want the message kept and marked \\Seen", st, err)
			}
			for _, tok := range srv.Tokens() {
				if strings.Contains(out.String(), tok) {
					t.Fatalf("output shows a token the server issued:\n%s", out.String())
				}
			}
		})
	}
}

type literal struct {
	*bytes.Reader
	n int64
}

func (l literal) Size() int64 { return l.n }

// What `mailtriage login` refuses, each with a message saying why.
func TestLoginRefusals(t *testing.T) {
	dir := t.TempDir()
	write := func(name, imapAuth string) string {
		path := filepath.Join(dir, name)
		cfg := "mailboxes:\n  - name: support\n    imap:\n      address: imap.example.com\n      username: support@example.com\n" + imapAuth +
			"    forward: {to: [desk@example.com], from: triage@example.com, smtp: {address: smtp.example.com}}\n"
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	password := write("password.yaml", "      password_file: /run/secrets/imap\n")
	google := write("google.yaml", "      oauth2: {provider: google, flow: refresh_token, client_id: c, refresh_token_file: /rt}\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no flags", []string{"login"}, exitUsage, "usage: mailtriage login --config FILE --mailbox NAME"},
		{"unknown mailbox", []string{"login", "--config", password, "--mailbox", "sales"}, exitUsage, `has no mailbox "sales"`},
		{"nothing to sign in", []string{"login", "--config", password, "--mailbox", "support"}, exitFail, "no oauth2 block with the refresh_token flow"},
		{"google's device flow", []string{"login", "--config", google, "--mailbox", "support"}, exitFail, "flow: service_account"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := dispatch(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.says) {
				t.Errorf("exit %d, stderr %q; want %d saying %q", code, stderr.String(), tc.code, tc.says)
			}
		})
	}
}
