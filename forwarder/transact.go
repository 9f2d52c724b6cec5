package forwarder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailtriage/mailtriage/forwarder/smtpclient"
)

// Redirect sends msg to the configured recipients in redirect mode,
// whatever Config.Mode says: fields (complete header fields of ours, such
// as Annotation's, not renamed), the Resent-* block, then msg with its own
// X-Mailtriage-* fields renamed, as Deliver sends an original. It is for a
// message of ours that must reach the helpdesk as a customer's would: the
// send test of `mailtriage check`. Errors are *Error values, as Deliver's.
func (f *Forwarder) Redirect(ctx context.Context, fields string, msg []byte) error {
	return f.sendOne(ctx, &job{
		env: envelope{from: f.cfg.From, to: f.cfg.To},
		compose: func(_ bool, idDomain string) content {
			return wrapping{header: fields + resent(f.cfg.From, f.cfg.To, idDomain, time.Now())}
		},
		body: bytesBody(msg),
		utf8: eightBitHeader(msg),
	})
}

// Send sends msg, a complete message with its header, over the same
// sessions as Deliver: from is the envelope sender ("" for the null
// reverse-path, RFC 5321 §4.5.5), to the recipients. Errors are *Error
// values, as Deliver's.
func (f *Forwarder) Send(ctx context.Context, from string, to []string, msg []byte) error {
	if from != "" {
		if err := checkAddress("from", from); err != nil {
			return err
		}
	}
	if len(to) == 0 {
		return errors.New("forwarder: send: no recipient")
	}
	for _, rcpt := range to {
		if err := checkAddress("to", rcpt); err != nil {
			return err
		}
	}
	return f.sendOne(ctx, &job{
		env:     envelope{from: from, to: to},
		compose: func(bool, string) content { return whole{} },
		body:    bytesBody(msg),
		utf8:    eightBitHeader(msg),
	})
}

// envelope is one transaction's MAIL FROM and RCPT TO.
type envelope struct {
	from string
	to   []string
}

// content is what a transaction puts around (or in place of) the body it
// reads: the wrapping of a forwarded original, or nothing for a message
// sent whole.
type content interface {
	overhead() int64
	write(w io.Writer, src io.Reader) error
}

// whole sends the body as it is.
type whole struct{}

func (whole) overhead() int64 { return 0 }
func (whole) write(w io.Writer, src io.Reader) error {
	_, err := io.Copy(w, src)
	return err
}

// job is one message on its way: what Deliver makes of a Job, and
// Redirect and Send of their arguments.
type job struct {
	key     uint32
	env     envelope
	compose func(eightBit bool, idDomain string) content // given the server's 8BITMIME and the Message-ID domain
	body    Body
	utf8    bool      // an address or the header needs SMTPUTF8
	label   string    // the Message-ID, for logs
	tries   int       // sends left when a server refuses it as one too many (throttled); 1 for Redirect and Send, which report the refusal
	sent    time.Time // when it was last sent
	redials int       // sends retried on a new session after a reused one was found closed
}

// bytesBody is a message held in memory.
type bytesBody []byte

func (b bytesBody) Size() int64       { return int64(len(b)) }
func (b bytesBody) Reader() io.Reader { return bytes.NewReader(b) }

// headerScan is how much of a message eightBitHeader looks at.
const headerScan = 64 << 10

// eightBitHeader reports whether the header block that msg starts with
// holds an octet above 127: UTF-8 in a header field needs SMTPUTF8 (RFC
// 6531 §3.4), which is declared only then. A block longer than msg counts
// as 8-bit when msg is.
func eightBitHeader(msg []byte) bool {
	end := len(msg)
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		end = i
	}
	if i := bytes.Index(msg[:end], []byte("\n\r\n")); i >= 0 {
		end = i
	}
	for _, b := range msg[:end] {
		if b >= 0x80 {
			return true
		}
	}
	return false
}

