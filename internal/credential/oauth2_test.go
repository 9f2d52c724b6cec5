package credential_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/secret"
	"github.com/mailtriage/mailtriage/internal/testenv"
)

const (
	testClientID     = "mailtriage-test-client"
	testClientSecret = "client-secret-never-logged"
	testLogin        = "mailtriage login --config mailtriage.yaml --mailbox support"
)

// fakeClock is a clock tests move by hand, shared by the client and the
// authorization server.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// refreshSetup is a refresh token flow against a local server, its
// refresh token stored in a file.
func refreshSetup(t *testing.T, opt testenv.OAuth2Options, clock *fakeClock) (*testenv.OAuth2Server, *credential.OAuth2Getter, string) {
	t.Helper()
	opt.ClientID, opt.ClientSecret = testClientID, testClientSecret
	if opt.Clock == nil {
		opt.Clock = clock.Now
	}
	srv := testenv.StartOAuth2(t, opt)
	path := filepath.Join(t.TempDir(), "refresh-token")
	if err := credential.WriteRefreshToken(path, srv.IssueRefreshToken()); err != nil {
		t.Fatal(err)
	}
	g := credential.NewOAuth2(credential.OAuth2{
		Mailbox: "support", LoginCommand: testLogin,
		Flow: credential.FlowRefreshToken, ClientID: testClientID, ClientSecret: credential.Static(secret.New(testClientSecret)),
		TokenURL: srv.TokenURL, DeviceAuthURL: srv.DeviceAuthURL,
		Scopes: []string{"https://outlook.office365.com/IMAP.AccessAsUser.All", "offline_access"}, RefreshTokenFile: path,
		Clock: clock.Now,
	})
	return srv, g, path
}

// A token is reused until credential.DefaultRefreshMargin before its expiry, then
// refreshed; a rotated refresh token is written back (0600) and used next.
func TestOAuth2RefreshAndRotation(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name     string
		rotate   bool
		lifetime time.Duration
	}{
		{"fixed refresh token, 1 h tokens", false, time.Hour},
		{"rotated refresh token, 1 h tokens", true, time.Hour},
		{"rotated refresh token, 5 min tokens", true, 5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			srv, g, path := refreshSetup(t, testenv.OAuth2Options{Rotate: tc.rotate, Lifetime: tc.lifetime}, clock)
			before, _ := os.ReadFile(path)
			first, err := g.Get(ctx)
			if err != nil {
				t.Fatalf("first Get: %v", err)
			}
			if !srv.Valid(first.Reveal()) {
				t.Fatal("the server does not know the first token")
			}
			clock.Advance(tc.lifetime - credential.DefaultRefreshMargin - time.Second)
			if again, err := g.Get(ctx); err != nil || again.Reveal() != first.Reveal() || srv.Grants(testenv.GrantRefreshToken) != 1 {
				t.Fatalf("before the margin: token changed=%v, err %v, grants %d; want the cached token", again.Reveal() != first.Reveal(), err, srv.Grants(testenv.GrantRefreshToken))
			}
			clock.Advance(2 * time.Second)
			second, err := g.Get(ctx)
			if err != nil {
				t.Fatalf("Get within the margin: %v", err)
			}
			if second.Reveal() == first.Reveal() || !srv.Valid(second.Reveal()) || srv.Grants(testenv.GrantRefreshToken) != 2 {
				t.Fatalf("within the margin: want a new valid token from a second refresh, got grants %d", srv.Grants(testenv.GrantRefreshToken))
			}
			if got, want := srv.Scope(testenv.GrantRefreshToken), "https://outlook.office365.com/IMAP.AccessAsUser.All offline_access"; got != want {
				t.Errorf("refresh asked for scope %q, want %q", got, want)
			}
			after, _ := os.ReadFile(path)
			if rotated := !bytes.Equal(before, after); rotated != tc.rotate {
				t.Errorf("refresh token file rewritten = %v, want %v", rotated, tc.rotate)
			}
			st, err := os.Stat(path)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("refresh token file mode %v (%v), want 0600", st.Mode().Perm(), err)
			}
			if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
				t.Errorf("directory holds %d files, want the token file alone (no temporary left)", len(entries))
			}
		})
	}
}

