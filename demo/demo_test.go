package demo

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/mailtriage/mailtriage/config"
)

func TestSamplesAreEmbedded(t *testing.T) {
	samples, err := Samples()
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) < 5 {
		t.Fatalf("%d embedded samples, want the bundled mailbox (clean, encrypted, signed, relay, broken)", len(samples))
	}
	for i, s := range samples {
		if len(s.Raw) == 0 {
			t.Errorf("sample %s is empty", s.Name)
		}
		if i > 0 && samples[i-1].Name >= s.Name {
			t.Errorf("samples out of order: %s before %s", samples[i-1].Name, s.Name)
		}
	}
}

// TestEnvWithoutCycle starts the environment, checks that its configuration
// is one config.Load accepts, and that the report of an environment where
// nothing ran shows every sample untouched in INBOX.
func TestEnvWithoutCycle(t *testing.T) {
	dir := t.TempDir()
	env, err := Start(t.Context(), Options{Dir: dir, Schedule: "@every 5s", MetricsListen: "127.0.0.1:9187"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer func() {
		if err := env.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	cfg, err := config.Load(env.ConfigPath)
	if err != nil {
		t.Fatalf("generated config does not load: %v", err)
	}
	if len(cfg.Mailboxes) != 1 {
		t.Fatalf("%d mailboxes, want 1", len(cfg.Mailboxes))
	}
	mb := cfg.Mailboxes[0]
	for _, tc := range []struct{ key, got, want string }{
		{"name", mb.Name, MailboxName},
		{"schedule", mb.Schedule, "@every 5s"},
		{"imap.address", mb.IMAP.Address, env.IMAPAddr},
		{"imap.tls", string(mb.IMAP.TLS), "implicit"},
		{"forward.smtp.address", mb.Forward.SMTP.Address, env.Sink.Addr()},
		{"review_folder", mb.ReviewFolder, ReviewFolder},
		{"metrics.listen", cfg.Metrics.Listen, "127.0.0.1:9187"},
		{"state.url", cfg.State.URL, env.StateURL},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.key, tc.got, tc.want)
		}
	}
	cfgText, err := os.ReadFile(env.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfgText), env.Password) {
		t.Error("the generated config holds the password itself rather than a password_file")
	}

	var out bytes.Buffer
	if err := env.Report(t.Context(), &out, nil); err != nil {
		t.Fatalf("Report: %v", err)
	}
	report := out.String()
	if n := strings.Count(report, "not handled"); n != len(env.Samples) {
		t.Errorf("%d samples reported not handled, want all %d:\n%s", n, len(env.Samples), report)
	}
	for _, want := range []string{fmt.Sprintf("Left in INBOX after forwarding: INBOX (%d)", len(env.Samples)), "received 0 messages", "Next step"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

func TestAddedHeaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		want []string
	}{
		{"redirect headers then the original",
			"X-Mailtriage-Encryption: none\r\nResent-From: a@b\r\nFrom: c@d\r\nX-Mailtriage-Late: no\r\n\r\nbody",
			[]string{"X-Mailtriage-Encryption: none", "Resent-From: a@b"}},
		{"folded value is unfolded",
			"X-Mailtriage-Relay: private;\r\n service=firefox-relay\r\nFrom: c@d\r\n\r\n",
			[]string{"X-Mailtriage-Relay: private; service=firefox-relay"}},
		{"nothing added", "From: c@d\r\n\r\nX-Mailtriage-Encryption: none\r\n", nil},
		{"empty message", "", nil},
	} {
		if got := addedHeaders([]byte(tc.raw)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: addedHeaders = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly ten", 11, "exactly ten"},
		{"a longer subject line", 10, "a longer …"},
		{"folded\r\n  white\tspace", 40, "folded white space"},
		{"Grüße aus München", 8, "Grüße a…"},
	} {
		if got := clip(tc.in, tc.n); got != tc.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
