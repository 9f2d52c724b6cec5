package smtpclient

import (
	"fmt"
	"strings"
)

// Error is a failed command: the server's reply to it, or the local or
// network failure that ended the session. Its shape is mox's smtpclient
// error's: Permanent, Code, Secode, Command, Line.
type Error struct {
	Permanent bool   // a 5xx reply
	Code      int    // the reply code; 0 when the server did not answer
	Secode    string // the enhanced status code (RFC 3463, RFC 2034) "5.7.1", "" when none
	Command   string // what was refused: greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, BDAT, end of data, RSET, QUIT
	Line      string // the reply's text (its lines joined with " "), without code and enhanced code, sanitized
	Err       error  // the local or network failure when Code is 0
}

// Error implements error.
func (e *Error) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("smtp %s: %v", e.Command, e.Err)
	}
	if e.Secode != "" {
		return fmt.Sprintf("smtp %s: %d %s %s", e.Command, e.Code, e.Secode, e.Line)
	}
	return fmt.Sprintf("smtp %s: %d %s", e.Command, e.Code, e.Line)
}

// Unwrap returns the local or network failure.
func (e *Error) Unwrap() error { return e.Err }

// Class is the first two parts of Secode as numbers, {5, 7} of "5.7.1";
// zeros when there is none.
func (e *Error) Class() [2]int {
	var c [2]int
	parts := strings.SplitN(e.Secode, ".", 3)
	if len(parts) < 2 {
		return c
	}
	for i := range 2 {
		for _, d := range parts[i] {
			c[i] = c[i]*10 + int(d-'0')
		}
	}
	return c
}
