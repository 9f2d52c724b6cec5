package credential

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/mailtriage/mailtriage/internal/secret"
)

// runExchange drives client against server until the server is done.
func runExchange(t *testing.T, c sasl.Client, s sasl.Server) error {
	t.Helper()
	_, resp, err := c.Start()
	if err != nil {
		return err
	}
	for i := 0; i < 5; i++ {
		challenge, done, err := s.Next(resp)
		if err != nil || done {
			return err
		}
		if resp, err = c.Next(challenge); err != nil {
			return err
		}
	}
	t.Fatal("SASL exchange did not finish")
	return nil
}

func TestSASLAgainstServers(t *testing.T) {
	ctx := context.Background()
	const user, pw = "support@example.com", "s3cret-pw"
	tests := []struct {
		name   string
		mech   Mechanism
		server func(got *[2]string) sasl.Server
	}{
		{"plain", Plain, func(got *[2]string) sasl.Server {
			return sasl.NewPlainServer(func(_, u, p string) error { *got = [2]string{u, p}; return nil })
		}},
		{"empty means plain", "", func(got *[2]string) sasl.Server {
			return sasl.NewPlainServer(func(_, u, p string) error { *got = [2]string{u, p}; return nil })
		}},
		{"oauthbearer", OAuthBearer, func(got *[2]string) sasl.Server {
			return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
				*got = [2]string{o.Username, o.Token}
				return nil
			})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := Auth{Mechanism: tc.mech, Username: user, Secret: Static(secret.New(pw))}
			c, err := a.SASL(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got [2]string
			if err := runExchange(t, c, tc.server(&got)); err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if got != [2]string{user, pw} {
				t.Errorf("server saw %q, want user and secret", got)
			}
		})
	}
}

func TestXOAuth2InitialResponse(t *testing.T) {
	a := Auth{Mechanism: XOAuth2, Username: "u@example.com", Secret: Static(secret.New("tok123"))}
	c, err := a.SASL(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mech, ir, err := c.Start()
	if err != nil {
		t.Fatal(err)
	}
	if mech != "XOAUTH2" || string(ir) != "user=u@example.com\x01auth=Bearer tok123\x01\x01" {
		t.Errorf("Start() = %q, %q", mech, ir)
	}
	resp, err := c.Next([]byte(`{"status":"401"}`))
	if err != nil || len(resp) != 0 {
		t.Errorf("Next(error challenge) = %q, %v; want empty response", resp, err)
	}
	login := Auth{Mechanism: Login, Username: "u", Secret: Static(secret.New("p"))}
	lc, err := login.SASL(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if mech, _, _ := lc.Start(); mech != "LOGIN" {
		t.Errorf("login mechanism = %q", mech)
	}
	if _, err := (Auth{Mechanism: "kerberos", Secret: Static(secret.New("p"))}).SASL(context.Background()); err == nil {
		t.Error("unknown mechanism accepted")
	}
	if _, err := (Auth{}).SASL(context.Background()); err != ErrNoSecret {
		t.Errorf("no getter: err = %v", err)
	}
}

func TestFileAndEnvGetters(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "imap")
	if err := os.WriteFile(path, []byte("first-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := File(path)
	if s, err := g.Get(ctx); err != nil || s.Reveal() != "first-pw" {
		t.Fatalf("Get = %q, %v", s.Reveal(), err)
	}
	if err := os.WriteFile(path, []byte("rotated-pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, _ := g.Get(ctx); s.Reveal() != "rotated-pw" {
		t.Errorf("rotation not picked up: %q", s.Reveal())
	}
	if err := os.WriteFile(path, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Get(ctx); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: err = %v", err)
	}
	if _, err := File(filepath.Join(dir, "missing")).Get(ctx); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: err = %v, want it to name the file", err)
	}

	t.Setenv("MAILTRIAGE_TEST_PW", "env-pw")
	if s, err := Env("MAILTRIAGE_TEST_PW").Get(ctx); err != nil || s.Reveal() != "env-pw" {
		t.Errorf("Env = %q, %v", s.Reveal(), err)
	}
	if _, err := Env("MAILTRIAGE_TEST_UNSET").Get(ctx); err == nil || !strings.Contains(err.Error(), "MAILTRIAGE_TEST_UNSET") {
		t.Errorf("unset env: err = %v", err)
	}
}

// tokenScript writes a script that prints out and counts its runs in a file.
func tokenScript(t *testing.T, out string, exit int) (argv []string, runs func() int) {
	t.Helper()
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	script := filepath.Join(dir, "token.sh")
	body := "#!/bin/sh\necho run >> " + count + "\necho 'token-on-stderr' >&2\nprintf '%s' '" + out + "'\nexit " + string(rune('0'+exit)) + "\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	return []string{script}, func() int {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "run")
	}
}

func TestCommandGetterCachesUntilExpiry(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		out         string
		wantToken   string
		reuseAfter  time.Duration // still cached this long after the first run
		refreshFrom time.Duration // run again from here
	}{
		{"json expires_in", `{"access_token":"ya29.abc","expires_in":3600,"token_type":"Bearer"}`, "ya29.abc", 57 * time.Minute, 59 * time.Minute},
		{"bare token", "eyJ0eXAi.bare", "eyJ0eXAi.bare", DefaultTokenLifetime - DefaultRefreshMargin - time.Second, DefaultTokenLifetime},
		{"short lived", `{"access_token":"short","expires_in":60}`, "short", -time.Second, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			argv, runs := tokenScript(t, tc.out, 0)
			clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			g := Command(argv).(*commandGetter)
			g.now = func() time.Time { return clock }
			start := clock
			s, err := g.Get(ctx)
			if err != nil || s.Reveal() != tc.wantToken {
				t.Fatalf("Get = %q, %v", s.Reveal(), err)
			}
			if tc.reuseAfter >= 0 {
				clock = start.Add(tc.reuseAfter)
				if _, err := g.Get(ctx); err != nil || runs() != 1 {
					t.Errorf("at +%v: runs = %d, want the cached token (1 run)", tc.reuseAfter, runs())
				}
			}
			clock = start.Add(tc.refreshFrom)
			if _, err := g.Get(ctx); err != nil || runs() != 2 {
				t.Errorf("at +%v: runs = %d, want a refresh (2 runs)", tc.refreshFrom, runs())
			}
		})
	}
}

func TestCommandGetterErrorsHideOutput(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		out  string
		exit int
		want string
	}{
		{"exit status", "leaked-token-1", 3, "exit status 3"},
		{"no access_token", `{"token":"leaked-token-2"}`, 0, "access_token"},
		{"two words", "leaked token-3", 0, "more than one word"},
		{"empty", "", 0, "no token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			argv, _ := tokenScript(t, tc.out, tc.exit)
			_, err := Command(argv).Get(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "leaked") || strings.Contains(err.Error(), "stderr") {
				t.Errorf("error carries command output: %v", err)
			}
		})
	}
	if _, err := Command(nil).Get(ctx); err != ErrEmptyCommand {
		t.Errorf("empty argv: %v", err)
	}
}
