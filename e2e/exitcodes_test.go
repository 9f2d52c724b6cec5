package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
)

// `run --once` exits 0 only when every mailbox finished its cycle: a lease
// held by another worker has its own status, 75 (EX_TEMPFAIL), and a WARN
// line naming when that lease ends at the latest; forwarding paused by SMTP
// trouble exits 69 (EX_UNAVAILABLE), with the mail left untouched.
func TestRunOnceExitCodes(t *testing.T) {
	rows := []struct {
		name     string
		arrange  func(t *testing.T, h *harness)
		want     int
		warn     string // a WARN line's message must hold this
		sent     int    // messages the helpdesk gets
		warnAttr string // and the WARN line this attribute
	}{
		{name: "every mailbox finished", arrange: func(*testing.T, *harness) {}, want: 0, sent: 3},
		{
			name: "lease held by a killed worker",
			arrange: func(t *testing.T, h *harness) {
				opt, err := redis.ParseURL(h.redis.URL)
				if err != nil {
					t.Fatal(err)
				}
				rc := redis.NewClient(opt)
				defer rc.Close()
				if err := rc.Set(t.Context(), "mailtriage:{"+mailboxName+"}:lease", "killed-worker-token", 2*time.Minute).Err(); err != nil {
					t.Fatalf("hold the lease: %v", err)
				}
			},
			want: 75, warn: "leased by another worker", warnAttr: "lease_expires_by",
		},
		{
			name:    "SMTP answers 451 to every MAIL",
			arrange: func(_ *testing.T, h *harness) { h.sink.SetFault(smtpsink.Fault{Reject: smtpsink.StageMail, Code: 451}) },
			want:    69, warn: "forwarding paused",
		},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			h := newHarness(t, setup{state: "redis", imapTLS: "implicit", afterForward: "seen"})
			h.seed(cleanMessages(3))
			row.arrange(t, h)
			ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
			defer cancel()
			cmd, logPath := h.command(ctx, "once", "--once")
			err := cmd.Run()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatalf("run --once: %v", err)
			}
			if code != row.want {
				t.Errorf("run --once exited %d, want %d\n%s", code, row.want, tail(logPath))
			}
			if n := h.sink.Count(); n != row.sent {
				t.Errorf("helpdesk received %d messages, want %d", n, row.sent)
			}
			if row.warn != "" {
				line, ok := logLine(t, logPath, "WARN", row.warn)
				if !ok {
					t.Errorf("no WARN line about %q in the log:\n%s", row.warn, tail(logPath))
				} else if row.warnAttr != "" {
					if _, err := time.Parse(time.RFC3339, fmt.Sprint(line[row.warnAttr])); err != nil {
						t.Errorf("WARN line %v: %s is not a time: %v", line, row.warnAttr, err)
					}
				}
			}
			if row.sent == 0 {
				msgs, _ := h.mailbox()
				for _, m := range msgs {
					if m.Folder != "INBOX" || len(m.Flags) != 0 {
						t.Errorf("message touched though nothing was sent: %s %v", m.Folder, m.Flags)
					}
				}
			}
		})
	}
}

// cleanMessages are n small plain messages.
func cleanMessages(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "From: Alice <alice@example.com>\r\nTo: support@example.test\r\n"+
			"Subject: printer %d\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\nMessage-ID: <exit-%d@example.com>\r\n"+
			"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nThe printer is on fire.\r\n", i, i)
	}
	return out
}

// logLine returns the first JSON log line of level whose msg holds msg.
func logLine(t *testing.T, path, level, msg string) (map[string]any, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) != nil {
			continue
		}
		if rec["level"] == level && strings.Contains(fmt.Sprint(rec["msg"]), msg) {
			return rec, true
		}
	}
	return nil, false
}
