package analyzer

import (
	"bytes"
	"fmt"
)

// A line of a header block ends at LF, here as on the IMAP server, and the
// forwarder sends a bare CR (one not ending its line) as a space, since SMTP
// must not carry it (RFC 5321 §2.3.8). Inside a line that changes how a
// reader of the forwarded copy splits it into fields: "Content-Type\r: x"
// is no field here but "Content-Type : x" there (RFC 5322 §4.5.1 allows
// white space before the colon), and "\rContent-Type: x" continues the
// field before it. A bare CR or a NUL (RFC 5322 §2.2 allows neither) within
// a header line therefore makes the message unparseable, with the reason,
// rather than judged on lines that are not the ones the helpdesk reads. CRs
// that only end a line ("\r\r\n", as some mailers write) become trailing
// white space and are left alone.

// lineEndProblems returns the problem of a header block, up to its first
// empty line and within lim.MaxHeaderBytes, that holds a bare CR or a NUL
// inside a line.
func lineEndProblems(block []byte, lim Limits, what string) []string {
	consumed := 0
	for n := 1; len(block) > 0 && consumed <= lim.MaxHeaderBytes; n++ {
		line := block
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line, block = block[:i], block[i+1:]
		} else {
			block = nil
		}
		consumed += len(line) + 1
		if len(trimCR(line)) == 0 {
			return nil // the end of the block
		}
		body := bytes.TrimRight(line, "\r")
		switch {
		case bytes.IndexByte(body, '\r') >= 0:
			return []string{fmt.Sprintf("%s: header line %d holds a bare CR, which the forwarded copy would read as white space", what, n)}
		case bytes.IndexByte(body, 0) >= 0:
			return []string{fmt.Sprintf("%s: header line %d holds a NUL octet", what, n)}
		}
	}
	return nil
}
