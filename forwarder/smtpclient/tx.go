package smtpclient

import (
	"context"
	"io"
	"strconv"
)

// PipelineDepth bounds the transactions in flight on one Conn: sent, their
// outcome not yet read. Send reads the oldest one's replies when the window
// is full.
const PipelineDepth = 16

// chunkSize is the size of a BDAT chunk and of DATA's writes.
const chunkSize = 64 << 10

// Tx is one mail transaction.
type Tx struct {
	From string   // the reverse-path; "" for the null one (RFC 5321 §4.5.5)
	To   []string // the recipients
	Size int64    // the message's size for SIZE= (RFC 1870 §3); 0: not declared
	UTF8 bool     // SMTPUTF8 (RFC 6531 §3.4): an address or the header is UTF-8; the server must offer it
	Tag  any      // the caller's, for telling Done values apart
	// Content writes the message, once. Its lines may end in LF or CRLF;
	// the Conn encodes them (dataWriter). An error from it (not from the
	// writer) abandons the message: the server never sees its end.
	Content func(w io.Writer) error

	mailErr, dataErr *Error
	refused          []*Error
	accepted         int
}

// Done is the outcome of a transaction: Err is nil when the server took the
// message for at least one recipient; Refused lists the recipients it
// refused all the same (RFC 5321 §3.3: the message goes to the others).
// Err is an *Error: the server's reply to the first command that failed —
// MAIL, then RCPT when every recipient was refused, then BDAT or DATA, then
// the end of data — or the failure that ended the session, in which case
// the outcome is unknown when the end of data had been sent.
type Done struct {
	Tx      *Tx
	Err     error
	Refused []*Error
}

// owed is a reply the server owes for a command of tx.
type owed struct {
	tx   *Tx
	kind kind
	cmd  string // for errors: "RCPT TO:<a@b>"
}

type kind int

const (
	kindReset kind = iota
	kindMail
	kindRcpt
	kindData  // DATA: 354 expected
	kindChunk // a BDAT chunk that is not the last
	kindEnd   // the end of data or BDAT LAST: the outcome
)

// Send starts tx behind the transactions in flight and returns the outcomes
// that became known meanwhile, tx's included when it is known already.
// With PIPELINING it waits only for DATA's 354 (not at all with CHUNKING)
// and, when PipelineDepth transactions are in flight, for the oldest one's
// outcome.
func (c *Conn) Send(ctx context.Context, tx *Tx) []Done {
	release := c.dc.bind(ctx)
	defer release()
	var done []Done
	if c.err != nil {
		return append(done, Done{Tx: tx, Err: c.err})
	}
	c.flight = append(c.flight, tx)
	if c.reset {
		c.owe(tx, kindReset, "RSET", "RSET")
	}
	c.owe(tx, kindMail, "MAIL FROM:<"+tx.From+">", "MAIL FROM:<"+tx.From+">"+c.mailParams(tx))
	c.reset = true
	done = c.syncUnlessPipelining(done)
	for _, to := range tx.To {
		if tx.mailErr != nil {
			break
		}
		c.owe(tx, kindRcpt, "RCPT TO:<"+to+">", "RCPT TO:<"+to+">")
		done = c.syncUnlessPipelining(done)
	}
	if !c.ext.Pipelining && (tx.mailErr != nil || tx.accepted == 0) {
		// Known refused before DATA: nothing more is sent for it.
		return c.resolve(tx, nil, done)
	}
	if !c.pending(tx) {
		return done
	}
	if c.ext.Chunking {
		done = c.sendChunks(tx, done)
	} else {
		done = c.sendData(tx, done)
	}
	if len(c.flight) >= PipelineDepth {
		done = c.receive(done, 1)
	}
	return done
}

// mailParams are MAIL's parameters for tx.
func (c *Conn) mailParams(tx *Tx) string {
	var p string
	if c.ext.Size > 0 && tx.Size > 0 {
		p += " SIZE=" + strconv.FormatInt(tx.Size, 10)
	}
	if c.ext.EightBitMIME {
		p += " BODY=8BITMIME"
	}
	if tx.UTF8 && c.ext.SMTPUTF8 {
		p += " SMTPUTF8"
	}
	return p
}

