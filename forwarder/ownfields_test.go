package forwarder

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
)

// ownFields lists the X-Mailtriage-* fields of h, name: value, in order.
func ownFields(h textproto.Header) []string {
	var out []string
	for f := h.Fields(); f.Next(); {
		if strings.HasPrefix(strings.ToLower(f.Key()), strings.ToLower(ownPrefix)) {
			out = append(out, f.Key()+": "+f.Value())
		}
	}
	return out
}

// TestSenderFieldsRenamed: a sender's X-Mailtriage-* fields never reach the
// helpdesk under our names, in either mode; each of ours is there once,
// with our value, and the sender's text survives renamed.
func TestSenderFieldsRenamed(t *testing.T) {
	forged := "X-Mailtriage-Released: yes\r\n" +
		"Received: from mx.customer.example by mx.example.com; Tue, 24 Nov 2026 10:00:00 +0000\r\n" +
		"x-mailtriage-relay: none\r\n" +
		"X-MAILTRIAGE-THREAD:\r\n <forged@attacker.example>\r\n" +
		"X-Mailtriage-Encryption : none\r\n" +
		"Subject: " + strings.Repeat("long ", 150) + "\r\n" +
		"X-Mailtriage-Transport-TLS: tls\n" +
		"From: Mallory <m@attacker.example>\r\n" +
		"Content-Type: text/plain\r\n" +
		"\r\n" +
		"X-Mailtriage-Released: yes is body text and stays\r\n"
	wantRenamed := []string{
		"X-Original-Mailtriage-Released: yes",
		"X-Original-Mailtriage-relay: none",
		"X-Original-Mailtriage-THREAD: <forged@attacker.example>",
		"X-Original-Mailtriage-Encryption: none",
		"X-Original-Mailtriage-Transport-TLS: tls",
	}
	v := cleanVerdict()
	v.Encryption, v.TransportTLS = "none", "plain"
	wantOurs := []string{
		HeaderEncryption + ": none",
		HeaderTransportTLS + ": plain",
		HeaderRelay + ": none",
		HeaderThread + ": <root@customer.example>",
	}
	tests := []struct {
		name     string
		mode     string
		released bool
	}{
		{"redirect", ModeRedirect, false},
		{"redirect, released", ModeRedirect, true},
		{"attach", ModeAttach, false},
		{"attach, released", ModeAttach, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := startSink(t, smtpsink.Options{})
			f := newForwarder(t, sink, func(c *Config) { c.Mode = tt.mode })
			if err := forward(t, f, v, tt.released, forged); err != nil {
				t.Fatalf("Forward: %v", err)
			}
			m, err := message.Read(bytes.NewReader(sink.Messages()[0].Data))
			if err != nil {
				t.Fatalf("parse forwarded copy: %v", err)
			}
			want := append([]string(nil), wantOurs...)
			if tt.released {
				want = append(want, HeaderReleased+": yes")
			}
			// go-message gives field names in canonical case.
			if got := ownFields(m.Header.Header); !strings.EqualFold(strings.Join(got, "\n"), strings.Join(want, "\n")) {
				t.Errorf("X-Mailtriage-* fields of the copy:\n got %q\nwant %q", got, want)
			}
			orig := m
			if tt.mode == ModeAttach {
				orig = attachedOriginal(t, m)
				if got := ownFields(orig.Header.Header); len(got) != 0 {
					t.Errorf("attached original keeps the sender's fields: %q", got)
				}
			}
			var renamed []string
			for fl := orig.Header.Fields(); fl.Next(); {
				if strings.HasPrefix(fl.Key(), "X-Original-Mailtriage-") {
					renamed = append(renamed, fl.Key()+": "+fl.Value())
				}
			}
			if !strings.EqualFold(strings.Join(renamed, "\n"), strings.Join(wantRenamed, "\n")) {
				t.Errorf("renamed fields:\n got %q\nwant %q", renamed, wantRenamed)
			}
			body, err := io.ReadAll(orig.Body)
			if err != nil || string(body) != "X-Mailtriage-Released: yes is body text and stays\r\n" {
				t.Errorf("body = %q (%v)", body, err)
			}
		})
	}
}

// attachedOriginal returns the message/rfc822 part of an attach-mode copy.
func attachedOriginal(t *testing.T, m *message.Entity) *message.Entity {
	t.Helper()
	mr := m.MultipartReader()
	if mr == nil {
		t.Fatal("attach-mode copy is not multipart")
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			t.Fatal("no message/rfc822 part")
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		if ct, _, _ := p.Header.ContentType(); ct == "message/rfc822" {
			inner, err := message.Read(p.Body)
			if err != nil {
				t.Fatalf("parse the attached original: %v", err)
			}
			return inner
		}
	}
}

// renameReference is renamer's rule written plainly: in the lines before
// the first empty one, a line starting with ownPrefix (any case) gets
// renamedPrefix instead.
func renameReference(in []byte) []byte {
	var out bytes.Buffer
	header := true
	for len(in) > 0 {
		line := in
		if i := bytes.IndexByte(in, '\n'); i >= 0 {
			line = in[:i+1]
		}
		in = in[len(line):]
		switch {
		case !header:
		case strings.Trim(string(line), "\r") == "\n":
			header = false
		case len(line) >= len(ownPrefix) && strings.EqualFold(string(line[:len(ownPrefix)]), ownPrefix):
			line = append([]byte(renamedPrefix), line[len(ownPrefix):]...)
		}
		out.Write(line)
	}
	return out.Bytes()
}

