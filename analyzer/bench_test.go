package analyzer

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// typicalMessage is an HTML newsletter-sized message: a Received chain,
// multipart/alternative text and HTML, and a small PDF.
func typicalMessage() []byte {
	var b strings.Builder
	b.WriteString(tlsHop)
	b.WriteString("Received: from localhost (localhost [127.0.0.1]) by mx1.helpdesk.example with LMTP id 1; Mon, 2 Nov 2026 09:00:00 +0000\n")
	b.WriteString("From: \"Ann Customer\" <ann@customer.example>\nTo: support@helpdesk.example\nSubject: Re: Order 4711 is late\n")
	b.WriteString("Message-ID: <typ1@customer.example>\nIn-Reply-To: <t0@helpdesk.example>\nReferences: <root@helpdesk.example> <t0@helpdesk.example>\n")
	b.WriteString("Date: Mon, 02 Nov 2026 09:07:49 +0000\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=outer\n\n")
	b.WriteString("--outer\nContent-Type: multipart/alternative; boundary=alt\n\n--alt\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n")
	for i := 0; i < 40; i++ {
		b.WriteString("Hello, my order has not arrived yet. Could you please check the status? =\nThanks.\n")
	}
	b.WriteString("--alt\nContent-Type: text/html; charset=utf-8\n\n")
	for i := 0; i < 60; i++ {
		b.WriteString("<p>Hello, my order has <b>not</b> arrived yet.<br>Could you please check?</p>\n")
	}
	b.WriteString("--alt--\n--outer\nContent-Type: application/pdf; name=invoice.pdf\nContent-Disposition: attachment; filename=invoice.pdf\nContent-Transfer-Encoding: base64\n\n")
	b.WriteString(b64(bytes.Repeat([]byte("%PDF-1.4 invoice "), 2000)))
	b.WriteString("--outer--\n")
	return []byte(b.String())
}

// bigMessage is a message with a 25 MB base64 attachment.
func bigMessage() []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	payload := make([]byte, 25<<20*3/4)
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	var b bytes.Buffer
	b.WriteString(msg("Content-Type: multipart/mixed; boundary=b1\n", "--b1\nContent-Type: text/plain\n\nThe log files are attached.\n--b1\nContent-Type: application/zip; name=logs.zip\nContent-Disposition: attachment; filename=logs.zip\nContent-Transfer-Encoding: base64\n\n"))
	enc := base64.StdEncoding.EncodeToString(payload)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b1--\r\n")
	return b.Bytes()
}

func BenchmarkFromRawTypical(b *testing.B) {
	raw := typicalMessage()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromRaw(bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFromRaw25MB(b *testing.B) {
	raw := bigMessage()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromRaw(bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
	}
}

// typicalFacts are the IMAP facts of typicalMessage, extracted the way
// go-imap's in-process server answers FETCH.
func typicalFacts() (header []byte, bs imap.BodyStructure, samples map[string][]byte, size int64) {
	raw := bytes.ReplaceAll(typicalMessage(), []byte("\n"), []byte("\r\n"))
	header = imapserver.ExtractBodySection(bytes.NewReader(raw), &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader})
	bs = imapserver.ExtractBodyStructure(bytes.NewReader(raw))
	samples = map[string][]byte{}
	for _, p := range SamplePaths(bs) {
		var part []int
		for _, n := range strings.Split(p, ".") {
			v, _ := strconv.Atoi(n)
			part = append(part, v)
		}
		s := imapserver.ExtractBodySection(bytes.NewReader(raw), &imap.FetchItemBodySection{Part: part})
		samples[p] = s[:min(len(s), SampleSize)]
	}
	return header, bs, samples, int64(len(raw))
}

func BenchmarkFromIMAPTypical(b *testing.B) {
	header, bs, samples, size := typicalFacts()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromIMAP(header, bs, samples, size); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	m, err := FromRaw(bytes.NewReader(typicalMessage()))
	if err != nil {
		b.Fatal(err)
	}
	an := New(nil)
	p := DefaultPolicy()
	b.ReportAllocs()
	for b.Loop() {
		an.Classify(m, p)
	}
}

// TestFromRaw25MBMemory requires the model of a 25 MB message to cost far
// less than the message: attachment bodies are streamed past, not held.
func TestFromRaw25MBMemory(t *testing.T) {
	raw := bigMessage()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m, err := FromRaw(bytes.NewReader(raw))
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("FromRaw on %d octets allocated %d octets", len(raw), allocated)
	if allocated > 2<<20 {
		t.Errorf("FromRaw allocated %d octets for a %d-octet message; want < 2 MiB", allocated, len(raw))
	}
	if got := len(m.Root.Children); got != 2 || m.Root.Children[1].Size < 25<<20-1<<20 {
		t.Errorf("model: %d parts, attachment size %d", got, m.Root.Children[1].Size)
	}
}
