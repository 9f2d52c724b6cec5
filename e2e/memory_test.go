package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Hostile header sizes (issue 11): 16 messages whose header blocks are
// 40 MB each, then 5 ordinary ones, in one batch.
const (
	hugeHeaders     = 16
	hugeHeaderBytes = 40 << 20
	ordinaryAfter   = 5
	// hugePeakRSS bounds the worker's peak resident set: its usual 30-odd
	// MiB plus room, far below the 640 MB of the huge headers.
	hugePeakRSS = 128 << 20
)

// A mix with 40 MB header blocks runs in bounded memory under
// GOMEMLIMIT: the huge ones are flagged $Unparseable with the reason, the
// ordinary ones behind them are forwarded, and the worker's peak RSS stays
// flat. The peak is VmHWM in /proc, sampled every 10 ms while the worker
// runs (the high-water mark of its own address space; rusage's maxrss would
// also count the test process's pages the child shared before exec).
func TestHugeHeadersBoundedMemory(t *testing.T) {
	h := newHarness(t, setup{state: "file", imapTLS: "implicit", afterForward: "seen"})
	filler := bytes.Repeat([]byte("X-Filler: "+strings.Repeat("a", 988)+"\r\n"), hugeHeaderBytes/1000)
	for i := range hugeHeaders {
		var msg bytes.Buffer
		fmt.Fprintf(&msg, "From: Mallory <mallory@example.com>\r\nTo: support@example.test\r\nSubject: huge %d\r\n"+
			"Message-ID: <huge-%d@example.com>\r\n", i, i)
		msg.Write(filler)
		msg.WriteString("Content-Type: text/plain\r\n\r\nhello\r\n")
		h.dc.Deliver(h.dc.User, "INBOX", msg.Bytes())
	}
	h.dc.Deliver(h.dc.User, "INBOX", cleanMessages(ordinaryAfter)...)

	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd, logPath := h.command(ctx, "huge", "--once")
	cmd.Env = append(cmd.Env, "GOMEMLIMIT=128MiB")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var hwm int64
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-tick.C:
			if v := vmHWM(cmd.Process.Pid); v > hwm {
				hwm = v
			}
		}
	}
	t.Logf("peak RSS (VmHWM): %.1f MiB", float64(hwm)/(1<<20))
	if err != nil {
		t.Fatalf("run --once: %v (peak RSS %.1f MiB)\n%s", err, float64(hwm)/(1<<20), tail(logPath))
	}
	if hwm == 0 {
		t.Fatalf("could not read VmHWM of the worker from /proc")
	}
	if hwm > hugePeakRSS {
		t.Errorf("peak RSS %.1f MiB, want at most %d MiB", float64(hwm)/(1<<20), hugePeakRSS>>20)
	}
	if n := h.sink.Count(); n != ordinaryAfter {
		t.Errorf("helpdesk received %d messages, want the %d ordinary ones", n, ordinaryAfter)
	}
	c := h.imapClient()
	defer c.Logout()
	sel, err := c.Select(reviewFolder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("EXAMINE %s: %v", reviewFolder, err)
	}
	if sel.NumMessages != hugeHeaders {
		t.Fatalf("review folder holds %d messages, want the %d huge ones", sel.NumMessages, hugeHeaders)
	}
	bufs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: sel.NumMessages}}, &imap.FetchOptions{Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bufs {
		if !hasFlagString(b.Flags, "$Unparseable") {
			t.Errorf("flagged huge message %d has %v, want $Unparseable", b.SeqNum, b.Flags)
		}
	}
	if _, ok := logLine(t, logPath, "INFO", "flagged"); !ok {
		t.Errorf("no flagged line in the log")
	}
	if b, _ := os.ReadFile(logPath); !bytes.Contains(b, []byte("header block exceeds")) {
		t.Errorf("the log never gives the reason (header block exceeds ...):\n%s", tail(logPath))
	}
}

// vmHWM is the peak resident set of process pid in bytes (VmHWM in
// /proc/PID/status), 0 when it cannot be read.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

func hasFlagString(flags []imap.Flag, f string) bool {
	for _, g := range flags {
		if strings.EqualFold(string(g), f) {
			return true
		}
	}
	return false
}
