package analyzer

import (
	"bytes"
	"fmt"
)

// A line of a header block ends at LF, here as on the IMAP server and in
// the forwarder, which drops the CRs that end a line ("\r\r\n", as some
// mailers write) and sends any other CR, a bare one, as "?" (SMTP must not
// carry it, RFC 5321 §2.3.8). Other readers take a bare CR for a line break
// or for white space, and split the header into other fields: the CR of
// "Subject: x\rContent-Type: multipart/encrypted" gave the helpdesk a
// Content-Type nobody had classified. A bare CR or a NUL (RFC 5322 §2.2
// allows neither) inside a header line therefore makes the message
// unparseable, with the reason, rather than judged on lines that are not
// the ones every reader sees.

// lineEndProblems returns the problem of a header block, up to its first
// empty line and within lim.MaxHeaderBytes, that holds a bare CR or a NUL
// inside a line, or a line of CRs alone.
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
		case len(body) == 0:
			// "\r\r\n": empty once its CRs are dropped, as the forwarder
			// drops them; no end of the header here.
			return []string{fmt.Sprintf("%s: header line %d is empty but for CRs, the end of the header to some readers and not to others", what, n)}
		case bytes.IndexByte(body, '\r') >= 0:
			return []string{fmt.Sprintf("%s: header line %d holds a bare CR, a line break to some readers and none to others", what, n)}
		case bytes.IndexByte(body, 0) >= 0:
			return []string{fmt.Sprintf("%s: header line %d holds a NUL octet", what, n)}
		}
	}
	return nil
}