func readRenamed(t testing.TB, n *renamer, src io.Reader) []byte {
	n.reset(src)
	got, err := io.ReadAll(n)
	if err != nil {
		t.Fatalf("read through the renamer: %v", err)
	}
	return got
}

func TestRenamer(t *testing.T) {
	long := strings.Repeat("x", 3*renameBufferSize)
	tests := []struct {
		name, in, want string
	}{
		{"no header fields of ours", "Subject: a\r\n\r\nX-Mailtriage-Relay: b\r\n", "Subject: a\r\n\r\nX-Mailtriage-Relay: b\r\n"},
		{"first line", "X-Mailtriage-Relay: none\r\n\r\n", "X-Original-Mailtriage-Relay: none\r\n\r\n"},
		{"bare LF lines", "A: 1\nx-mailtriage-released: yes\n\nbody\n", "A: 1\nX-Original-Mailtriage-released: yes\n\nbody\n"},
		{"continuation kept", "X-Mailtriage-Thread:\r\n <a@b>\r\n\r\n", "X-Original-Mailtriage-Thread:\r\n <a@b>\r\n\r\n"},
		{"after a line longer than the buffer", "Subject: " + long + "\r\nX-Mailtriage-Relay: none\r\n\r\n", "Subject: " + long + "\r\nX-Original-Mailtriage-Relay: none\r\n\r\n"},
		{"the prefix inside a long line is not a field", "Subject: " + long[:renameBufferSize-9] + "X-Mailtriage-Relay: x\r\n\r\n", "Subject: " + long[:renameBufferSize-9] + "X-Mailtriage-Relay: x\r\n\r\n"},
		{"no body, no final line break", "X-Mailtriage-Relay: none", "X-Original-Mailtriage-Relay: none"},
		{"a CR alone ends no line", "A: 1\rX-Mailtriage-Relay: none\r\n\r\n", "A: 1\rX-Mailtriage-Relay: none\r\n\r\n"},
		{"empty", "", ""},
		{"the header ends at a line of CRs", "A: 1\r\n\r\r\nX-Mailtriage-Relay: body\r\n", "A: 1\r\n\r\r\nX-Mailtriage-Relay: body\r\n"},
		{"the header ends at a line of more CRs than the buffer", "A: 1\r\n" + strings.Repeat("\r", 2*renameBufferSize) + "\nX-Mailtriage-Relay: body\r\n",
			"A: 1\r\n" + strings.Repeat("\r", 2*renameBufferSize) + "\nX-Mailtriage-Relay: body\r\n"},
		{"CRs then text is no end", "A: 1\r\n\r\rB: 2\r\nX-Mailtriage-Relay: none\r\n\r\n", "A: 1\r\n\r\rB: 2\r\nX-Original-Mailtriage-Relay: none\r\n\r\n"},
	}
	n := newRenamer()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readRenamed(t, n, strings.NewReader(tt.in)); string(got) != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			if got := readRenamed(t, n, iotest.OneByteReader(strings.NewReader(tt.in))); string(got) != tt.want {
				t.Errorf("one byte at a time: got %q\nwant %q", got, tt.want)
			}
			n.reset(iotest.DataErrReader(strings.NewReader(tt.in)))
			if got, err := io.ReadAll(bufio.NewReaderSize(iotest.HalfReader(n), 16)); err != nil || string(got) != tt.want {
				t.Errorf("small reads: got %q (%v)\nwant %q", got, err, tt.want)
			}
		})
	}
}

func TestRenamerPassesSourceError(t *testing.T) {
	n := newRenamer()
	n.reset(io.MultiReader(strings.NewReader("X-Mailtriage-Relay: none\r\n"), iotest.ErrReader(iotest.ErrTimeout)))
	got, err := io.ReadAll(n)
	if !errors.Is(err, iotest.ErrTimeout) || string(got) != "X-Original-Mailtriage-Relay: none\r\n" {
		t.Errorf("got %q, %v; want the renamed line, then the source's error", got, err)
	}
}

func FuzzRenamer(f *testing.F) {
	f.Add([]byte("X-Mailtriage-Relay: none\r\nSubject: x\r\n\r\nX-Mailtriage-Relay: body\r\n"), uint8(0))
	f.Add([]byte("a: b\nx-MAILTRIAGE-released: yes\n\n"), uint8(3))
	f.Add([]byte("X-Mailtriage-\r\n\r\n"), uint8(1))
	n := newRenamer()
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		var src io.Reader = bytes.NewReader(in)
		if step%2 == 1 {
			src = iotest.OneByteReader(src)
		}
		got := readRenamed(t, n, src)
		if want := renameReference(in); !bytes.Equal(got, want) {
			t.Fatalf("renamer(%q)\n = %q\nwant %q", in, got, want)
		}
	})
}
