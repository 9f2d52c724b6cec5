package notify

import (
	"bytes"
	"context"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
	"github.com/mailtriage/mailtriage/store"
)

// world is a Notifier over the real forwarder, an SMTP sink and a bbolt
// store.
type world struct {
	sink *smtpsink.Sink
	fw   *forwarder.Forwarder
	st   store.Store
	n    *Notifier
}

func newWorld(t *testing.T, cfg Config) *world {
	t.Helper()
	sink, err := smtpsink.Start(t.Context(), smtpsink.Options{})
	if err != nil {
		t.Fatalf("start sink: %v", err)
	}
	t.Cleanup(func() { sink.Close() })
	fw, err := forwarder.New(forwarder.Config{
		Address: sink.Addr(), TLS: tlsmode.None, InsecurePlaintext: true,
		From: "triage@example.com", To: []string{"desk@example.com"}, Hostname: "mailtriage.test", Timeout: 5 * time.Second,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), "file:"+filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if cfg.From == "" {
		cfg.From = "support-noreply@example.com"
	}
	cfg.Hostname = "mailtriage.test"
	n, err := New(cfg, fw, st)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return &world{sink: sink, fw: fw, st: st, n: n}
}

func encrypted(id, from string) Message {
	return Message{
		Class:  ClassEncrypted,
		Header: Keep(header("From: "+from, "Date: Tue, 24 Nov 2026 09:01:00 +0000")),
		Verdict: analyzer.Verdict{
			MessageID: id, Subject: "Grüße, \r\nBcc: evil@x.example", From: from,
			References: []string{"root@x.example", "bad id", "mid@x.example"},
			Encryption: analyzer.EncryptionSMIMEEncrypted, Action: analyzer.ActionFlag,
		},
	}
}

// TestNotifyCompose: the notice's header fields and its HTML alternative,
// with hostile subject data kept inside one encoded header line.
func TestNotifyCompose(t *testing.T) {
	htmlFile := filepath.Join(t.TempDir(), "notice.html")
	if err := os.WriteFile(htmlFile, []byte("<p>{{.Subject}}: {{.Reason}}</p><p>{{.Operator}}</p>"), 0o600); err != nil {
		t.Fatal(err)
	}
	tpl, err := LoadTemplates("", htmlFile)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, Config{Classes: []Class{ClassEncrypted}, Templates: tpl, Operator: "Use <our> upload page."})
	res, err := w.n.Notify(t.Context(), "support", encrypted("a1@x.example", "Alice <alice@x.example>"))
	if err != nil || !res.Sent {
		t.Fatalf("Notify = %+v, %v; want sent", res, err)
	}
	got := w.sink.Messages()
	if len(got) != 1 || got[0].From != "" || len(got[0].To) != 1 || got[0].To[0] != "alice@x.example" {
		t.Fatalf("sink got %+v; want one message from <> to alice", got)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(h.Get("Subject"))
	for _, c := range []struct{ field, got, want string }{
		{"Subject", subject, "Auto: Grüße, Bcc: evil@x.example"},
		{"Bcc", h.Get("Bcc"), ""},
		{"In-Reply-To", h.Get("In-Reply-To"), "<a1@x.example>"},
		{"References", h.Get("References"), "<root@x.example> <mid@x.example> <a1@x.example>"},
		{"Auto-Submitted", h.Get("Auto-Submitted"), "auto-replied"},
		{"From", h.Get("From"), "support-noreply@example.com"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q; want %q", c.field, c.got, c.want)
		}
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q, %v", h.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		var b bytes.Buffer
		b.ReadFrom(p)
		types = append(types, p.Header.Get("Content-Type"))
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") && !strings.Contains(b.String(), "Use &lt;our&gt; upload page.") {
			t.Errorf("HTML part does not escape the operator line: %q", b.String())
		}
	}
	if strings.Join(types, ",") != "text/plain; charset=utf-8,text/html; charset=utf-8" {
		t.Errorf("parts %v; want text then HTML", types)
	}
}

// TestNotifyRateLimit: one notice per sender and period, counted per
// normalised address; a class that is not configured sends nothing; a
// refused notice frees the sender for the next try.
func TestNotifyRateLimit(t *testing.T) {
	w := newWorld(t, Config{Classes: []Class{ClassEncrypted}, Period: time.Hour})
	steps := []struct {
		name     string
		msg      Message
		fault    smtpsink.Fault
		wantSent bool
		wantRule string
		wantErr  bool
	}{
		{"first", encrypted("1@x.example", "alice@x.example"), smtpsink.Fault{}, true, "", false},
		{"same sender, other case", encrypted("2@x.example", "Alice <ALICE@X.example>"), smtpsink.Fault{}, false, "rate-limit", false},
		{"unparseable is not configured", Message{Class: ClassUnparseable, Header: Keep(header("From: bob@x.example"))}, smtpsink.Fault{}, false, "", false},
		{"refused", encrypted("3@x.example", "carol@x.example"), smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 550, Times: 1}, false, "", true},
		{"after the refusal", encrypted("4@x.example", "carol@x.example"), smtpsink.Fault{}, true, "", false},
	}
	for _, st := range steps {
		w.sink.SetFault(st.fault)
		res, err := w.n.Notify(t.Context(), "support", st.msg)
		rule := ""
		if res.Rule != nil {
			rule = res.Rule.Name
		}
		if res.Sent != st.wantSent || rule != st.wantRule || (err != nil) != st.wantErr {
			t.Errorf("%s: Notify = sent %v, rule %q, err %v; want sent %v, rule %q, error %v", st.name, res.Sent, rule, err, st.wantSent, st.wantRule, st.wantErr)
		}
	}
	if n := len(w.sink.Messages()); n != 2 {
		t.Errorf("sink got %d notices; want 2", n)
	}
	ok, err := w.st.ClaimNotice(context.Background(), "support", SenderKey(" Alice@X.Example "), time.Hour)
	if err != nil || ok {
		t.Errorf("the store's claim on alice's key = %v, %v; want held", ok, err)
	}
}

// TestNew: a bad From, class or template is refused at start.
func TestNew(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.txt")
	if err := os.WriteFile(bad, []byte("{{.Nope}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTemplates(bad, ""); err == nil {
		t.Error("LoadTemplates of a template naming an unknown field = nil error")
	}
	if _, err := LoadTemplates(filepath.Join(t.TempDir(), "missing"), ""); err == nil {
		t.Error("LoadTemplates of a missing file = nil error")
	}
	for _, cfg := range []Config{{From: "Desk <d@example.com>"}, {From: "d@example.com", Classes: []Class{"spam"}}} {
		if _, err := New(cfg, nil, nil); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
}
