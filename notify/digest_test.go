package notify

import (
	"bytes"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
)

// TestDigest: once per period, the counts by reason, the oldest waiting,
// a line per message (bounded), and a failed send frees the digest for
// the next cycle.
func TestDigest(t *testing.T) {
	w := newWorld(t, Config{Classes: []Class{ClassEncrypted}})
	d, err := NewDigester(DigestConfig{From: "triage@example.com", To: []string{"ops@example.com"}, Folder: "Triage/Review", Period: time.Hour}, w.fw, w.st)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	d.now = func() time.Time { return now }
	var items []DigestItem
	for i := range maxDigestLines + 20 {
		items = append(items, DigestItem{
			From: fmt.Sprintf("Customer %d <c%d@x.example>", i, i), Subject: fmt.Sprintf("Order %d\r\nBcc: x", i),
			Arrived: now.Add(-time.Duration(i) * time.Minute), Reasons: []string{"encrypted"}, Notified: i%2 == 0,
		})
	}
	items = append(items, DigestItem{Arrived: now.Add(-72 * time.Hour), Reasons: []string{"unparseable"}})

	steps := []struct {
		name  string
		fault smtpsink.Fault
		due   bool
		err   bool
	}{
		{"refused", smtpsink.Fault{Reject: smtpsink.StageData, Code: 554, Times: 1}, true, true},
		{"next cycle", smtpsink.Fault{}, true, false},
		{"within the period", smtpsink.Fault{}, false, false},
	}
	for _, st := range steps {
		w.sink.SetFault(st.fault)
		due, err := d.Due(t.Context(), "support")
		if err != nil || due != st.due {
			t.Fatalf("%s: Due = %v, %v; want %v", st.name, due, err, st.due)
		}
		if !due {
			continue
		}
		if err := d.Send(t.Context(), "support", items); (err != nil) != st.err {
			t.Errorf("%s: Send = %v; want error %v", st.name, err, st.err)
		}
	}
	got := w.sink.Messages()
	if len(got) != 1 {
		t.Fatalf("sink got %d digests; want 1", len(got))
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	body := strings.ReplaceAll(string(raw), "\r\n", "\n")
	for _, want := range []string{
		"Waiting: 521 messages; the oldest since 2026-11-29 08:00 UTC (3 days).",
		"  encrypted        520\n",
		"  unparseable      1\n",
		"  sender notified  260\n",
		"  2026-11-29 08:00  (no From)  (no subject)  [unparseable]\n",
		"Customer 519 <c519@x.example>  Order 519 Bcc: x  [encrypted]\n",
		"  … and 21 more\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("digest lacks %q", want)
		}
	}
	if msg.Header.Get("Subject") != "mailtriage digest: 521 waiting in review (support)" || got[0].From != "triage@example.com" {
		t.Errorf("digest Subject %q, envelope from %q", msg.Header.Get("Subject"), got[0].From)
	}
	if empty := string(d.compose("support", nil)); !strings.Contains(empty, "Nothing is waiting.") {
		t.Errorf("empty digest: %q", empty)
	}
}
