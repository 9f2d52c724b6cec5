package testenv

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// Dovecot timings and limits.
const (
	dovecotBin          = "/usr/sbin/dovecot"
	dovecotStartTimeout = 15 * time.Second
	dovecotStopTimeout  = 10 * time.Second
	dovecotPortAttempts = 5
	dovecotDialTimeout  = 5 * time.Second
	// DovecotUser and DovecotPassword are the account every harness has.
	DovecotUser     = "triage@example.test"
	DovecotPassword = "dovecot-test-password"
)

// Dovecot is a private Dovecot 2.3 IMAP server started for one test: IMAPS
// and IMAP with STARTTLS on free 127.0.0.1 ports, a
// certificate from a throw-away CA, Maildir storage under a temporary
// directory, a passwd-file with DovecotUser, and "/" as the hierarchy
// separator (so "Triage/Review" is a folder inside "Triage").
type Dovecot struct {
	// Addr is the IMAPS (implicit TLS) host:port.
	Addr string
	// PlainAddr is the IMAP host:port, with STARTTLS. Loopback is in
	// login_trusted_networks, so a plaintext LOGIN works there too, for
	// tests of tls: none with insecure_plaintext.
	PlainAddr string
	// User and Password log in to Addr and PlainAddr.
	User, Password string
	// CAFile is the PEM file of the CA that signed the server certificate.
	CAFile string
	// RootCAs holds that CA only.
	RootCAs *x509.CertPool

	t         testing.TB
	opt       DovecotOptions
	dir       string // everything: config, run, state, homes, log
	imapsPort int
	imapPort  int

	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{} // closed when the master has exited
	delivered int           // messages written by Deliver, for unique names
}

// DovecotOptions change the harness' server.
type DovecotOptions struct {
	// HideCapabilities are left out of the CAPABILITY list Dovecot
	// advertises after login ("MOVE", "UIDPLUS", "IDLE", ...). The commands
	// still work; a client that follows the advertisement, as it must,
	// takes its fallback path. The list hidden from is Dovecot 2.3.19's.
	HideCapabilities []string
	// NamespacePrefix and Separator shape the personal namespace: "" and
	// "/" by default; "INBOX." and "." are Cyrus' and Courier's.
	NamespacePrefix, Separator string
	// SpecialUse marks mailboxes with RFC 6154 attributes (name in the
	// namespace, without its prefix -> "\Junk"); they are created at
	// login and Dovecot then advertises SPECIAL-USE.
	SpecialUse map[string]string
}

// dovecotCapabilities is what Dovecot 2.3.19 advertises after login with
// this configuration, in its order.
const dovecotCapabilities = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY " +
	"THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT " +
	"CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES " +
	"WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE " +
	"SAVEDATE LITERAL+ NOTIFY"

// StartDovecot starts Dovecot and stops it when the test ends, checking
// that none of its processes are left. It fails the test when Debian's
// dovecot-imapd is not installed.
func StartDovecot(t testing.TB) *Dovecot {
	t.Helper()
	return StartDovecotWith(t, DovecotOptions{})
}

