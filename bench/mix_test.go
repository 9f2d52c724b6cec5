package bench

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// template is a corpus message the mix copies with a fresh Message-ID.
type template struct {
	name string
	raw  []byte
	flag bool // the default policy flags it
}

// templates are the corpus messages the mix draws its encrypted and relayed
// share from.
type templates struct {
	encrypted, relayed []template
}

// loadTemplates reads testdata/corpus/labels.tsv: every *-encrypted message
// and every private-relay message that is neither encrypted nor broken.
func loadTemplates(tb testing.TB) templates {
	tb.Helper()
	dir := filepath.Join("..", "testdata", "corpus")
	f, err := os.Open(filepath.Join(dir, "labels.tsv"))
	if err != nil {
		tb.Fatalf("open corpus labels: %v", err)
	}
	defer f.Close()
	var ts templates
	sc := bufio.NewScanner(f)
	sc.Scan() // the column names
	for sc.Scan() {
		col := strings.Split(sc.Text(), "\t")
		if len(col) < 8 {
			tb.Fatalf("corpus labels: short line %q", sc.Text())
		}
		name, encryption, relay, action := col[0], col[1], col[4], col[7]
		encrypted := strings.HasSuffix(encryption, "-encrypted")
		if !encrypted && (relay != "private" || encryption == "unparseable") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			tb.Fatalf("read corpus message: %v", err)
		}
		t := template{name: name, raw: raw, flag: action == "flag"}
		if encrypted {
			ts.encrypted = append(ts.encrypted, t)
		} else {
			ts.relayed = append(ts.relayed, t)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("read corpus labels: %v", err)
	}
	if len(ts.encrypted) == 0 || len(ts.relayed) == 0 {
		tb.Fatalf("corpus labels: %d encrypted and %d relayed templates; want some of each", len(ts.encrypted), len(ts.relayed))
	}
	return ts
}

// mixStats says what a generated mailbox holds.
type mixStats struct {
	messages, forward, flag int
	bytes                   int64
}

// mix generates a deterministic mailbox: 80% ordinary customer mail (a
// quarter of it with an attachment of 10–250 KiB), 10% end-to-end encrypted
// and 10% private-relay mail from the corpus, each with a unique Message-ID.
type mix struct {
	rng   *rand.Rand
	ts    templates
	words []string
}

func newMix(seed uint64, ts templates) *mix {
	return &mix{
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		ts:  ts,
		words: strings.Fields("thanks order delivery invoice account refund password reset " +
			"shipping tracking number broken screen replacement warranty question please " +
			"help urgent today tomorrow customer support ticket update status payment card"),
	}
}

// message returns message i of the mailbox named box and whether the
// default policy flags it.
func (m *mix) message(box string, i int) ([]byte, bool) {
	id := fmt.Sprintf("<bench-%s-%d@mailtriage.test>", box, i)
	switch r := m.rng.IntN(10); {
	case r == 0:
		t := m.ts.encrypted[m.rng.IntN(len(m.ts.encrypted))]
		return withMessageID(t.raw, id), t.flag
	case r == 1:
		t := m.ts.relayed[m.rng.IntN(len(m.ts.relayed))]
		return withMessageID(t.raw, id), t.flag
	default:
		return m.ordinary(i, id), false
	}
}

// ordinary builds a plain customer message, some with an attachment.
func (m *mix) ordinary(i int, id string) []byte {
	var b bytes.Buffer
	date := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute).Format(time.RFC1123Z)
	fmt.Fprintf(&b, "Return-Path: <customer%d@example.org>\r\n", i)
	fmt.Fprintf(&b, "Received: from mx.example.org (mx.example.org [203.0.113.5])\r\n\tby mx.helpdesk.test (Postfix) with ESMTPS id 4X%05d\r\n\tfor <support@helpdesk.test>; %s\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n", i, date)
	fmt.Fprintf(&b, "From: Customer %d <customer%d@example.org>\r\nTo: support@helpdesk.test\r\n", i, i)
	fmt.Fprintf(&b, "Subject: Order %d: %s %s\r\nDate: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n", 10000+i, m.word(), m.word(), date, id)
	text := m.text(1024 + m.rng.IntN(7*1024))
	if m.rng.IntN(4) != 0 {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		b.WriteString(text)
		return b.Bytes()
	}
	const boundary = "bench-boundary-7c1e"
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", boundary, text)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/pdf; name=\"invoice-%d.pdf\"\r\nContent-Disposition: attachment; filename=\"invoice-%d.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary, i, i)
	att := make([]byte, 10*1024+m.rng.IntN(240*1024))
	for j := range att {
		att[j] = byte(m.rng.Uint32())
	}
	enc := base64.StdEncoding.EncodeToString(att)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	fmt.Fprintf(&b, "%s\r\n--%s--\r\n", enc, boundary)
	return b.Bytes()
}

