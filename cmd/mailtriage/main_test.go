package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/demo"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/store"
)

// The binary under test is built once, into a directory removed at the end.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary builds cmd/mailtriage with a stamped version and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("the go tool is not on PATH: %w", err)
			return
		}
		if buildDir, err = os.MkdirTemp("", "mailtriage-bin-"); err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(buildDir, "mailtriage")
		cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags", "-X main.version=v9.8.7-test -X main.commit=abc1234", "-o", binPath, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build mailtriage: %v", buildErr)
	}
	return binPath
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startDemoEnv starts the demo's IMAP server, SMTP sink and config.
func startDemoEnv(t *testing.T, opt demo.Options) *demo.Env {
	t.Helper()
	opt.Dir = t.TempDir()
	env, err := demo.Start(t.Context(), opt)
	if err != nil {
		t.Fatalf("start demo environment: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Errorf("close demo environment: %v", err)
		}
	})
	return env
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary(t), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("mailtriage version: %v\n%s", err, out)
	}
	for _, want := range []string{"mailtriage v9.8.7-test", "commit abc1234", "go1."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("version output %q lacks %q", out, want)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{nil, exitUsage, "usage: mailtriage COMMAND"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"run"}, exitUsage, "usage: mailtriage run --config FILE"},
		{[]string{"check"}, exitUsage, "usage: mailtriage check --config FILE"},
		{[]string{"scan"}, exitUsage, "usage: mailtriage scan"},
		{[]string{"run", "--config", "/nonexistent/mailtriage.yaml"}, exitFail, "read config"},
	} {
		var stdout, stderr bytes.Buffer
		if code := dispatch(tc.args, &stdout, &stderr); code != tc.code {
			t.Errorf("%q: exit %d, want %d", tc.args, code, tc.code)
		}
		if !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("%q: stderr %q lacks %q", tc.args, stderr.String(), tc.says)
		}
	}
}

// TestRunShutdown runs the worker against the in-process IMAP server, the
// SMTP sink and bbolt, waits until /readyz says the first cycle succeeded, sends
// SIGTERM and checks that it exits 0 within 10 s and released its lease.
func TestRunShutdown(t *testing.T) {
	bin := binary(t)
	metricsAddr := freeAddr(t)
	// An hourly schedule: readiness within seconds shows the first cycle
	// runs at start, not at the first tick.
	env := startDemoEnv(t, demo.Options{Schedule: "@every 1h", MetricsListen: metricsAddr})

	s := startRun(t, env.ConfigPath, "--log-format", "json")
	readyURL := "http://" + metricsAddr + "/readyz"
	s.waitUntil(t, "ready", func() bool { return probe(t.Context(), readyURL) == nil })
	if out, err := exec.Command(bin, "healthcheck", "--url", readyURL).CombinedOutput(); err != nil {
		t.Errorf("healthcheck on a ready worker: %v: %s", err, out)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	var scrape bytes.Buffer
	scrape.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`mailtriage_messages_total{action="forwarded",class="clean",mailbox="demo"}`,
		`mailtriage_messages_total{action="flagged",class="encrypted",mailbox="demo"}`,
		`mailtriage_cycle_duration_seconds_count{mailbox="demo"}`,
		`mailtriage_last_success_timestamp_seconds{mailbox="demo"}`,
	} {
		if !strings.Contains(scrape.String(), want) {
			t.Errorf("/metrics after a cycle lacks %s:\n%s", want, scrape.String())
		}
	}

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("send SIGTERM: %v", err)
	}
	if code, took := s.exitCode(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0\nlogs:\n%s", code, s.logs.String())
	} else {
		t.Logf("exited %s after SIGTERM", took.Round(time.Millisecond))
	}

	st, err := store.Open(t.Context(), env.StateURL, store.Options{})
	if err != nil {
		t.Fatalf("open state after exit: %v", err)
	}
	defer st.Close()
	lease, err := st.AcquireLease(t.Context(), demo.MailboxName, time.Minute)
	if err != nil {
		t.Fatalf("acquire the lease after exit: %v (not released?)", err)
	}
	if err := lease.Release(t.Context()); err != nil {
		t.Errorf("release lease: %v", err)
	}
}

