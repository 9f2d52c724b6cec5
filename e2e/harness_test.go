package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
)

// binary is the mailtriage binary TestMain builds once for the package.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mailtriage-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: make build directory: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "mailtriage")
	cmd := exec.Command("go", "build", "-o", binary, "github.com/mailtriage/mailtriage/cmd/mailtriage")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/mailtriage: %v\n", err)
		return 1
	}
	return m.Run()
}

// Names the tests use.
const (
	mailboxName     = "support"
	reviewFolder    = "Triage/Review"
	releaseFolder   = "Triage/Release"
	forwardedFolder = "Triage/Forwarded"
	helpdesk        = "helpdesk@example.test"
	triageFrom      = "triage@example.test"
	runTimeout      = 90 * time.Second
)

// folders are the folders the tests read back.
func folders() []string { return []string{"INBOX", reviewFolder, releaseFolder, forwardedFolder} }

// setup is what varies between harnesses.
type setup struct {
	state        string   // "redis", "redis-auth" (AUTH, password from the environment), "redis-tls" (rediss://, private CA), "redis-cluster" (3 masters with a replica each) or "file"
	imapTLS      string   // "implicit" (Dovecot's IMAPS port) or "starttls" (its IMAP port)
	afterForward string   // seen | move | delete
	hide         []string // capabilities Dovecot does not advertise
	schedule     string   // cron spec; "@every 1s" when empty
	idle         bool     // wake on IMAP IDLE too
	notify       string   // YAML of the mailbox's notify block, "" for none
}

// noUIDPlus reports whether the server hides UIDPLUS, so that moved-out
// originals stay behind marked \Deleted (no UID EXPUNGE, never EXPUNGE).
func (su setup) noUIDPlus() bool { return slices.Contains(su.hide, "UIDPLUS") }

// harness is one private world: Dovecot, a state store, an SMTP sink and a
// config file pointing at them.
type harness struct {
	t       *testing.T
	setup   setup
	dc      *testenv.Dovecot
	redis   *testenv.Redis        // nil with the file store and a cluster
	cluster *testenv.RedisCluster // the "redis-cluster" state's
	sink    *smtpsink.Sink
	dir     string
	config  string
	env     []string // NAME=value for the mailtriage processes
}

// redisPassword protects the "redis-auth" state's Redis.
const redisPassword = "redis-pass-never-logged-Hx4r"