func (m *mix) word() string { return m.words[m.rng.IntN(len(m.words))] }

// text returns about n bytes of words in lines of at most 72 characters.
func (m *mix) text(n int) string {
	var b strings.Builder
	line := 0
	for b.Len() < n {
		w := m.word()
		if line+len(w) > 72 {
			b.WriteString("\r\n")
			line = 0
		}
		b.WriteString(w)
		b.WriteByte(' ')
		line += len(w) + 1
	}
	b.WriteString("\r\n")
	return b.String()
}

// withMessageID returns raw with its Message-ID field (and any folded
// continuation) replaced by id, keeping the message's line endings.
func withMessageID(raw []byte, id string) []byte {
	eol := "\n"
	if i := bytes.IndexByte(raw, '\n'); i > 0 && raw[i-1] == '\r' {
		eol = "\r\n"
	}
	var out bytes.Buffer
	out.Grow(len(raw) + 64)
	out.WriteString("Message-ID: " + id + eol)
	rest := raw
	inHeader, skipping := true, false
	for inHeader && len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			i = len(rest) - 1
		}
		line := rest[:i+1]
		rest = rest[i+1:]
		trimmed := bytes.TrimRight(line, "\r\n")
		switch {
		case len(trimmed) == 0:
			inHeader = false
			out.Write(line)
		case skipping && (trimmed[0] == ' ' || trimmed[0] == '\t'):
		case len(trimmed) >= 11 && strings.EqualFold(string(trimmed[:11]), "message-id:"):
			skipping = true
		default:
			skipping = false
			out.Write(line)
		}
	}
	out.Write(rest)
	return out.Bytes()
}

// writeMaildir writes n messages of the mix into the Maildir at dir (its
// new/ folder, created with cur/ and tmp/), owned by the account Dovecot
// stores mail as.
func writeMaildir(dir, box string, n int, m *mix) (mixStats, error) {
	uid, gid, err := mailOwner()
	if err != nil {
		return mixStats{}, err
	}
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		if err := mkdirOwned(filepath.Join(dir, sub), uid, gid); err != nil {
			return mixStats{}, err
		}
	}
	var st mixStats
	for i := range n {
		raw, flag := m.message(box, i)
		name := filepath.Join(dir, "new", fmt.Sprintf("1790000000.M%dP1.bench", i))
		if err := os.WriteFile(name, raw, 0o600); err != nil {
			return st, fmt.Errorf("write message %d: %w", i, err)
		}
		if err := os.Chown(name, uid, gid); err != nil {
			return st, fmt.Errorf("chown message %d: %w", i, err)
		}
		st.messages++
		st.bytes += int64(len(raw))
		if flag {
			st.flag++
		} else {
			st.forward++
		}
	}
	return st, nil
}

// mailOwner is the account Dovecot stores mail as: Debian's "mail" user
// when running as root (Dovecot refuses uid 0), else the current user.
func mailOwner() (int, int, error) {
	if os.Geteuid() != 0 {
		return os.Getuid(), os.Getgid(), nil
	}
	u, err := user.Lookup("mail")
	if err != nil {
		return 0, 0, fmt.Errorf("look up the mail account: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("mail account uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, fmt.Errorf("mail account gid %q: %w", u.Gid, err)
	}
	return uid, gid, nil
}

// mkdirOwned makes dir and its missing parents, each owned by uid:gid.
func mkdirOwned(dir string, uid, gid int) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := mkdirOwned(filepath.Dir(dir), uid, gid); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("make %s: %w", filepath.Base(dir), err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", filepath.Base(dir), err)
	}
	return nil
}