// StartDovecotWith is StartDovecot with options.
func StartDovecotWith(t testing.TB, opt DovecotOptions) *Dovecot {
	t.Helper()
	if _, err := os.Stat(dovecotBin); err != nil {
		t.Fatalf("testenv: %s not found (install the Debian package dovecot-imapd): %v", dovecotBin, err)
	}
	// A short directory of our own rather than t.TempDir(): Dovecot's UNIX
	// sockets live under base_dir and their paths must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "dovecot-")
	if err != nil {
		t.Fatalf("testenv: make Dovecot directory: %v", err)
	}
	d := &Dovecot{User: DovecotUser, Password: DovecotPassword, t: t, dir: dir, opt: opt}
	t.Cleanup(func() {
		d.Stop()
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testenv: remove Dovecot directory: %v", err)
		}
	})
	if err := d.prepare(); err != nil {
		t.Fatalf("testenv: prepare Dovecot: %v", err)
	}
	cert := NewTLSCert(t, dir)
	d.CAFile, d.RootCAs = cert.CAFile, cert.RootCAs
	d.AddUser(d.User, d.Password)
	var lastErr error
	for range dovecotPortAttempts {
		if d.imapsPort, err = freePort(); err == nil {
			d.imapPort, err = freePort()
		}
		if err != nil {
			t.Fatalf("testenv: pick ports for Dovecot: %v", err)
		}
		if d.imapsPort == d.imapPort {
			continue
		}
		if err := d.writeConfig(cert); err != nil {
			t.Fatalf("testenv: write Dovecot config: %v", err)
		}
		if lastErr = d.start(); lastErr == nil {
			d.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(d.imapsPort))
			d.PlainAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(d.imapPort))
			return d
		}
	}
	t.Fatalf("testenv: start Dovecot: %v", lastErr)
	return nil
}

// mailAccount returns the uid and gid mail is stored as: Debian's "mail"
// account when running as root (Dovecot refuses uid 0 for mail), else the
// current user.
func mailAccount() (uid, gid int, name string, err error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return 0, 0, "", fmt.Errorf("look up the current user: %w", err)
		}
		return os.Getuid(), os.Getgid(), u.Username, nil
	}
	u, err := user.Lookup("mail")
	if err != nil {
		return 0, 0, "", fmt.Errorf("look up the mail account: %w", err)
	}
	uid, err = strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, "", fmt.Errorf("uid of mail: %w", err)
	}
	gid, err = strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, "", fmt.Errorf("gid of mail: %w", err)
	}
	return uid, gid, u.Username, nil
}

// prepare makes the directory tree reachable by the mail account.
func (d *Dovecot) prepare() error {
	uid, gid, _, err := mailAccount()
	if err != nil {
		return err
	}
	if err := os.Chmod(d.dir, 0o755); err != nil { // MkdirTemp made it 0700
		return err
	}
	home := filepath.Join(d.dir, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		return err
	}
	return os.Chown(home, uid, gid)
}

// writeConfig writes dovecot.conf for the current ports. No system
// configuration is included.
func (d *Dovecot) writeConfig(cert *TLSCert) error {
	uid, gid, name, err := mailAccount()
	if err != nil {
		return err
	}
	var extra string
	if len(d.opt.HideCapabilities) > 0 {
		caps := strings.Fields(dovecotCapabilities)
		for _, hide := range d.opt.HideCapabilities {
			caps = slices.DeleteFunc(caps, func(c string) bool { return strings.EqualFold(c, hide) })
		}
		extra = "imap_capability = " + strings.Join(caps, " ") + "\n"
	}
	if os.Geteuid() != 0 {
		// Running without root: Dovecot's own processes and sockets are
		// ours, and no process can chroot.
		group, err := user.LookupGroupId(strconv.Itoa(gid))
		if err != nil {
			return fmt.Errorf("look up group %d: %w", gid, err)
		}
		extra += fmt.Sprintf(`default_internal_user = %[1]s
default_internal_group = %[2]s
default_login_user = %[1]s
service imap-login {
  chroot =
}
service anvil {
  chroot =
}
service auth {
  user = %[1]s
}
`, name, group.Name)
	}
	sep := d.opt.Separator
	if sep == "" {
		sep = "/"
	}
	var special string
	for _, name := range slices.Sorted(maps.Keys(d.opt.SpecialUse)) {
		special += fmt.Sprintf("  mailbox %q {\n    auto = create\n    special_use = %s\n  }\n", name, d.opt.SpecialUse[name])
	}
	conf := fmt.Sprintf(`# Written by internal/testenv for one test. No system configuration is read.
base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = mailtriage-test-%[2]d
log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
login_trusted_networks = 127.0.0.0/8
ssl = required
ssl_cert = <%[3]s
ssl_key = <%[4]s
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = static
  args = uid=%[5]d gid=%[6]d home=%[1]s/home/%%u
}
first_valid_uid = %[5]d
first_valid_gid = %[6]d
mail_location = maildir:~/Maildir
verbose_proctitle = yes
namespace inbox {
  inbox = yes
  prefix = %[9]s
  separator = %[10]s
%[11]s}
default_process_limit = 300
default_client_limit = 3000
protocol imap {
  mail_max_userip_connections = 1000
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[7]d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %[2]d
    ssl = yes
  }
}
%[8]s`, d.dir, d.imapsPort, cert.CertFile, cert.KeyFile, uid, gid, d.imapPort, extra, d.opt.NamespacePrefix, sep, special)
	return os.WriteFile(filepath.Join(d.dir, "dovecot.conf"), []byte(conf), 0o644)
}