// A refused refresh token (revoked) or a missing one fails with an error
// naming the mailbox and the login command, and never the token.
func TestOAuth2RevokedOrMissingRefreshToken(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		spoil func(srv *testenv.OAuth2Server, path string)
		is    error
	}{
		{"revoked at the server", func(srv *testenv.OAuth2Server, _ string) { srv.Revoke() }, credential.ErrRefreshRefused},
		{"file removed", func(_ *testenv.OAuth2Server, path string) { os.Remove(path) }, credential.ErrNoRefreshToken},
		{"file emptied", func(_ *testenv.OAuth2Server, path string) { os.WriteFile(path, []byte("\n"), 0o600) }, credential.ErrNoRefreshToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, g, path := refreshSetup(t, testenv.OAuth2Options{}, newFakeClock())
			stored, _ := os.ReadFile(path)
			tc.spoil(srv, path)
			_, err := g.Get(ctx)
			if !errors.Is(err, tc.is) {
				t.Fatalf("Get: %v, want %v", err, tc.is)
			}
			for _, want := range []string{"mailbox support", testLogin} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if len(bytes.TrimSpace(stored)) > 0 && strings.Contains(err.Error(), string(bytes.TrimSpace(stored))) || strings.Contains(err.Error(), testClientSecret) {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

// Clock skew: this host measures a token's life with its own clock from
// expires_in, so only a drift between its clock and the server's after the
// token was issued matters (a suspended VM, an NTP step). A drift smaller
// than the margin still finds the cached token valid at the server; a
// token a server refuses anyway is dropped with Invalidate and the next
// Get fetches a fresh one.
func TestOAuth2ClockSkew(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name      string
		drift     time.Duration // server clock minus ours, from after the token was issued
		wantValid bool          // the cached token, used just before our margin
	}{
		{"server drifts 90 s ahead", 90 * time.Second, true},
		{"server drifts 10 min behind", -10 * time.Minute, true},
		{"server drifts 5 min ahead", 5 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			var mu sync.Mutex
			var drift time.Duration
			server := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock.Now().Add(drift) }
			srv, g, _ := refreshSetup(t, testenv.OAuth2Options{Clock: server}, clock)
			tok, err := g.Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			drift = tc.drift
			mu.Unlock()
			clock.Advance(time.Hour - credential.DefaultRefreshMargin - time.Second)
			cached, err := g.Get(ctx)
			if err != nil || cached.Reveal() != tok.Reveal() {
				t.Fatalf("want the cached token, err %v", err)
			}
			if srv.Valid(cached.Reveal()) != tc.wantValid {
				t.Fatalf("server takes the cached token = %v, want %v", !tc.wantValid, tc.wantValid)
			}
			if tc.wantValid {
				return
			}
			g.Invalidate(cached)
			fresh, err := g.Get(ctx)
			if err != nil || fresh.Reveal() == cached.Reveal() || !srv.Valid(fresh.Reveal()) {
				t.Fatalf("after Invalidate: want a fresh valid token, err %v", err)
			}
			g.Invalidate(cached) // a stale token no longer drops the fresh one
			if again, _ := g.Get(ctx); again.Reveal() != fresh.Reveal() {
				t.Error("invalidating an old token dropped the current one")
			}
		})
	}
}

