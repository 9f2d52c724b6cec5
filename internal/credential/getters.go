package credential

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/mailtriage/mailtriage/internal/secret"
)

// Static returns a Getter that always hands out s (tests, the demo).
func Static(s secret.Secret) Getter { return staticGetter{s} }

type staticGetter struct{ s secret.Secret }

func (g staticGetter) Get(context.Context) (secret.Secret, error) { return g.s, nil }

// File returns a Getter that reads the secret from path at every Get, so a
// rotated password or a token refreshed by a sidecar is picked up. Trailing
// white space (the newline editors add) is removed.
func File(path string) Getter { return fileGetter{path} }

type fileGetter struct{ path string }

func (g fileGetter) Get(context.Context) (secret.Secret, error) {
	b, err := os.ReadFile(g.path)
	if err != nil {
		// The os error names the path and the reason, never the content.
		return secret.Secret{}, fmt.Errorf("read secret file: %w", err)
	}
	v := strings.TrimRight(string(b), " \t\r\n")
	if v == "" {
		return secret.Secret{}, fmt.Errorf("secret file %s is empty", g.path)
	}
	return secret.New(v), nil
}

// Env returns a Getter that reads the secret from the environment variable
// name at every Get.
func Env(name string) Getter { return envGetter{name} }

type envGetter struct{ name string }

func (g envGetter) Get(context.Context) (secret.Secret, error) {
	v, ok := os.LookupEnv(g.name)
	if !ok || v == "" {
		return secret.Secret{}, fmt.Errorf("environment variable %s is not set", g.name)
	}
	return secret.New(v), nil
}

// Command returns a Getter that runs argv (no shell) to obtain an OAuth 2.0
// access token. The command prints either the bare token, or a JSON object
// with "access_token" and "expires_in" (seconds, as an OAuth token endpoint
// answers, RFC 6749 §5.1) or "expiry" (RFC 3339). The token is cached and the
// command run again DefaultRefreshMargin before it expires; a token with no
// stated lifetime is kept for DefaultTokenLifetime.
func Command(argv []string) Getter {
	return &commandGetter{argv: argv, now: time.Now, timeout: commandTimeout}
}

const (
	// DefaultTokenLifetime is how long a token without a stated expiry is used.
	DefaultTokenLifetime = 5 * time.Minute
	// DefaultRefreshMargin is how long before its expiry a token is refreshed.
	DefaultRefreshMargin = 2 * time.Minute
	commandTimeout       = 30 * time.Second
	maxCommandOutput     = 64 << 10
)

// ErrEmptyCommand is returned by a Command getter with no argv.
var ErrEmptyCommand = errors.New("token_command is empty")

type commandGetter struct {
	argv    []string
	now     func() time.Time
	timeout time.Duration

	mu      sync.Mutex
	token   secret.Secret
	refresh time.Time // when to run the command again
}

func (g *commandGetter) Get(ctx context.Context) (secret.Secret, error) {
	if len(g.argv) == 0 {
		return secret.Secret{}, ErrEmptyCommand
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if !g.token.IsZero() && now.Before(g.refresh) {
		return g.token, nil
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	var stdout limitedBuffer
	cmd := exec.CommandContext(ctx, g.argv[0], g.argv[1:]...)
	cmd.Stdout = &stdout
	// stderr is dropped: a failing helper may print the token or a refresh
	// secret there, and errors must not carry it.
	if err := cmd.Run(); err != nil {
		return secret.Secret{}, fmt.Errorf("token_command %s: %w", g.argv[0], err)
	}
	if stdout.overflow {
		return secret.Secret{}, fmt.Errorf("token_command %s: output larger than %d bytes", g.argv[0], maxCommandOutput)
	}
	tok, lifetime, err := parseToken(stdout.Bytes(), now)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("token_command %s: %w", g.argv[0], err)
	}
	refresh := now.Add(lifetime - DefaultRefreshMargin)
	if lifetime <= DefaultRefreshMargin {
		// A short-lived token is used once, then fetched again.
		refresh = now
	}
	g.token, g.refresh = tok, refresh
	return tok, nil
}

// parseToken reads a command's output: a bare token or a JSON object.
func parseToken(out []byte, now time.Time) (secret.Secret, time.Duration, error) {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return secret.Secret{}, 0, errors.New("printed no token")
	}
	if out[0] != '{' {
		if bytes.ContainsAny(out, " \t\r\n") {
			return secret.Secret{}, 0, errors.New("printed more than one word and no JSON object")
		}
		return secret.New(string(out)), DefaultTokenLifetime, nil
	}
	var v struct {
		AccessToken string    `json:"access_token"`
		ExpiresIn   *float64  `json:"expires_in"`
		Expiry      time.Time `json:"expiry"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		// json errors quote at most a type name and offset, not the value.
		return secret.Secret{}, 0, fmt.Errorf("parse JSON output: %w", err)
	}
	if v.AccessToken == "" {
		return secret.Secret{}, 0, errors.New(`JSON output has no "access_token"`)
	}
	lifetime := DefaultTokenLifetime
	switch {
	case v.ExpiresIn != nil:
		lifetime = time.Duration(*v.ExpiresIn * float64(time.Second))
	case !v.Expiry.IsZero():
		lifetime = v.Expiry.Sub(now)
	}
	return secret.New(v.AccessToken), lifetime, nil
}

// limitedBuffer keeps at most maxCommandOutput bytes and notes an overflow.
type limitedBuffer struct {
	bytes.Buffer
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxCommandOutput - b.Len(); len(p) > room {
		b.overflow = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}