// sendData sends DATA, waits for its 354 (and so for every earlier reply)
// and sends the content and the end of data.
func (c *Conn) sendData(tx *Tx, done []Done) []Done {
	c.owe(tx, kindData, "DATA", "DATA")
	done = c.sync(done)
	if !c.pending(tx) {
		return done
	}
	if tx.mailErr != nil || tx.accepted == 0 {
		// 354 although nothing was accepted: the end of data at once, with
		// no content (RFC 2920 §3.1).
		c.owe(tx, kindEnd, "end of data", ".")
		return c.syncUnlessPipelining(done)
	}
	c.data.reset(c.w, true)
	err := tx.Content(c.data)
	if err == nil {
		err = c.data.finish()
	}
	if err != nil {
		// Mid-DATA there is no way out but closing the connection, before
		// the final "." that would complete a message not read whole.
		return c.abandon(tx, err, done)
	}
	c.write(crlf) // the last line's break, held back by the dataWriter
	c.owe(tx, kindEnd, "end of data", ".")
	return c.syncUnlessPipelining(done)
}

// sendChunks sends the content in BDAT chunks, the last one with LAST.
func (c *Conn) sendChunks(tx *Tx, done []Done) []Done {
	c.chunk.tx, c.chunk.done = tx, done
	c.data.reset(&c.chunk, false)
	err := tx.Content(c.data)
	var tail []byte
	if err == nil {
		tail, err = c.data.tail()
	}
	done = c.chunk.done
	if err != nil {
		// The replies owed so far are read (those of earlier transactions
		// too) before the connection closes without the LAST chunk, which
		// the server then never receives.
		return c.abandon(tx, err, c.sync(done))
	}
	c.owe(tx, kindEnd, "end of data", "BDAT "+strconv.Itoa(len(tail))+" LAST")
	c.write(tail)
	return c.syncUnlessPipelining(done)
}

// chunker writes each buffer the dataWriter flushes as one BDAT chunk.
type chunker struct {
	c    *Conn
	tx   *Tx
	done []Done
}

func (k *chunker) Write(p []byte) (int, error) {
	c := k.c
	c.owe(k.tx, kindChunk, "BDAT", "BDAT "+strconv.Itoa(len(p)))
	c.write(p)
	k.done = c.syncUnlessPipelining(k.done)
	if c.err != nil {
		return 0, c.err
	}
	return len(p), nil
}

// abandon ends tx, whose content failed with err: a writer's error is the
// session's; any other is the source's, and the connection is closed so
// that the server never completes the message.
func (c *Conn) abandon(tx *Tx, err error, done []Done) []Done {
	if c.err == nil {
		c.fail(&Error{Command: "message source", Err: err})
		c.conn.Close()
	}
	return c.failAll(done)
}

// owe writes a command line and notes the reply it is owed.
func (c *Conn) owe(tx *Tx, k kind, cmd, line string) {
	c.owed = append(c.owed, owed{tx: tx, kind: k, cmd: cmd})
	c.write([]byte(line))
	c.write(crlf)
}

// write buffers p; a failure ends the session.
func (c *Conn) write(p []byte) {
	if c.err != nil {
		return
	}
	if _, err := c.w.Write(p); err != nil {
		c.fail(&Error{Command: "write", Err: err})
	}
}

// pending reports whether tx is still in flight.
func (c *Conn) pending(tx *Tx) bool {
	for _, t := range c.flight {
		if t == tx {
			return true
		}
	}
	return false
}

// Flush sends what is buffered, so that the server sees the transactions
// sent so far while the caller waits for something else.
func (c *Conn) Flush(ctx context.Context) error {
	release := c.dc.bind(ctx)
	defer release()
	c.flush()
	return c.err
}