// Client credentials (Microsoft app-only) and a Google service account
// (JWT bearer with the user as subject), and their refusals.
func TestOAuth2AppFlows(t *testing.T) {
	ctx := t.Context()
	srv := testenv.StartOAuth2(t, testenv.OAuth2Options{ClientID: testClientID, ClientSecret: testClientSecret})
	keyFile := srv.ServiceAccountKey(t, t.TempDir(), "mailtriage@project.iam.gserviceaccount.com")
	for _, tc := range []struct {
		name    string
		o       credential.OAuth2
		grant   string
		is      error
		wantErr string
	}{
		{name: "client credentials", grant: testenv.GrantClientCredentials,
			o: credential.OAuth2{Flow: credential.FlowClientCredentials, ClientID: testClientID, ClientSecret: credential.Static(secret.New(testClientSecret)), TokenURL: srv.TokenURL, Scopes: []string{"https://outlook.office365.com/.default"}}},
		{name: "client credentials, wrong secret", is: credential.ErrTokenEndpoint, wantErr: "invalid_client",
			o: credential.OAuth2{Flow: credential.FlowClientCredentials, ClientID: testClientID, ClientSecret: credential.Static(secret.New("wrong-secret-xyz")), TokenURL: srv.TokenURL}},
		{name: "service account", grant: testenv.GrantJWTBearer,
			o: credential.OAuth2{Flow: credential.FlowServiceAccount, ServiceAccountFile: keyFile, Subject: "support@example.com", Scopes: []string{"https://mail.google.com/"}}},
		{name: "service account, not a key file", wantErr: "not a Google service account key",
			o: credential.OAuth2{Flow: credential.FlowServiceAccount, ServiceAccountFile: writeFile(t, `{"type":"authorized_user"}`), Subject: "support@example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Mailbox = "support"
			tok, err := credential.NewOAuth2(tc.o).Get(ctx)
			if tc.grant != "" {
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				if !srv.Valid(tok.Reveal()) {
					t.Fatal("the server does not know the token")
				}
				return
			}
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Get: %v, want %v saying %q", err, tc.is, tc.wantErr)
			}
			if strings.Contains(err.Error(), "wrong-secret-xyz") || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
	if got := srv.Subjects(); len(got) != 1 || got[0] != "support@example.com" {
		t.Errorf("JWT subjects %q, want the mailbox user", got)
	}
}

// Login runs the device flow (RFC 8628): it prints the code and the URL,
// polls past authorization_pending, stores the refresh token (0600), and
// Get then works from it.
func TestOAuth2DeviceLogin(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	srv := testenv.StartOAuth2(t, testenv.OAuth2Options{ClientID: testClientID})
	path := filepath.Join(t.TempDir(), "refresh-token")
	g := credential.NewOAuth2(credential.OAuth2{Mailbox: "support", Flow: credential.FlowRefreshToken, ClientID: testClientID,
		TokenURL: srv.TokenURL, DeviceAuthURL: srv.DeviceAuthURL, RefreshTokenFile: path})
	var out bytes.Buffer
	if err := g.Login(ctx, &out); err != nil {
		t.Fatalf("Login: %v", err)
	}
	for _, want := range []string{"WDJB-MJHT", srv.URL + "/device", path} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("login output %q does not show %q", out.String(), want)
		}
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("refresh token file: %v, %v", st, err)
	}
	rt, _ := os.ReadFile(path)
	if strings.Contains(out.String(), strings.TrimSpace(string(rt))) {
		t.Error("login output shows the refresh token")
	}
	tok, err := g.Get(ctx)
	if err != nil || !srv.Valid(tok.Reveal()) {
		t.Fatalf("Get after login: %v", err)
	}
	if srv.Grants(testenv.GrantDeviceCode) != 1 || srv.Grants(testenv.GrantRefreshToken) != 1 {
		t.Errorf("grants: device %d, refresh %d; want 1 and 1", srv.Grants(testenv.GrantDeviceCode), srv.Grants(testenv.GrantRefreshToken))
	}
	if err := credential.NewOAuth2(credential.OAuth2{Flow: credential.FlowClientCredentials}).Login(ctx, &out); err == nil {
		t.Error("Login of a client credentials flow succeeded")
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