// TestCheck runs `check` against a live demo environment and against dead
// servers: every line present, no secret printed, exit code right. A state
// URL that holds the password (as user name or query option) or turns off
// certificate verification is refused at the config line, against a live
// Redis, without printing the password; the password from
// state.password_env works.
func TestCheck(t *testing.T) {
	bin := binary(t)
	env, cfg := startDemoConfig(t)
	deadIMAP := strings.Replace(string(cfg), env.IMAPAddr, freeAddr(t), 1)
	deadSMTP := strings.Replace(string(cfg), env.Sink.Addr(), freeAddr(t), 1)
	dir := t.TempDir()
	const wrongPassword = "hunter2-not-the-password"
	wrongFile := filepath.Join(dir, "wrong-password")
	if err := os.WriteFile(wrongFile, []byte(wrongPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongPW := strings.Replace(string(cfg), filepath.Join(filepath.Dir(env.ConfigPath), "imap-password"), wrongFile, 1)
	if wrongPW == string(cfg) {
		t.Fatal("demo config names no imap-password file")
	}
	const redisPassword = "redis-secret-Zq81x"
	authed := testenv.StartRedisWithPassword(t, redisPassword)
	tlsRedis := testenv.StartRedisTLS(t) // its CA is in no trust store
	stateLine := "url: \"" + env.StateURL + "\""
	if !strings.Contains(string(cfg), stateLine) {
		t.Fatalf("demo config has no %s line", stateLine)
	}
	state := func(s string) string { return strings.Replace(string(cfg), stateLine, s, 1) }

	noticeRoute := func(addr string) string {
		return string(cfg) + "    notify:\n      from: noreply@example.test\n      smtp:\n        address: " + addr + "\n        tls: none\n        insecure_plaintext: true\n"
	}
	for _, tc := range []struct {
		name    string
		config  string
		locked  bool // a running worker holds the state file
		ok      bool
		fails   string // a fragment of the failing line
		refused bool   // the config is refused: no line after it
	}{
		{"all reachable", string(cfg), false, true, "", false},
		{"state held by a running worker", string(cfg), true, true, "", false},
		{"IMAP server down", deadIMAP, false, false, "imap", false},
		{"SMTP server down", deadSMTP, false, false, "smtp", false},
		{"wrong IMAP password", wrongPW, false, false, "imap login", false},
		{"Redis password from password_env", state("url: \"redis://" + authed.Addr + "/0\"\n  password_env: CHECK_REDIS_PASSWORD"), false, true, "", false},
		{"Redis password as the user name", state("url: \"redis://" + redisPassword + "@" + authed.Addr + "/0\""), false, false, "holds a user name", true},
		{"Redis password as a query option", state("url: \"redis://" + authed.Addr + "/0?password=" + redisPassword + "\""), false, false, "holds a password", true},
		{"Redis password in the userinfo", state("url: \"redis://:" + redisPassword + "@" + authed.Addr + "/0\""), false, false, "holds a password", true},
		{"skip_verify with an untrusted certificate", state("url: \"rediss://" + tlsRedis.Addr + "/0?skip_verify=true\""), false, false, "skip_verify", true},
		{"untrusted Redis certificate", state("url: \"rediss://" + tlsRedis.Addr + "/0\""), false, false, "certificate", false},
		{"notice route reachable", noticeRoute(env.Sink.Addr()), false, true, "", false},
		{"notice route down", noticeRoute(freeAddr(t)), false, false, "notify smtp", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.locked {
				st, err := store.Open(t.Context(), env.StateURL, store.Options{})
				if err != nil {
					t.Fatalf("open state: %v", err)
				}
				defer st.Close()
			}
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			out := runCheck(t, bin, tc.ok, []string{"CHECK_REDIS_PASSWORD=" + redisPassword}, "--config", path)
			for _, secret := range []string{env.Password, wrongPassword, redisPassword} {
				if strings.Contains(string(out), secret) {
					t.Errorf("check printed a password:\n%s", out)
				}
			}
			lines := []string{"config", "store", "imap login", "smtp"}
			if tc.refused {
				lines = lines[:1]
			}
			if tc.ok {
				lines = append(lines, "folder INBOX", "review folder", ", EHLO ")
			}
			if strings.Contains(tc.config, "notify:") {
				lines = append(lines, "notify smtp")
			}
			for _, line := range lines {
				if !strings.Contains(string(out), line) {
					t.Errorf("check output has no %q line:\n%s", line, out)
				}
			}
			if tc.locked && !strings.Contains(string(out), "in use by a running worker") {
				t.Errorf("a locked state file is not reported as in use:\n%s", out)
			}
			if !tc.ok && !strings.Contains(strings.ToLower(failLines(string(out))), tc.fails) {
				t.Errorf("no FAIL line about %s:\n%s", tc.fails, out)
			}
		})
	}
}

// startDemoConfig starts the demo environment and returns it with its
// configuration's text.
func startDemoConfig(t *testing.T) (*demo.Env, []byte) {
	t.Helper()
	env := startDemoEnv(t, demo.Options{})
	cfg, err := os.ReadFile(env.ConfigPath)
	if err != nil {
		t.Fatalf("read demo config: %v", err)
	}
	return env, cfg
}

// runCheck runs `mailtriage check` with args and the extra environment
// variables env, wants exit 0 when ok and a non-zero exit otherwise, and
// returns the output.
func runCheck(t *testing.T, bin string, ok bool, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"check"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case ok && err != nil:
		t.Errorf("check: %v, want exit 0\n%s", err, out)
	case !ok && !errors.As(err, &exitErr):
		t.Errorf("check: %v, want a non-zero exit\n%s", err, out)
	}
	return string(out)
}

// failLines returns the lines of check output that report a failure.
func failLines(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "FAIL") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