func (c *Conn) flush() {
	if c.err != nil {
		return
	}
	if err := c.w.Flush(); err != nil {
		c.fail(&Error{Command: "write", Err: err})
	}
}

// InFlight is the number of transactions sent whose outcome is not known.
func (c *Conn) InFlight() int { return len(c.flight) }

// Receive waits for the outcomes of the n oldest transactions in flight (of
// all of them when fewer are) and returns them, and any others read with
// them.
func (c *Conn) Receive(ctx context.Context, n int) []Done {
	release := c.dc.bind(ctx)
	defer release()
	return c.receive(nil, n)
}

func (c *Conn) receive(done []Done, n int) []Done {
	c.flush()
	for target := len(done) + min(n, len(c.flight)); len(done) < target && len(c.owed) > 0 && c.err == nil; {
		done = c.readOne(done)
	}
	return c.failAll(done)
}

// syncUnlessPipelining reads every reply owed when the server does not
// pipeline: each command waits for its reply (RFC 2920 §3.1 otherwise).
func (c *Conn) syncUnlessPipelining(done []Done) []Done {
	if c.ext.Pipelining {
		return done
	}
	return c.sync(done)
}

// sync reads every reply owed.
func (c *Conn) sync(done []Done) []Done {
	c.flush()
	for len(c.owed) > 0 && c.err == nil {
		done = c.readOne(done)
	}
	return c.failAll(done)
}

// readOne reads the next reply owed and applies it.
func (c *Conn) readOne(done []Done) []Done {
	o := c.owed[0]
	r, err := c.readReply()
	if err != nil {
		c.fail(&Error{Command: o.cmd, Err: err})
		return done
	}
	c.owed = c.owed[1:]
	ok := r.code/100 == 2
	tx := o.tx
	switch o.kind {
	case kindReset:
		if !ok {
			c.fail(r.err(o.cmd))
		}
	case kindMail:
		if !ok {
			tx.mailErr = r.err(o.cmd)
		}
	case kindRcpt:
		if ok {
			tx.accepted++
		} else {
			tx.refused = append(tx.refused, r.err(o.cmd))
		}
	case kindData:
		if r.code != 354 {
			tx.dataErr = r.err(o.cmd)
			done = c.resolve(tx, nil, done)
		}
	case kindChunk:
		if !ok && tx.dataErr == nil {
			tx.dataErr = r.err(o.cmd)
		}
	case kindEnd:
		var final *Error
		if !ok {
			final = r.err(o.cmd)
		}
		done = c.resolve(tx, final, done)
	}
	if r.code == 421 {
		// RFC 5321 §3.8: the server closes the session; nothing after this
		// reply was taken.
		c.fail(r.err(o.cmd))
	}
	return done
}

// resolve ends tx, whose final reply was final (nil: 2xx), with the first
// failure among its replies, and removes it from the flight.
func (c *Conn) resolve(tx *Tx, final *Error, done []Done) []Done {
	i := 0
	for i < len(c.flight) && c.flight[i] != tx {
		i++
	}
	if i == len(c.flight) {
		return done
	}
	c.flight = append(c.flight[:i], c.flight[i+1:]...)
	d := Done{Tx: tx}
	switch {
	case tx.mailErr != nil:
		d.Err = tx.mailErr
	case tx.accepted == 0 && len(tx.refused) > 0:
		d.Err = tx.refused[0]
	case tx.dataErr != nil:
		d.Err = tx.dataErr
	case final != nil:
		d.Err = final
	default:
		d.Refused = tx.refused
		if len(c.flight) == 0 {
			c.reset = false // the session is between transactions
		}
	}
	return append(done, d)
}

// failAll ends every transaction in flight with the session's failure once
// it has one: their outcome is unknown (or, after a 421, they were not
// taken).
func (c *Conn) failAll(done []Done) []Done {
	if c.err == nil {
		return done
	}
	for _, tx := range c.flight {
		done = append(done, Done{Tx: tx, Err: c.err})
	}
	c.flight, c.owed = nil, nil
	return done
}
