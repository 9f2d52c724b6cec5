package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/demo"
)

// TestDemoCommand runs `mailtriage demo` as a user would and checks that the
// report names every sample and each part of the story.
func TestDemoCommand(t *testing.T) {
	samples, err := demo.Samples()
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) == 0 {
		t.Fatal("no embedded demo samples")
	}
	var stdout, stderr bytes.Buffer
	start := time.Now()
	if code := dispatch([]string{"demo"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("demo took %s, want seconds", d)
	}
	out := stdout.String()
	for _, s := range samples {
		if !strings.Contains(out, strings.TrimSuffix(s.Name, ".eml")) {
			t.Errorf("demo output does not mention sample %s", s.Name)
		}
	}
	for _, tc := range []struct{ part, says string }{
		{"the verdict table", "ENCRYPTION"},
		{"the review folder", demo.ReviewFolder},
		{"the keywords on flagged mail", "$Encrypted \\Flagged"},
		{"the keywords on forwarded mail", "$Forwarded \\Seen"},
		{"what the helpdesk received", "received"},
		{"the annotation headers", "X-Mailtriage-Encryption"},
		{"the redirect headers", "Resent-From"},
		{"the next step", "mailtriage check"},
	} {
		if !strings.Contains(out, tc.says) {
			t.Errorf("demo output lacks %s (%q)", tc.part, tc.says)
		}
	}
	if strings.Contains(out, "not handled") {
		t.Error("demo left a sample unhandled")
	}
	if t.Failed() {
		t.Logf("demo output:\n%s\nstderr:\n%s", out, stderr.String())
	}
}

// TestDemoForwardsExactlyTheClean runs the demo's cycle and checks that the
// SMTP sink received every sample the analyzer calls forward, and no other.
func TestDemoForwardsExactlyTheClean(t *testing.T) {
	env := startDemoEnv(t, demo.Options{})
	want := make(map[string]bool)
	an := analyzer.New(nil)
	for _, s := range env.Samples {
		m, err := analyzer.FromRaw(bytes.NewReader(s.Raw))
		if err != nil {
			t.Fatalf("read %s: %v", s.Name, err)
		}
		v := an.Classify(m, analyzer.DefaultPolicy())
		if v.Action == analyzer.ActionForward {
			want[messageID(t, s.Raw)] = true
		}
	}
	if len(want) == 0 || len(want) == len(env.Samples) {
		t.Fatalf("demo samples should mix clean and flagged mail; %d of %d are clean", len(want), len(env.Samples))
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	reports, err := demoRunOnce(io.Discard)(ctx, env.ConfigPath)
	if err != nil {
		t.Fatalf("demo cycle: %v", err)
	}
	if len(reports) != 1 || reports[0].Counts.Seen != len(env.Samples) {
		t.Errorf("reports %+v, want one mailbox that saw %d messages", reports, len(env.Samples))
	}
	got := make(map[string]int)
	for _, m := range env.Sink.Messages() {
		got[messageID(t, m.Data)]++
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("clean message %s received %d times, want once", id, got[id])
		}
	}
	for id, n := range got {
		if !want[id] {
			t.Errorf("message %s was forwarded %d times but is not clean", id, n)
		}
	}

	var report bytes.Buffer
	if err := env.Report(ctx, &report, reports); err != nil {
		t.Fatalf("report: %v", err)
	}
	if n := strings.Count(report.String(), "forwarded"); n < len(want) {
		t.Errorf("report says forwarded %d times, want at least %d:\n%s", n, len(want), report.String())
	}
}

// messageID returns the Message-ID field of raw, or its Subject when it has
// none.
func messageID(t *testing.T, raw []byte) string {
	t.Helper()
	hdr, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
	if id := strings.TrimSpace(hdr.Get("Message-Id")); id != "" {
		return id
	}
	return "subject:" + hdr.Get("Subject")
}
