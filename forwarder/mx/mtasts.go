package mx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MTA-STS policy modes (RFC 8461 §5).
const (
	ModeEnforce = "enforce" // deliver only to matching MX hosts over verified TLS
	ModeTesting = "testing" // report, but deliver as without a policy
	ModeNone    = "none"    // the domain withdrew its policy
)

// maxPolicySize bounds the policy body (RFC 8461 §3.3 suggests 64 KiB).
const maxPolicySize = 64 << 10

// maxMaxAge is the largest max_age a policy may give (RFC 8461 §3.2: one
// year, 31557600 seconds).
const maxMaxAge = 31557600

// Policy is an MTA-STS policy (RFC 8461 §3.2).
type Policy struct {
	Mode   string
	MX     []string // host name patterns; "*.example.net" matches one label
	MaxAge time.Duration
}

// parseRecord reads the id of an _mta-sts TXT record: "v=STSv1; id=...;"
// (RFC 8461 §3.1). ok is false for a record that is not one.
func parseRecord(txt string) (id string, ok bool) {
	fields := strings.Split(txt, ";")
	if strings.TrimSpace(fields[0]) != "v=STSv1" {
		return "", false
	}
	for _, f := range fields[1:] {
		k, v, found := strings.Cut(strings.TrimSpace(f), "=")
		if !found {
			if strings.TrimSpace(f) == "" {
				continue
			}
			return "", false
		}
		if k == "id" {
			if v == "" || len(v) > 32 || strings.IndexFunc(v, func(c rune) bool { return !isAlnum(c) }) >= 0 {
				return "", false
			}
			id = v
		}
	}
	return id, id != ""
}

func isAlnum(c rune) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// parsePolicy reads a policy body: "key: value" lines ending in CRLF or LF;
// version STSv1, a mode, max_age and, unless the mode is none, at least one
// mx; keys it does not know are ignored (RFC 8461 §3.2).
func parsePolicy(body string) (*Policy, error) {
	p := &Policy{}
	var version, maxAge string
	for line := range strings.Lines(body) {
		line = strings.TrimRight(line, "\r\n")
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("policy line %q: want key: value", clip(line))
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "version":
			version = v
		case "mode":
			p.Mode = v
		case "max_age":
			maxAge = v
		case "mx":
			p.MX = append(p.MX, strings.ToLower(strings.TrimSuffix(v, ".")))
		}
	}
	if version != "STSv1" {
		return nil, fmt.Errorf("policy version %q: want STSv1", clip(version))
	}
	switch p.Mode {
	case ModeEnforce, ModeTesting:
		if len(p.MX) == 0 {
			return nil, fmt.Errorf("policy mode %s lists no mx", p.Mode)
		}
	case ModeNone:
	default:
		return nil, fmt.Errorf("policy mode %q: want enforce, testing or none", clip(p.Mode))
	}
	secs, err := strconv.Atoi(maxAge)
	if err != nil || secs < 0 || secs > maxMaxAge || len(maxAge) > 10 {
		return nil, fmt.Errorf("policy max_age %q: want 0 to %d seconds", clip(maxAge), maxMaxAge)
	}
	p.MaxAge = time.Duration(secs) * time.Second
	return p, nil
}

// clip shortens hostile input for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Matches reports whether the MX host name host matches one of the
// policy's mx patterns: equal, or "*." followed by host without its first
// label (RFC 8461 §4.1).
func (p *Policy) Matches(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			if _, parent, found := strings.Cut(host, "."); found && parent == rest {
				return true
			}
		} else if pat == host {
			return true
		}
	}
	return false
}

// cachedPolicy is a policy with the record id it came under and its expiry.
type cachedPolicy struct {
	id      string
	policy  *Policy
	expires time.Time
}

// stsCache holds the latest policy of each domain, in memory: by id, until
// max_age (RFC 8461 §5.1, §10.2 on why the cache defeats a downgrade).
type stsCache struct {
	mu      sync.Mutex
	entries map[string]cachedPolicy
}

func (c *stsCache) get(domain string, now time.Time) (cachedPolicy, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[domain]
	if !ok || !now.Before(e.expires) {
		return cachedPolicy{}, false
	}
	return e, true
}

func (c *stsCache) put(domain string, e cachedPolicy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cachedPolicy{}
	}
	c.entries[domain] = e
}

// errNoPolicy is a domain that publishes no MTA-STS policy.
var errNoPolicy = errors.New("no MTA-STS policy")

// fetchPolicy gets https://mta-sts.<domain>/.well-known/mta-sts.txt with
// client, following no redirect (RFC 8461 §3.3). The certificate is
// checked by client's transport against mta-sts.<domain>.
func fetchPolicy(ctx context.Context, client *http.Client, domain string) (*Policy, error) {
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("mta-sts policy %s: %w", url, err)
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mta-sts policy: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mta-sts policy %s: HTTP status %d, want 200", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("mta-sts policy %s: %w", url, err)
	}
	if len(body) > maxPolicySize {
		return nil, fmt.Errorf("mta-sts policy %s: larger than %d octets", url, maxPolicySize)
	}
	p, err := parsePolicy(string(body))
	if err != nil {
		return nil, fmt.Errorf("mta-sts policy %s: %w", url, err)
	}
	return p, nil
}
