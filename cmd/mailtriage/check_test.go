package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/demo"
	"github.com/mailtriage/mailtriage/internal/testenv"
)

// TestCheckStateURL: `check` against a live Redis refuses a state URL that
// holds the password (as user name or query option) or turns off
// certificate verification, and prints no password; the password from
// state.password_env works.
func TestCheckStateURL(t *testing.T) {
	bin := binary(t)
	env := startDemoEnv(t, demo.Options{})
	cfg, err := os.ReadFile(env.ConfigPath)
	if err != nil {
		t.Fatalf("read demo config: %v", err)
	}
	const password = "redis-secret-Zq81x"
	authed := testenv.StartRedisWithPassword(t, password)
	tlsRedis := testenv.StartRedisTLS(t) // its CA is in no trust store
	stateLine := "url: \"" + env.StateURL + "\""
	if !strings.Contains(string(cfg), stateLine) {
		t.Fatalf("demo config has no %s line", stateLine)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		state string // replaces the url line of the state section
		ok    bool
		fails string // a fragment of the failing line
	}{
		{"password from password_env", "url: \"redis://" + authed.Addr + "/0\"\n  password_env: CHECK_REDIS_PASSWORD", true, ""},
		{"password as the user name", "url: \"redis://" + password + "@" + authed.Addr + "/0\"", false, "holds a user name"},
		{"password as a query option", "url: \"redis://" + authed.Addr + "/0?password=" + password + "\"", false, "holds a password"},
		{"password in the userinfo", "url: \"redis://:" + password + "@" + authed.Addr + "/0\"", false, "holds a password"},
		{"skip_verify with an untrusted certificate", "url: \"rediss://" + tlsRedis.Addr + "/0?skip_verify=true\"", false, "skip_verify"},
		{"untrusted certificate", "url: \"rediss://" + tlsRedis.Addr + "/0\"", false, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(strings.Replace(string(cfg), stateLine, tc.state, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "check", "--config", path)
			cmd.Env = append(os.Environ(), "CHECK_REDIS_PASSWORD="+password)
			out, err := cmd.CombinedOutput()
			var exitErr *exec.ExitError
			switch {
			case tc.ok && err != nil:
				t.Errorf("check: %v, want exit 0\n%s", err, out)
			case !tc.ok && !errors.As(err, &exitErr):
				t.Errorf("check: %v, want a non-zero exit\n%s", err, out)
			}
			if strings.Contains(string(out), password) {
				t.Errorf("check printed the Redis password:\n%s", out)
			}
			if tc.ok && !strings.Contains(string(out), "ok    store") {
				t.Errorf("no ok store line:\n%s", out)
			}
			if !tc.ok && !strings.Contains(failLines(string(out)), tc.fails) {
				t.Errorf("no FAIL line saying %q:\n%s", tc.fails, out)
			}
		})
	}
}
