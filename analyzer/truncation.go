package analyzer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// ErrTruncated is wrapped by the error a CloseCheck reader returns at the end
// of a multipart message whose close delimiter never came: the message was
// cut short (RFC 2046 section 5.1.1).
var ErrTruncated = errors.New("ends without its close delimiter (truncated)")

// TruncationError says which multipart lacks its close delimiter.
type TruncationError struct {
	Type string // the root's media type, e.g. multipart/mixed
}

func (e *TruncationError) Error() string {
	return fmt.Sprintf("part root: %s %v", e.Type, ErrTruncated)
}

func (e *TruncationError) Unwrap() error { return ErrTruncated }

// CloseCheck returns a reader of a whole message (BODY[]) that fails with a
// *TruncationError at the end of input when the message is multipart and
// the close delimiter of its root ("--boundary--" at the start of a line)
// never came.
//
// FromRaw sees a missing close delimiter while it parses; FromIMAP cannot,
// because servers describe in BODYSTRUCTURE the parts they found. The poller
// streams the body of every message it forwards, so it checks there, before
// the SMTP transaction is completed, and flags the message as FromRaw would.
// A message that is not multipart, or whose BODYSTRUCTURE carries no
// boundary (no extension data), is passed through unchecked.
func CloseCheck(body io.Reader, bs imap.BodyStructure) io.Reader {
	mp, ok := bs.(*imap.BodyStructureMultiPart)
	if !ok || mp.Extended == nil {
		return body
	}
	boundary := mp.Extended.Params["boundary"]
	if boundary == "" {
		return body
	}
	return &closeCheck{
		r:       body,
		typ:     "multipart/" + strings.ToLower(mp.Subtype),
		pattern: []byte("\n--" + boundary + "--"),
	}
}

type closeCheck struct {
	r       io.Reader
	typ     string
	pattern []byte
	found   bool
	carry   []byte // the last len(pattern)-1 bytes read, for a match across reads
	joint   []byte // scratch: carry + the start of the next read
}

func (c *closeCheck) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if !c.found && n > 0 {
		c.scan(p[:n])
	}
	if err == io.EOF && !c.found {
		return n, &TruncationError{Type: c.typ}
	}
	return n, err
}

// scan looks for the pattern in b and across the joint with what came
// before it.
func (c *closeCheck) scan(b []byte) {
	keep := len(c.pattern) - 1
	if len(c.carry) > 0 {
		head := b[:min(len(b), keep)]
		c.joint = append(append(c.joint[:0], c.carry...), head...)
		if bytes.Contains(c.joint, c.pattern) {
			c.found = true
			return
		}
	}
	if bytes.Contains(b, c.pattern) {
		c.found = true
		return
	}
	if len(b) >= keep {
		c.carry = append(c.carry[:0], b[len(b)-keep:]...)
	} else {
		c.carry = append(c.carry, b...)
		if len(c.carry) > keep {
			c.carry = c.carry[len(c.carry)-keep:]
		}
	}
}

// MarkUnparseable turns v into the verdict of a message found broken after
// classification (see CloseCheck): encryption unparseable with reason first,
// class and action per p.
func (v *Verdict) MarkUnparseable(reason string, p Policy) {
	v.Encryption, v.EncryptionScheme = EncryptionUnparseable, ""
	v.Reasons = append([]string{reason}, v.Reasons...)
	v.Class = classOf(*v)
	v.Action = actionFor(p, v.Class)
}

// Action is what p says to do with class c, falling back to DefaultPolicy.
func (p Policy) Action(c Class) Action { return actionFor(p, c) }
