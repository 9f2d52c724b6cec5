package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/redis/go-redis/v9"
)

// corpusMessage is one file of testdata/corpus with its label.
type corpusMessage struct {
	File       string
	Raw        []byte
	Encryption string // labels.tsv: none, smime-encrypted, ..., unparseable
	Action     string // labels.tsv: forward | flag (default policy)
}

// keyword is the review keyword a flagged corpus message must carry.
func (m corpusMessage) keyword() imap.Flag {
	if m.Encryption == "unparseable" {
		return "$Unparseable"
	}
	return "$Encrypted"
}

// loadCorpus reads testdata/corpus/labels.tsv and the files it names.
func loadCorpus(t *testing.T) []corpusMessage {
	t.Helper()
	dir := filepath.Join("..", "testdata", "corpus")
	f, err := os.Open(filepath.Join(dir, "labels.tsv"))
	if err != nil {
		t.Fatalf("open corpus labels: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var cols map[string]int
	var out []corpusMessage
	seen := map[[32]byte]string{}
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if cols == nil {
			cols = map[string]int{}
			for i, name := range fields {
				cols[name] = i
			}
			for _, need := range []string{"file", "encryption", "action"} {
				if _, ok := cols[need]; !ok {
					t.Fatalf("labels.tsv has no %s column", need)
				}
			}
			continue
		}
		m := corpusMessage{File: fields[cols["file"]], Encryption: fields[cols["encryption"]], Action: fields[cols["action"]]}
		if m.Raw, err = os.ReadFile(filepath.Join(dir, m.File)); err != nil {
			t.Fatalf("read corpus message: %v", err)
		}
		if other, dup := seen[key(m.Raw)]; dup {
			t.Fatalf("corpus files %s and %s are the same message", other, m.File)
		}
		seen[key(m.Raw)] = m.File
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read corpus labels: %v", err)
	}
	if len(out) < 20 {
		t.Fatalf("corpus has %d labelled messages; want the whole corpus", len(out))
	}
	return out
}

func raws(corpus []corpusMessage) [][]byte {
	out := make([][]byte, len(corpus))
	for i, m := range corpus {
		out[i] = m.Raw
	}
	return out
}

// served is a message as Dovecot serves what was APPENDed: CRLF line ends
// and NUL octets as 0x80.
func served(raw []byte) []byte {
	b := bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
	return bytes.ReplaceAll(b, []byte{0}, []byte{0x80})
}

// cleanFolder is where forwarded mail ends per after_forward; "" = deleted.
func (h *harness) cleanFolder() string {
	switch h.setup.afterForward {
	case "move":
		return forwardedFolder
	case "delete":
		return ""
	}
	return "INBOX"
}

// checkCorpusHandled asserts the state after the corpus went through
// mailtriage: flagged mail in the review folder with its keyword and
// \Flagged, clean mail marked $Forwarded and \Seen where after_forward puts
// it and at the sink exactly once with its body intact below the added
// headers, nothing lost.
func checkCorpusHandled(t *testing.T, h *harness, corpus []corpusMessage) {
	t.Helper()
	msgs, _ := h.mailbox()
	byKey := map[[32]byte]int{}
	for i, m := range corpus {
		byKey[key(m.Raw)] = i
	}
	found := make([][]stored, len(corpus))
	leftBehind := make([]int, len(corpus)) // moved-out originals marked \Deleted, without UIDPLUS
	for _, s := range msgs {
		i, ok := byKey[key(s.Raw)]
		if !ok {
			t.Errorf("%s uid %d is no corpus message", s.Folder, s.UID)
			continue
		}
		if !bytes.Equal(s.Raw, served(corpus[i].Raw)) {
			t.Errorf("%s: Dovecot serves it differently from what the test expects", corpus[i].File)
		}
		if h.setup.noUIDPlus() && s.Folder == "INBOX" && s.has(imap.FlagDeleted) && corpus[i].Action == "flag" {
			leftBehind[i]++
			continue
		}
		found[i] = append(found[i], s)
	}
	originals := map[string]int{} // exact bytes as Dovecot serves them -> corpus index
	wantSent, wantStored := 0, 0
	action := make([]string, len(corpus)) // what the worker had to do
	for i, m := range corpus {
		action[i] = m.Action
		if action[i] == "flag" {
			wantStored++
			if len(found[i]) != 1 {
				t.Errorf("%s: %d copies in the mailbox, want 1", m.File, len(found[i]))
				continue
			}
			if s := found[i][0]; s.Folder != reviewFolder || !s.has(imap.FlagFlagged) || !s.has(m.keyword()) {
				t.Errorf("%s (%s): in %s with %v; want %s with \\Flagged and %s", m.File, m.Encryption, s.Folder, s.Flags, reviewFolder, m.keyword())
			}
			continue
		}
		wantSent++
		originals[string(served(m.Raw))] = i
		if h.cleanFolder() == "" {
			if len(found[i]) != 0 {
				t.Errorf("%s: still in %s after forwarding with after_forward: delete", m.File, found[i][0].Folder)
			}
			continue
		}
		wantStored++
		if len(found[i]) != 1 {
			t.Errorf("%s: %d copies in the mailbox, want 1", m.File, len(found[i]))
			continue
		}
		if s := found[i][0]; s.Folder != h.cleanFolder() || !s.has(imap.FlagForwarded) || !s.has(imap.FlagSeen) || s.has(imap.FlagFlagged) {
			t.Errorf("%s: in %s with %v; want %s with $Forwarded and \\Seen", m.File, s.Folder, s.Flags, h.cleanFolder())
		}
	}
	for i, m := range corpus {
		n := leftBehind[i]
		if n > 1 || n == 1 && (len(found[i]) != 1 || found[i][0].Folder != reviewFolder) {
			t.Errorf("%s: %d originals left in INBOX marked \\Deleted besides %v; want one beside the copy in %s", m.File, n, found[i], reviewFolder)
		}
		wantStored += n
	}
	if len(msgs) != wantStored {
		t.Errorf("the mailbox holds %d messages, want %d", len(msgs), wantStored)
	}
	sent := make([]int, len(corpus))
	for _, sm := range h.sink.Messages() {
		added, i := forwardedBody(sm.Data, originals)
		if i < 0 {
			t.Errorf("the sink got a message that is not a clean corpus message below added headers:\n%.400s", sm.Data)
			continue
		}
		sent[i]++
		if sm.From != triageFrom || !reflect.DeepEqual(sm.To, []string{helpdesk}) {
			t.Errorf("%s: envelope %s -> %v, want %s -> %s", corpus[i].File, sm.From, sm.To, triageFrom, helpdesk)
		}
		checkAddedHeaders(t, corpus[i].File, added)
	}
	for i, m := range corpus {
		if action[i] == "forward" && sent[i] != 1 {
			t.Errorf("%s reached the sink %d times, want once", m.File, sent[i])
		}
	}
	if got := h.sink.Count(); got != wantSent {
		t.Errorf("the sink got %d messages, want the %d clean ones", got, wantSent)
	}
}

// checkAddedHeaders: what mailtriage puts above the original is header
// fields only, with the annotations and the Resent-* block of redirect mode.
func checkAddedHeaders(t *testing.T, file string, added []string) {
	t.Helper()
	names := map[string]bool{}
	for _, line := range added {
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue // folded continuation
		}
		name, _, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			t.Errorf("%s: added line %q is not a header field", file, line)
			continue
		}
		names[strings.ToLower(name)] = true
	}
	for _, want := range []string{"x-mailtriage-encryption", "x-mailtriage-transport-tls", "x-mailtriage-relay",
		"resent-from", "resent-to", "resent-date", "resent-message-id"} {
		if !names[want] {
			t.Errorf("%s: the forwarded copy lacks %s above the original (added: %q)", file, want, added)
		}
	}
}