// newHarness starts the servers and writes the config.
func newHarness(t *testing.T, su setup) *harness {
	t.Helper()
	h := &harness{t: t, setup: su, dir: t.TempDir()}
	h.dc = testenv.StartDovecotWith(t, testenv.DovecotOptions{HideCapabilities: su.hide})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sink, err := smtpsink.Start(ctx, smtpsink.Options{})
	if err != nil {
		t.Fatalf("start SMTP sink: %v", err)
	}
	t.Cleanup(func() { sink.Close() })
	h.sink = sink
	stateURL, stateAuth := "file:"+filepath.Join(h.dir, "state.db"), ""
	switch su.state {
	case "redis":
		h.redis = testenv.StartRedis(t)
		stateURL = h.redis.URL
	case "redis-auth":
		// The password comes from the environment, never from the URL.
		h.redis = testenv.StartRedisWithPassword(t, redisPassword)
		stateURL = "redis://" + h.redis.Addr + "/0"
		stateAuth = "  password_env: E2E_REDIS_PASSWORD\n"
		h.env = append(h.env, "E2E_REDIS_PASSWORD="+redisPassword)
	case "redis-tls":
		// A certificate from a private CA, trusted through state.ca_file.
		h.redis = testenv.StartRedisTLS(t)
		stateURL = h.redis.URL
		stateAuth = fmt.Sprintf("  ca_file: %q\n", h.redis.TLS.CAFile)
	case "redis-cluster":
		h.cluster = testenv.StartRedisCluster(t, 3, 1)
		stateURL = h.cluster.URL
	}
	pwFile := filepath.Join(h.dir, "imap-password")
	if err := os.WriteFile(pwFile, []byte(h.dc.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	imapAddr := h.dc.Addr
	if su.imapTLS == "starttls" {
		imapAddr = h.dc.PlainAddr
	}
	schedule := su.schedule
	if schedule == "" {
		schedule = "@every 1s"
	}
	h.config = filepath.Join(h.dir, "mailtriage.yaml")
	conf := fmt.Sprintf(`state:
  url: %q
%slog:
  format: json
  level: info
mailboxes:
  - name: %s
    schedule: %q
    idle: %t
    lease_ttl: 3s
    batch_size: 50
    imap:
      address: %q
      tls: %s
      ca_file: %q
      username: %q
      password_file: %q
    review_folder: %s
    release_folder: %s
    after_forward: %s
    forwarded_folder: %s
    forward:
      to: [%s]
      from: %s
      smtp:
        address: %q
        tls: none
        insecure_plaintext: true
%s`, stateURL, stateAuth, mailboxName, schedule, su.idle, imapAddr, su.imapTLS, h.dc.CAFile, h.dc.User, pwFile, reviewFolder, releaseFolder,
		su.afterForward, forwardedFolder, helpdesk, triageFrom, sink.Addr(), su.notify)
	if err := os.WriteFile(h.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// command returns `mailtriage run --config F args...`, logging to a file of
// the test directory.
func (h *harness) command(ctx context.Context, name string, args ...string) (*exec.Cmd, string) {
	h.t.Helper()
	logPath := filepath.Join(h.dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { logFile.Close() })
	cmd := exec.CommandContext(ctx, binary, append([]string{"run", "--config", h.config}, args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir}, h.env...)
	return cmd, logPath
}

// runOnce runs `mailtriage run --once` and fails the test unless it exits 0.
func (h *harness) runOnce(name string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd, logPath := h.command(ctx, name, "--once")
	start := time.Now()
	if err := cmd.Run(); err != nil {
		h.t.Fatalf("mailtriage run --once (%s): %v\n%s", name, err, tail(logPath))
	}
	h.t.Logf("%s: run --once took %v", name, time.Since(start).Round(time.Millisecond))
	h.noSecretIn(logPath)
}

// noSecretIn fails the test when a log shows the IMAP or Redis password.
func (h *harness) noSecretIn(logPath string) {
	h.t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, pw := range []string{h.dc.Password, redisPassword} {
		if bytes.Contains(b, []byte(pw)) {
			h.t.Errorf("%s shows a password", filepath.Base(logPath))
		}
	}
}

// tail returns the end of a log file for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const limit = 4000
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return string(b)
}

// imapClient logs in to the harness' Dovecot.
func (h *harness) imapClient() *imapclient.Client {
	h.t.Helper()
	return h.dc.Dial(h.t, h.dc.User, h.dc.Password)
}

// seed APPENDs messages to INBOX in order.
func (h *harness) seed(msgs [][]byte) {
	h.t.Helper()
	c := h.imapClient()
	for i, raw := range msgs {
		cmd := c.Append("INBOX", int64(len(raw)), nil)
		if _, err := cmd.Write(raw); err != nil {
			h.t.Fatalf("APPEND message %d: %v", i, err)
		}
		if err := cmd.Close(); err != nil {
			h.t.Fatalf("APPEND message %d: %v", i, err)
		}
		if _, err := cmd.Wait(); err != nil {
			h.t.Fatalf("APPEND message %d: %v", i, err)
		}
	}
	if err := c.Logout().Wait(); err != nil {
		h.t.Fatalf("LOGOUT: %v", err)
	}
}

// stored is one message as the mailbox shows it.
type stored struct {
	Folder string
	UID    imap.UID
	Flags  []string // sorted
	Raw    []byte   // BODY[] as Dovecot serves it (CRLF line ends)
}

func (s stored) has(f imap.Flag) bool { return slices.Contains(s.Flags, string(f)) }

// mailbox reads every message of the folders the tests use, and their
// UIDVALIDITY.
func (h *harness) mailbox() (msgs []stored, validity map[string]uint32) {
	h.t.Helper()
	c := h.imapClient()
	defer c.Logout()
	validity = map[string]uint32{}
	for _, folder := range folders() {
		sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			if folder != "INBOX" {
				continue // not created (yet)
			}
			h.t.Fatalf("EXAMINE %s: %v", folder, err)
		}
		validity[folder] = sel.UIDValidity
		if sel.NumMessages == 0 {
			continue
		}
		body := &imap.FetchItemBodySection{Peek: true}
		bufs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: sel.NumMessages}}, &imap.FetchOptions{
			UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{body},
		}).Collect()
		if err != nil {
			h.t.Fatalf("FETCH %s: %v", folder, err)
		}
		for _, b := range bufs {
			var flags []string
			for _, f := range b.Flags {
				if f != `\Recent` { // a property of the session (RFC 3501), not of the message
					flags = append(flags, string(f))
				}
			}
			sort.Strings(flags)
			msgs = append(msgs, stored{Folder: folder, UID: b.UID, Flags: flags, Raw: b.FindBodySection(body)})
		}
	}
	return msgs, validity
}

// key identifies a message whatever its line ends, and whatever Dovecot
// made of NUL octets (it serves them as 0x80).
func key(raw []byte) [sha256.Size]byte {
	norm := bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	return sha256.Sum256(bytes.ReplaceAll(norm, []byte{0}, []byte{0x80}))
}

// snapshot describes the mailbox and the sink for "nothing changed"
// comparisons; withUIDs says whether UIDs take part.
func (h *harness) snapshot(withUIDs bool) []string {
	h.t.Helper()
	msgs, _ := h.mailbox()
	var out []string
	for _, m := range msgs {
		k := key(m.Raw)
		line := fmt.Sprintf("%s %x %s", m.Folder, k[:8], strings.Join(m.Flags, ","))
		if withUIDs {
			line += fmt.Sprintf(" uid=%d", m.UID)
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return append(out, fmt.Sprintf("sink %d messages", h.sink.Count()))
}

// forwardedBody splits a message the sink received into the header block
// mailtriage put on top and the original below it, which must be one of
// originals (keyed by exact bytes). It returns the original's index, or -1.
func forwardedBody(data []byte, originals map[string]int) (added []string, index int) {
	for orig, i := range originals {
		if bytes.HasSuffix(data, []byte(orig)) {
			prefix := data[:len(data)-len(orig)]
			sc := bufio.NewScanner(bytes.NewReader(prefix))
			sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
			for sc.Scan() {
				added = append(added, sc.Text())
			}
			return added, i
		}
	}
	return nil, -1
}