// start runs the master in the foreground, in its own process group, and
// waits until both ports greet.
func (d *Dovecot) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil {
		return fmt.Errorf("dovecot in %s already running", d.dir)
	}
	cmd := exec.Command(dovecotBin, "-F", "-c", filepath.Join(d.dir, "dovecot.conf"))
	cmd.Dir = d.dir
	done, err := startGroup(cmd, filepath.Join(d.dir, "master.out"), dovecotStartTimeout, func() error {
		err := d.greets(net.JoinHostPort("127.0.0.1", strconv.Itoa(d.imapsPort)), true)
		if err == nil {
			err = d.greets(net.JoinHostPort("127.0.0.1", strconv.Itoa(d.imapPort)), false)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("dovecot: %w; log: %s", err, d.LogTail())
	}
	d.cmd, d.done = cmd, done
	return nil
}

// greets dials addr (over TLS, verifying the certificate, when useTLS) and
// reads the "* OK" greeting.
func (d *Dovecot) greets(addr string, useTLS bool) error {
	var tlsConfig *tls.Config
	if useTLS {
		tlsConfig = &tls.Config{RootCAs: d.RootCAs, ServerName: "127.0.0.1"}
	}
	return greets(addr, tlsConfig)
}

// greets dials an IMAP server the harness started (over TLS when
// tlsConfig is set) and reads its "* OK" greeting.
func greets(addr string, tlsConfig *tls.Config) error {
	conn, err := dialProbe(addr, tlsConfig)
	if err != nil {
		return err
	}
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read greeting from %s: %w", addr, err)
	}
	if !strings.HasPrefix(line, "* OK") {
		return fmt.Errorf("greeting from %s is %q", addr, strings.TrimSpace(line))
	}
	return nil
}

// Stop terminates Dovecot and every process of its group, and fails the
// test if one is left. It does nothing when Dovecot is not running.
func (d *Dovecot) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return
	}
	pid := d.cmd.Process.Pid
	// The whole group: the master alone takes a second to exit and leaves
	// its helpers (log, config, anvil) to wind down for another two.
	emptied := stopGroup(pid, d.done, dovecotStopTimeout)
	d.cmd, d.done = nil, nil
	if !emptied {
		d.t.Errorf("testenv: Dovecot processes of group %d were still running after the master exited", pid)
	}
}

// killGroup waits up to three seconds for every process of the group to
// exit, signalling it again with SIGTERM now and then (a child forked just
// after the first signal missed it), then kills what is left. It reports
// whether the group emptied without SIGKILL.
func killGroup(pgid int) bool {
	deadline := time.Now().Add(3 * time.Second)
	for tick := 0; time.Now().Before(deadline); tick++ {
		if groupAlive(pgid) == 0 {
			return true
		}
		if tick%10 == 9 {
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return false
}

// groupAlive counts the processes of a process group that are not zombies
// (an exited orphan stays a zombie until PID 1 reaps it, which under some
// container inits takes seconds).
func groupAlive(pgid int) int {
	return len(groupProcesses(pgid))
}

// groupProcesses returns the command lines of the live (not zombie)
// processes of a process group, from /proc.
func groupProcesses(pgid int) []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		if pg, err := strconv.Atoi(fields[2]); err != nil || pg != pgid {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " ")))
	}
	return out
}