// TestRunOnceCorpus: the corpus through `run --once`, then a second run that
// must change nothing, then a UIDVALIDITY reset of every folder that must
// re-flag and re-send nothing; with each state engine, IMAPS and STARTTLS,
// and each after_forward.
func TestRunOnceCorpus(t *testing.T) {
	corpus := loadCorpus(t)
	for _, su := range []setup{
		{state: "redis-tls", imapTLS: "implicit", afterForward: "seen"},
		{state: "file", imapTLS: "starttls", afterForward: "move"},
		{state: "redis-auth", imapTLS: "implicit", afterForward: "delete"},
	} {
		t.Run(su.state+"-"+su.imapTLS+"-"+su.afterForward, func(t *testing.T) {
			h := newHarness(t, su)
			h.seed(raws(corpus))
			h.runOnce("first")
			checkCorpusHandled(t, h, corpus)

			before := h.snapshot(true)
			h.runOnce("second")
			if after := h.snapshot(true); !reflect.DeepEqual(before, after) {
				t.Errorf("a second run --once changed the mailbox or sent mail:\nbefore %q\nafter  %q", before, after)
			}

			_, oldValidity := h.mailbox()
			before = h.snapshot(false)
			for folder := range oldValidity {
				h.dc.ResetUIDValidity(h.dc.User, folder)
			}
			h.runOnce("after-uidvalidity-reset")
			_, newValidity := h.mailbox()
			for folder, v := range oldValidity {
				if newValidity[folder] == v {
					t.Fatalf("UIDVALIDITY of %s stayed %d: the reset did not happen", folder, v)
				}
			}
			if after := h.snapshot(false); !reflect.DeepEqual(before, after) {
				t.Errorf("after a UIDVALIDITY reset, run --once changed the mailbox or sent mail:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
}

// TestTwoProcessesOnce: two `run --once` started together on one mailbox
// and one Redis handle each message once.
func TestTwoProcessesOnce(t *testing.T) {
	corpus := loadCorpus(t)
	h := newHarness(t, setup{state: "redis", imapTLS: "implicit", afterForward: "seen"})
	h.seed(raws(corpus))
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	logs := make([]string, 2)
	for i := range errs {
		cmd, logPath := h.command(ctx, []string{"one", "two"}[i], "--once")
		logs[i] = logPath
		if err := cmd.Start(); err != nil {
			t.Fatalf("start mailtriage: %v", err)
		}
		wg.Go(func() { errs[i] = cmd.Wait() })
	}
	wg.Wait()
	// The one that finds the mailbox leased by the other exits 75.
	finished := 0
	for i, err := range errs {
		var exit *exec.ExitError
		switch {
		case err == nil:
			finished++
		case errors.As(err, &exit) && exit.ExitCode() == 75:
		default:
			t.Errorf("process %d: %v\n%s", i+1, err, tail(logs[i]))
		}
	}
	if finished == 0 {
		t.Errorf("neither process finished the mailbox's cycle")
	}
	checkCorpusHandled(t, h, corpus)
}

// TestReleaseLoop: a reviewer moves flagged mail from the review folder
// into the release folder; the next run forwards it whatever its class,
// with X-Mailtriage-Released: yes and the body intact, puts it back in
// INBOX marked forwarded, and the run after that does nothing.
func TestReleaseLoop(t *testing.T) {
	corpus := loadCorpus(t)
	h := newHarness(t, setup{state: "redis", imapTLS: "implicit", afterForward: "seen"})
	h.seed(raws(corpus))
	h.runOnce("first")
	sentBefore := h.sink.Count()

	// Pick one encrypted and one unparseable message from the review folder.
	msgs, _ := h.mailbox()
	released := map[string]stored{} // served bytes -> message
	var uids imap.UIDSet
	for _, want := range []imap.Flag{"$Encrypted", "$Unparseable"} {
		for _, s := range msgs {
			if s.Folder == reviewFolder && s.has(want) {
				released[string(s.Raw)] = s
				uids.AddNum(s.UID)
				break
			}
		}
	}
	if len(released) != 2 {
		t.Fatalf("the review folder lacks an $Encrypted or an $Unparseable message to release")
	}
	c := h.imapClient()
	if err := c.Create(releaseFolder, nil).Wait(); err != nil {
		t.Fatalf("CREATE %s: %v", releaseFolder, err)
	}
	if _, err := c.Select(reviewFolder, nil).Wait(); err != nil {
		t.Fatalf("SELECT %s: %v", reviewFolder, err)
	}
	if _, err := c.Move(uids, releaseFolder).Wait(); err != nil {
		t.Fatalf("MOVE to %s: %v", releaseFolder, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("LOGOUT: %v", err)
	}

	h.runOnce("release")
	sinkMsgs := h.sink.Messages()
	if got := len(sinkMsgs) - sentBefore; got != len(released) {
		t.Fatalf("the release run sent %d messages, want %d", got, len(released))
	}
	originals := map[string]int{}
	i := 0
	for raw := range released {
		originals[raw] = i
		i++
	}
	for _, sm := range sinkMsgs[sentBefore:] {
		added, i := forwardedBody(sm.Data, originals)
		if i < 0 {
			t.Errorf("the release run sent something else than a released message:\n%.400s", sm.Data)
			continue
		}
		if !slices.Contains(added, "X-Mailtriage-Released: yes") {
			t.Errorf("a released message came without X-Mailtriage-Released: yes (added: %q)", added)
		}
		checkAddedHeaders(t, "released message", added)
	}
	after, _ := h.mailbox()
	for _, s := range after {
		if _, ok := released[string(s.Raw)]; !ok {
			continue
		}
		if s.Folder != "INBOX" || !s.has(imap.FlagForwarded) || !s.has(imap.FlagSeen) {
			t.Errorf("a released message is in %s with %v; want INBOX with $Forwarded and \\Seen", s.Folder, s.Flags)
		}
	}
	if len(after) != len(msgs) {
		t.Errorf("the mailbox holds %d messages after the release, %d before", len(after), len(msgs))
	}

	before := h.snapshot(false)
	h.runOnce("after-release")
	if got := h.snapshot(false); !reflect.DeepEqual(before, got) {
		t.Errorf("the run after the release changed the mailbox or sent mail:\nbefore %q\nafter  %q", before, got)
	}
}

// TestCheck: `mailtriage check` passes against the harness and fails with a
// wrong password, never printing either password; `run --once` then exits
// non-zero.
func TestCheck(t *testing.T) {
	h := newHarness(t, setup{state: "redis", imapTLS: "implicit", afterForward: "seen"})
	check := func(name string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, binary, "check", "--config", h.config).CombinedOutput()
		if bytes.Contains(out, []byte(h.dc.Password)) || bytes.Contains(out, []byte(wrongPassword)) {
			t.Errorf("check (%s) printed a password:\n%s", name, out)
		}
		return string(out), err
	}
	if out, err := check("good"); err != nil {
		t.Errorf("check with the right password: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(h.dir, "imap-password"), []byte(wrongPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := check("bad")
	t.Logf("check with a wrong password:\n%s", out)
	if err == nil || !strings.Contains(out, "FAIL") {
		t.Errorf("check with a wrong password: exit %v, want a failure line:\n%s", err, out)
	}

	// run --once exits non-zero when a mailbox fails, and says nothing secret.
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd, logPath := h.command(ctx, "wrong-password", "--once")
	if err := cmd.Run(); err == nil {
		t.Errorf("run --once with a wrong IMAP password exited 0:\n%s", tail(logPath))
	}
	if b, err := os.ReadFile(logPath); err != nil || bytes.Contains(b, []byte(wrongPassword)) {
		t.Errorf("run --once log (err %v) shows the wrong password:\n%s", err, b)
	}
}

const wrongPassword = "wrong-password-Tq9v"

// TestWithoutMove: against a server that does not advertise MOVE (and
// then neither UIDPLUS), flagging falls back to COPY + \Deleted + UID
// EXPUNGE of those UIDs only (without UIDPLUS, the originals stay marked
// \Deleted); a message a person marked \Deleted is never expunged; and a
// second run changes nothing.
func TestWithoutMove(t *testing.T) {
	corpus := loadCorpus(t)
	for _, hide := range [][]string{{"MOVE"}, {"MOVE", "UIDPLUS"}} {
		t.Run(strings.Join(hide, "-"), func(t *testing.T) {
			h := newHarness(t, setup{state: "file", imapTLS: "implicit", afterForward: "seen", hide: hide})
			h.seed(raws(corpus))
			// A person marks a clean message \Deleted without expunging it.
			var personal int
			for i, m := range corpus {
				if m.Action == "forward" {
					personal = i
					break
				}
			}
			c := h.imapClient()
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatalf("SELECT INBOX: %v", err)
			}
			if err := c.Store(imap.UIDSetNum(imap.UID(personal+1)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
				Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				t.Fatalf("STORE \\Deleted: %v", err)
			}
			if err := c.Logout().Wait(); err != nil {
				t.Fatalf("LOGOUT: %v", err)
			}

			h.runOnce("first")
			checkCorpusHandled(t, h, corpus)
			msgs, _ := h.mailbox()
			kept := false
			for _, s := range msgs {
				if key(s.Raw) == key(corpus[personal].Raw) {
					kept = s.Folder == "INBOX" && s.has(imap.FlagDeleted)
				}
			}
			if !kept {
				t.Errorf("%s, marked \\Deleted by a person, is no longer in INBOX: something expunged it", corpus[personal].File)
			}
			before := h.snapshot(true)
			h.runOnce("second")
			if after := h.snapshot(true); !reflect.DeepEqual(before, after) {
				t.Errorf("a second run --once changed the mailbox or sent mail:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
}

// TestIdleAndShutdown: with idle: true and an hourly schedule, a message
// appended while `mailtriage run` waits is forwarded within seconds (IMAP
// IDLE, RFC 2177); SIGTERM then ends the process within 10 s, exit 0, with
// the mailbox lease released.
func TestIdleAndShutdown(t *testing.T) {
	corpus := loadCorpus(t)
	h := newHarness(t, setup{state: "redis", imapTLS: "implicit", afterForward: "seen", schedule: "@hourly", idle: true})
	var clean corpusMessage
	for _, m := range corpus {
		if m.Action == "forward" {
			clean = m
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd, logPath := h.command(ctx, "idle")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mailtriage run: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	h.dc.WaitIdle(h.dc.User, 1, 30*time.Second)
	h.seed([][]byte{clean.Raw})
	appended := time.Now()
	for h.sink.Count() == 0 {
		if time.Since(appended) > 15*time.Second {
			t.Fatalf("a message appended during IDLE was not forwarded within 15 s:\n%s", tail(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("forwarded %v after APPEND, woken by IDLE", time.Since(appended).Round(time.Millisecond))

	stop := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM mailtriage run ended with %v, want exit 0:\n%s", err, tail(logPath))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("mailtriage run still running 10 s after SIGTERM:\n%s", tail(logPath))
	}
	t.Logf("stopped %v after SIGTERM", time.Since(stop).Round(time.Millisecond))
	h.noSecretIn(logPath)

	rdb := redis.NewClient(&redis.Options{Addr: h.redis.Addr})
	defer rdb.Close()
	if n, err := rdb.Exists(ctx, "mailtriage:{"+mailboxName+"}:lease").Result(); err != nil || n != 0 {
		t.Errorf("the mailbox lease is still in Redis after shutdown (exists=%d, err %v)", n, err)
	}
	if got := h.sink.Count(); got != 1 {
		t.Errorf("the sink got %d messages, want 1", got)
	}
}

// TestReplicas: two `mailtriage run` processes share the mailbox through
// Redis while mail keeps arriving; each message is handled once, and each
// process exits 0 on SIGTERM.
func TestReplicas(t *testing.T) {
	corpus := loadCorpus(t)
	h := newHarness(t, setup{state: "redis", imapTLS: "implicit", afterForward: "seen"})
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	type replica struct {
		log    string
		exited chan error
	}
	var replicas []replica
	var cmds []*exec.Cmd
	for _, name := range []string{"replica-a", "replica-b"} {
		cmd, logPath := h.command(ctx, name)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		r := replica{log: logPath, exited: make(chan error, 1)}
		go func() { r.exited <- cmd.Wait() }()
		replicas = append(replicas, r)
		cmds = append(cmds, cmd)
	}
	defer func() {
		for i, cmd := range cmds {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				<-replicas[i].exited
			}
		}
	}()

	// Mail arrives in five bursts while both run.
	wantSent := 0
	for _, m := range corpus {
		if m.Action == "forward" {
			wantSent++
		}
	}
	all := raws(corpus)
	for i := 0; i < len(all); i += (len(all) + 4) / 5 {
		h.seed(all[i:min(i+(len(all)+4)/5, len(all))])
		time.Sleep(400 * time.Millisecond)
	}
	deadline := time.Now().Add(30 * time.Second)
	for h.sink.Count() < wantSent-1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a few more cycles: nothing more may be sent
	for i, cmd := range cmds {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM: %v", err)
		}
		select {
		case err := <-replicas[i].exited:
			if err != nil {
				t.Errorf("replica %d ended with %v after SIGTERM:\n%s", i+1, err, tail(replicas[i].log))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("replica %d still running 10 s after SIGTERM", i+1)
		}
		h.noSecretIn(replicas[i].log)
	}
	checkCorpusHandled(t, h, corpus)
	for i, r := range replicas {
		b, err := os.ReadFile(r.log)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("replica %d logged %d forwards", i+1, bytes.Count(b, []byte(`"msg":"forwarded"`)))
	}
}
