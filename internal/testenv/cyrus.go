package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Cyrus timings and names.
const (
	cyrusStartTimeout = 15 * time.Second
	cyrusStopTimeout  = 10 * time.Second
	cyrusPortAttempts = 5
	// CyrusUser logs in to every Cyrus harness. The harness checks no
	// password (sasl_pwcheck_method: alwaystrue): it listens on loopback
	// only and lives for one test.
	CyrusUser     = "triage"
	CyrusPassword = "cyrus-test-password"
	// CyrusInstall is the command that unpacks Cyrus for the harness.
	CyrusInstall = "scripts/cyrus.sh"
)

// CyrusOptions shape a private Cyrus.
type CyrusOptions struct {
	// UpstreamNamespace is Cyrus' own default, altnamespace: yes and
	// unixhierarchysep: yes (personal folders beside INBOX, "/" as the
	// separator). False is Debian's imapd.conf: altnamespace: no and
	// unixhierarchysep: no, personal folders under "INBOX." with "." as
	// the separator.
	UpstreamNamespace bool
	// HideCapabilities are left out of what Cyrus advertises
	// (suppress_capabilities): "MOVE", "UIDPLUS", ...
	HideCapabilities []string
}

// Cyrus is a private Cyrus IMAP 3.6 server started for one test from
// Debian's packages unpacked by scripts/cyrus.sh (cyrus-imapd conflicts
// with dovecot-imapd, so it is not installed): plain IMAP on a free
// 127.0.0.1 port, its configuration, spool and sockets in a directory of
// its own, the master and its children in one process group.
type Cyrus struct {
	Addr           string // host:port, plain IMAP (tls: none with insecure_plaintext)
	User, Password string

	t    testing.TB
	opt  CyrusOptions
	root string // the unpacked packages
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// CyrusRoot is where scripts/cyrus.sh unpacks Cyrus: $MAILTRIAGE_CYRUS_DIR,
// or .cache/cyrus at the top of the repository.
func CyrusRoot() string {
	if d := os.Getenv("MAILTRIAGE_CYRUS_DIR"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", ".cache", "cyrus")
}

// StartCyrus starts Cyrus and stops it when the test ends. It fails the
// test, naming the command to run, when Cyrus is not unpacked.
func StartCyrus(t testing.TB, opt CyrusOptions) *Cyrus {
	t.Helper()
	root := CyrusRoot()
	if _, err := os.Stat(filepath.Join(root, "usr/lib/cyrus/bin/master")); err != nil {
		t.Fatalf("testenv: Cyrus IMAP is not unpacked in %s: run %s (apt-get download of Debian's cyrus-imapd and its libraries, dpkg -x; no install): %v", root, CyrusInstall, err)
	}
	// A short directory of our own: Cyrus' UNIX sockets live under it.
	dir, err := os.MkdirTemp("", "cyrus-")
	if err != nil {
		t.Fatalf("testenv: make Cyrus directory: %v", err)
	}
	c := &Cyrus{User: CyrusUser, Password: CyrusPassword, t: t, opt: opt, root: root, dir: dir}
	t.Cleanup(func() {
		c.stop()
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testenv: remove Cyrus directory: %v", err)
		}
	})
	uid, gid, account, err := mailAccount()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for _, sub := range []string{"conf", "conf/socket", "spool"} {
		p := filepath.Join(dir, sub)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil { // MkdirTemp made it 0700
		t.Fatalf("testenv: %v", err)
	}
	var lastErr error
	for range cyrusPortAttempts {
		if c.port, err = freePort(); err != nil {
			t.Fatalf("testenv: pick a port for Cyrus: %v", err)
		}
		if err := c.writeConfig(account); err != nil {
			t.Fatalf("testenv: write Cyrus config: %v", err)
		}
		if lastErr = c.start(); lastErr == nil {
			c.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port))
			return c
		}
	}
	t.Fatalf("testenv: start Cyrus: %v\n%s", lastErr, c.LogTail())
	return nil
}

// writeConfig writes imapd.conf and cyrus.conf; no system file is read.
func (c *Cyrus) writeConfig(account string) error {
	bin := filepath.Join(c.root, "usr/lib/cyrus/bin")
	conf := filepath.Join(c.dir, "imapd.conf")
	ns := "altnamespace: no\nunixhierarchysep: no\n"
	if c.opt.UpstreamNamespace {
		ns = "altnamespace: yes\nunixhierarchysep: yes\n"
	}
	var hide string
	if len(c.opt.HideCapabilities) > 0 {
		hide = "suppress_capabilities: " + strings.Join(c.opt.HideCapabilities, " ") + "\n"
	}
	imapd := fmt.Sprintf(`# Written by internal/testenv for one test.
configdirectory: %[1]s/conf
partition-default: %[1]s/spool
servername: localhost
cyrus_user: %[2]s
cyrus_group: %[2]s
admins: cyrus
sasl_pwcheck_method: alwaystrue
sasl_mech_list: PLAIN
allowplaintext: yes
autocreate_quota: 0
idlesocket: %[1]s/conf/socket/idle
notifysocket: %[1]s/conf/socket/notify
lmtpsocket: %[1]s/conf/socket/lmtp
syslog_prefix: mailtriage-test-cyrus
%[3]s%[4]s`, c.dir, account, ns, hide)
	master := fmt.Sprintf(`START {
  recover cmd="%[1]s/ctl_cyrusdb -C %[2]s -r"
}
SERVICES {
  imap cmd="%[1]s/imapd -C %[2]s" listen="127.0.0.1:%[3]d" prefork=0
}
EVENTS {
}
`, bin, conf, c.port)
	if err := os.WriteFile(conf, []byte(imapd), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.dir, "cyrus.conf"), []byte(master), 0o644)
}

// start runs the master in the foreground, in its own process group, with
// the unpacked libraries, and waits until the port greets.
func (c *Cyrus) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	libs, _ := filepath.Glob(filepath.Join(c.root, "usr/lib/*-linux-gnu"))
	more, _ := filepath.Glob(filepath.Join(c.root, "lib/*-linux-gnu"))
	cmd := exec.Command(filepath.Join(c.root, "usr/lib/cyrus/bin/master"),
		"-C", filepath.Join(c.dir, "imapd.conf"), "-M", filepath.Join(c.dir, "cyrus.conf"),
		"-p", filepath.Join(c.dir, "master.pid"), "-D")
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH=" + strings.Join(append(libs, more...), ":")}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port))
	done, err := startGroup(cmd, filepath.Join(c.dir, "master.out"), cyrusStartTimeout, func() error { return greets(addr, nil) })
	if err != nil {
		return fmt.Errorf("cyrus on %s: %w", addr, err)
	}
	c.cmd, c.done = cmd, done
	return nil
}

// stop terminates the master and every process of its group, and fails
// the test if one is left.
func (c *Cyrus) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	pid := c.cmd.Process.Pid
	emptied := stopGroup(pid, c.done, cyrusStopTimeout)
	c.cmd, c.done = nil, nil
	if !emptied {
		c.t.Errorf("testenv: Cyrus processes of group %d were still running after the master exited", pid)
	}
}

// LogTail returns the end of what the master printed, for failure
// messages (Cyrus logs the rest to syslog).
func (c *Cyrus) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "master.out"))
	const limit = 3000
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return strings.TrimSpace(string(b))
}