// WaitIdle waits until n sessions of user are in IMAP IDLE (Dovecot shows
// the command in the process title), and fails the test after timeout.
func (d *Dovecot) WaitIdle(user string, n int, timeout time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d.mu.Lock()
		var procs []string
		if d.cmd != nil {
			procs = groupProcesses(d.cmd.Process.Pid)
		}
		d.mu.Unlock()
		idle := 0
		for _, p := range procs {
			if strings.Contains(p, "["+user+" ") && strings.HasSuffix(p, " IDLE]") {
				idle++
			}
		}
		if idle >= n {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("testenv: %d of %d sessions of %s in IDLE after %v; processes: %q", idle, n, user, timeout, procs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart stops Dovecot and starts it again on the same ports, with the
// same mail.
func (d *Dovecot) Restart() {
	d.t.Helper()
	d.Stop()
	if err := d.start(); err != nil {
		d.t.Fatalf("testenv: restart Dovecot: %v", err)
	}
}

// AddUser adds an account (or changes its password). Dovecot re-reads the
// passwd-file when it changes, so this works while it runs.
func (d *Dovecot) AddUser(name, password string) {
	d.t.Helper()
	d.AddUsers([]string{name}, password)
}

// AddUsers adds accounts that share one password, in one write, for tests
// with many mailboxes.
func (d *Dovecot) AddUsers(names []string, password string) {
	d.t.Helper()
	users := make(map[string]string, len(names))
	for _, name := range names {
		if name == "" || strings.ContainsAny(name+password, ":\n") {
			d.t.Fatalf("testenv: Dovecot user %q or its password is empty or holds ':' or a newline", name)
		}
		users[name] = password
	}
	path := filepath.Join(d.dir, "passwd")
	d.mu.Lock()
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		d.mu.Unlock()
		d.t.Fatalf("testenv: read passwd-file: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(old)), "\n") {
		name, _, _ := strings.Cut(l, ":")
		if _, replaced := users[name]; l != "" && !replaced {
			lines = append(lines, l)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(users)) {
		lines = append(lines, name+":{PLAIN}"+users[name])
	}
	// Write then rename, so that Dovecot never reads half a file.
	tmp := path + ".new"
	err = os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	running := d.cmd != nil
	d.mu.Unlock()
	if err != nil {
		d.t.Fatalf("testenv: write passwd-file: %v", err)
	}
	if running {
		// Dovecot's auth process stats the file at most once per second of
		// its clock: wait for the next second so that the next login sees it.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	}
}

// Deliver writes messages straight into a folder's Maildir, as a local
// delivery agent would (tmp/, then rename into new/), creating the folder
// when needed; much faster than APPEND for seeding big mailboxes. The file
// names sort in delivery order, and Dovecot gives UIDs in that order.
func (d *Dovecot) Deliver(user, folder string, msgs ...[]byte) {
	d.t.Helper()
	uid, gid, _, err := mailAccount()
	if err != nil {
		d.t.Fatalf("testenv: deliver: %v", err)
	}
	dir := d.FolderPath(user, folder)
	for _, p := range []string{filepath.Dir(d.MaildirPath(user)), d.MaildirPath(user), dir,
		filepath.Join(dir, "tmp"), filepath.Join(dir, "new"), filepath.Join(dir, "cur")} {
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			d.t.Fatalf("testenv: deliver to %s: %v", folder, err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			d.t.Fatalf("testenv: deliver to %s: %v", folder, err)
		}
	}
	if dir != d.MaildirPath(user) {
		// Maildir++ marks a folder directory with this file.
		marker := filepath.Join(dir, "maildirfolder")
		if err := os.WriteFile(marker, nil, 0o600); err != nil || os.Chown(marker, uid, gid) != nil {
			d.t.Fatalf("testenv: deliver to %s: mark the folder: %v", folder, err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, raw := range msgs {
		d.delivered++
		name := fmt.Sprintf("%d.M%09dP%d.testenv,S=%d", time.Now().Unix(), d.delivered, os.Getpid(), len(raw))
		tmp := filepath.Join(dir, "tmp", name)
		if err := os.WriteFile(tmp, raw, 0o600); err != nil {
			d.t.Fatalf("testenv: deliver to %s: %v", folder, err)
		}
		if err := os.Chown(tmp, uid, gid); err != nil {
			d.t.Fatalf("testenv: deliver to %s: %v", folder, err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
			d.t.Fatalf("testenv: deliver to %s: %v", folder, err)
		}
	}
}

// MaildirPath is the Maildir of user (created at the user's first login).
func (d *Dovecot) MaildirPath(user string) string {
	return filepath.Join(d.dir, "home", user, "Maildir")
}

// FolderPath is the Maildir++ directory of a folder: the Maildir itself for
// INBOX, Maildir/.Triage.Review for "Triage/Review".
func (d *Dovecot) FolderPath(user, folder string) string {
	if strings.EqualFold(folder, "INBOX") {
		return d.MaildirPath(user)
	}
	return filepath.Join(d.MaildirPath(user), "."+strings.ReplaceAll(folder, "/", "."))
}

// LogTail returns the end of Dovecot's log, for failure messages.
func (d *Dovecot) LogTail() string {
	var b []byte
	for _, name := range []string{"master.out", "dovecot.log"} {
		data, err := os.ReadFile(filepath.Join(d.dir, name))
		if err == nil {
			b = append(b, data...)
		}
	}
	const limit = 3000
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return strings.TrimSpace(string(b))
}

// ResetUIDValidity makes Dovecot give a folder a new UIDVALIDITY and
// renumber its messages from 1, keeping the messages, their flags and
// keywords: it deletes the folder's dovecot-uidlist and index files and the
// mailbox list index, which Dovecot 2.3 rebuilds at the next access with a
// UIDVALIDITY above every one it handed out before (dovecot-uidvalidity).
// No session may have the folder selected meanwhile.
func (d *Dovecot) ResetUIDValidity(user, folder string) {
	d.t.Helper()
	dir := d.FolderPath(user, folder)
	if _, err := os.Stat(filepath.Join(dir, "dovecot-uidlist")); err != nil {
		d.t.Fatalf("testenv: reset UIDVALIDITY of %s: %v", folder, err)
	}
	var victims []string
	for _, pattern := range []string{
		filepath.Join(dir, "dovecot-uidlist"),
		filepath.Join(dir, "dovecot.index*"),
		filepath.Join(d.MaildirPath(user), "dovecot.list.index*"),
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			d.t.Fatalf("testenv: reset UIDVALIDITY of %s: %v", folder, err)
		}
		victims = append(victims, m...)
	}
	for _, v := range victims {
		if err := os.Remove(v); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.t.Fatalf("testenv: reset UIDVALIDITY of %s: %v", folder, err)
		}
	}
}

// Dial logs in over IMAPS as user, verifying the server certificate against
// RootCAs, and logs out when the test ends.
func (d *Dovecot) Dial(t testing.TB, user, password string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(d.Addr, &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: d.RootCAs, MinVersion: tls.VersionTLS12},
		Dialer:    &net.Dialer{Timeout: dovecotDialTimeout},
	})
	if err != nil {
		t.Fatalf("testenv: dial Dovecot at %s: %v", d.Addr, err)
	}
	t.Cleanup(func() {
		_ = c.Logout().Wait() // the server may be gone already
		_ = c.Close()
	})
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("testenv: log in to Dovecot as %s: %v; log: %s", user, err, d.LogTail())
	}
	return c
}