// needsUTF8 reports whether the envelope needs SMTPUTF8.
func (e envelope) needsUTF8() bool {
	for _, a := range append([]string{e.from}, e.to...) {
		for i := 0; i < len(a); i++ {
			if a[i] >= 0x80 {
				return true
			}
		}
	}
	return false
}

// tx makes j a transaction for session s, or says why it cannot go: a
// message over the server's SIZE limit.
func (f *Forwarder) tx(s *session, j *job) (*smtpclient.Tx, *Error) {
	ext := s.c.Extensions()
	m := j.compose(ext.EightBitMIME, messageIDDomain(s.c.Hello(), f.cfg.From))
	size := j.body.Size()
	var total int64
	if size > 0 {
		total = size + m.overhead()
	}
	if ext.Size > 0 && total > ext.Size {
		return nil, &Error{Op: "SIZE check at " + s.addr, Kind: KindSize,
			Message: fmt.Sprintf("message of %d octets exceeds the server's limit of %d", total, ext.Size)}
	}
	return &smtpclient.Tx{
		From: j.env.from,
		To:   j.env.to,
		Size: total,
		UTF8: j.utf8 || j.env.needsUTF8(),
		Tag:  j,
		Content: func(w io.Writer) error {
			s.rename.reset(j.body.Reader())
			defer s.rename.reset(nil)
			return m.write(w, s.rename)
		},
	}, nil
}

// sendOne sends j alone, on an idle session or a new one, and waits for
// its outcome: Deliver's worker with j as its only job.
func (f *Forwarder) sendOne(ctx context.Context, j *job) error {
	results := make(chan Result, 1)
	j.tries = 1
	w := &worker{f: f, results: results, again: []*job{j}}
	w.run(ctx)
	return (<-results).Err
}

// redial reports whether j, whose transaction on s failed with err, goes
// again on a new session: once, when s was an idle session reused and err
// says the server had closed it (the connection gone, or 421) before the
// message could have been taken.
func (f *Forwarder) redial(s *session, j *job, err error) bool {
	var e *smtpclient.Error
	if !s.reused || j.redials > 0 || !errors.As(err, &e) || e.Command == "message source" ||
		e.Code != 421 && (e.Code != 0 || !isNetwork(e.Err)) ||
		!strings.HasPrefix(e.Command, "MAIL") && e.Command != "RSET" && e.Command != "write" {
		return false
	}
	j.redials++
	f.log.Info("smtp session closed by the server; reconnecting", "error", err)
	return true
}

// outcome is the result of d, the transaction of j on s: nil when the
// server took it.
func (f *Forwarder) outcome(s *session, j *job, d smtpclient.Done) error {
	if d.Err != nil {
		return f.txError(s, d.Err, j.body.Size() > 0)
	}
	for _, r := range d.Refused {
		f.log.Warn("recipient refused; the message went to the others", "message_id", j.label, "error", f.txError(s, r, false))
	}
	f.log.Debug("forwarded", "message_id", j.label, "mode", f.cfg.Mode, "octets", j.body.Size())
	return nil
}

// txError is err, met in a transaction on s, as an *Error; sized says MAIL
// declared SIZE.
func (f *Forwarder) txError(s *session, err error, sized bool) *Error {
	at := " at " + s.addr
	var e *smtpclient.Error
	if !errors.As(err, &e) {
		return fail("transaction"+at, phaseContent, err)
	}
	cmd := strings.Replace(e.Command, ":<", " <", 1)
	switch {
	case e.Command == "message source":
		return &Error{Op: "read message body for DATA" + at, Kind: KindTemporary, Err: e.Err}
	case strings.HasPrefix(e.Command, "MAIL"):
		if sized {
			return fail(cmd+at, phaseMailSize, err)
		}
		return fail(cmd+at, phaseMail, err)
	case strings.HasPrefix(e.Command, "RCPT"), e.Command == "DATA":
		return fail(cmd+at, phaseRcpt, err)
	case e.Command == "RSET":
		return fail(cmd+at, phaseMail, err)
	}
	return fail(strings.Replace(cmd, "end of data", "end of DATA", 1)+at, phaseContent, err)
}
