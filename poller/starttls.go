package poller

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// maxGreetingLine bounds a line of the plaintext exchange before TLS.
const maxGreetingLine = 8 << 10

// startTLS negotiates STARTTLS on raw itself (RFC 9051 section 6.2.1,
// RFC 2595) rather than through imapclient.NewStartTLS, so that the
// nesting guard can sit between the TLS connection and the client: it
// reads the greeting, sends STARTTLS, waits for its tagged OK and shakes
// hands. Octets that follow the OK in the clear are refused (a plaintext
// command injection would otherwise be read as if it came over TLS), and
// what the server said before TLS, its capabilities included, is
// forgotten: the client asks again over TLS.
func startTLS(ctx context.Context, raw net.Conn, config *tls.Config) (*tls.Conn, error) {
	br := bufio.NewReaderSize(raw, 512)
	greeting, err := readPlainLine(br)
	if err != nil {
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if !strings.HasPrefix(strings.ToUpper(greeting), "* OK") {
		return nil, fmt.Errorf("greeting %q: not OK", truncate(greeting))
	}
	const tag = "T1"
	if _, err := io.WriteString(raw, tag+" STARTTLS\r\n"); err != nil {
		return nil, fmt.Errorf("send STARTTLS: %w", err)
	}
	for {
		line, err := readPlainLine(br)
		if err != nil {
			return nil, fmt.Errorf("STARTTLS: %w", err)
		}
		if strings.HasPrefix(line, "* ") {
			continue // untagged data (a CAPABILITY) is forgotten anyway
		}
		status, _, _ := strings.Cut(strings.TrimPrefix(line, tag+" "), " ")
		if !strings.HasPrefix(line, tag+" ") || !strings.EqualFold(status, "OK") {
			return nil, fmt.Errorf("STARTTLS refused: %q", truncate(line))
		}
		break
	}
	if br.Buffered() > 0 {
		return nil, errors.New("STARTTLS: the server sent data in the clear after its OK")
	}
	tc := tls.Client(raw, config)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake after STARTTLS: %w", err)
	}
	return tc, nil
}

// readPlainLine reads one CRLF-terminated line of at most maxGreetingLine.
func readPlainLine(br *bufio.Reader) (string, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxGreetingLine {
			return "", fmt.Errorf("line longer than %d octets", maxGreetingLine)
		}
		if err == nil {
			return strings.TrimRight(string(line), "\r\n"), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
}

// truncate shortens a server line for an error message.
func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// greeted is the TLS connection after STARTTLS, read as if the server had
// greeted the client over it (an IMAP client expects a greeting first, and
// the real one came in the clear).
type greeted struct {
	net.Conn
	greeting io.Reader
}

func afterStartTLS(tc *tls.Conn) *greeted {
	return &greeted{Conn: tc, greeting: strings.NewReader("* OK TLS started\r\n")}
}

func (g *greeted) Read(b []byte) (int, error) {
	if n, _ := g.greeting.Read(b); n > 0 {
		return n, nil
	}
	return g.Conn.Read(b)
}
