package main

import (
	"bytes"
	"errors"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/demo"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
)

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// started is a `mailtriage run` child process.
type started struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been waited for
	err  error         // its exit status, once done is closed
	logs *syncBuffer
}

// startRun starts `mailtriage run --config path` and kills it if the test
// ends first.
func startRun(t *testing.T, path string, extra ...string) *started {
	t.Helper()
	s := &started{done: make(chan struct{}), logs: &syncBuffer{}}
	s.cmd = exec.Command(binary(t), append([]string{"run", "--config", path}, extra...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start mailtriage run: %v", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
	return s
}

// exitCode waits up to limit for the process and returns its exit code.
func (s *started) exitCode(t *testing.T, limit time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case <-s.done:
		var ee *exec.ExitError
		switch {
		case s.err == nil:
			return 0, time.Since(start)
		case errors.As(s.err, &ee):
			return ee.ExitCode(), time.Since(start)
		default:
			t.Fatalf("wait for mailtriage run: %v", s.err)
		}
	case <-time.After(limit):
		t.Fatalf("mailtriage run still running %s after the signal\nlogs:\n%s", limit, s.logs.String())
	}
	return -1, 0
}

// waitUntil waits up to 20 s for cond, failing early if the worker exits.
func (s *started) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within 20 s\nlogs:\n%s", what, s.logs.String())
		}
		select {
		case <-s.done:
			t.Fatalf("worker exited early: %v\nlogs:\n%s", s.err, s.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestSignalFinishesMessageInHand stops the worker in the middle of a slow
// cycle: it must exit 0 within 10 s, having finished the messages in
// flight, and a later run must forward the rest without sending any
// message twice.
func TestSignalFinishesMessageInHand(t *testing.T) {
	// More messages than fit in flight (3 sessions of 16), so that some
	// are left for the second run. The sink answers MAIL, RCPT and DATA
	// 100 ms late, one after the other on each connection: a session's 16
	// in flight are answered within 16 × 3 × 100 ms = 4.8 s, inside the
	// stop's 8 s grace (poller.DefaultStopGrace). Past the grace, what is
	// still in flight is the duplicate window of a crash, which the crash
	// test covers.
	env := startDemoEnv(t, demo.Options{Schedule: "@every 1s", Repeat: 8})
	env.Sink.SetFault(smtpsink.Fault{Delay: 100 * time.Millisecond})
	s := startRun(t, env.ConfigPath)
	s.waitUntil(t, "forwarding", func() bool { return env.Sink.Count() > 0 })
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	code, took := s.exitCode(t, 10*time.Second)
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0\nlogs:\n%s", code, s.logs.String())
	}
	before := env.Sink.Count()
	t.Logf("stopped %s after SIGTERM with %d of the messages forwarded", took.Round(time.Millisecond), before)

	env.Sink.SetFault(smtpsink.Fault{})
	again := startRun(t, env.ConfigPath, "--once")
	if code, _ := again.exitCode(t, 30*time.Second); code != 0 {
		t.Fatalf("second run --once: exit %d\nlogs:\n%s", code, again.logs.String())
	}
	seen := make(map[string]int)
	for _, m := range env.Sink.Messages() {
		seen[messageID(t, m.Data)]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %s forwarded %d times", id, n)
		}
	}
	if env.Sink.Count() <= before {
		t.Errorf("the second run forwarded nothing more (%d before, %d after)", before, env.Sink.Count())
	}
}

// TestSecondSignalExitsAtOnce signals twice during a slow cycle: the second
// signal ends the process at once with 128+SIGTERM.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	env := startDemoEnv(t, demo.Options{Schedule: "@every 1s"})
	env.Sink.SetFault(smtpsink.Fault{Delay: 2 * time.Second})
	s := startRun(t, env.ConfigPath)
	s.waitUntil(t, "connected to SMTP", func() bool { return env.Sink.Connections() > 0 })
	for range 2 {
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, took := s.exitCode(t, time.Second)
	if code != 143 {
		t.Fatalf("exit code %d after two SIGTERMs, want 143\nlogs:\n%s", code, s.logs.String())
	}
	t.Logf("exited %s after the second SIGTERM", took.Round(time.Millisecond))
}
