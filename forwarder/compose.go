package forwarder

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/mailheader"
)

// wrapping is what the forwarder puts around one original message.
type wrapping struct {
	header   string // redirect: annotation and Resent-* block; attach: the new message's header
	summary  string // attach: the text part, quoted-printable encoded
	boundary string // attach: the multipart/mixed boundary
	eightBit bool   // attach: the original part is declared 8bit (the server offers 8BITMIME)
}

// partOverhead bounds what attach mode adds besides header and summary: the
// three boundary lines and the two part headers.
const partOverhead = 512

// wrap prepares the wrapping of the configured mode for v; idDomain is the
// right side of the Message-ID it writes.
func (f *Forwarder) wrap(v analyzer.Verdict, released, eightBit bool, idDomain string) wrapping {
	now := time.Now()
	if f.cfg.Mode == ModeRedirect {
		return wrapping{header: Annotation(v, released) + resent(f.cfg.From, f.cfg.To, idDomain, now)}
	}
	var r [12]byte
	rand.Read(r[:])
	boundary := "mailtriage-" + hex.EncodeToString(r[:])
	var qp strings.Builder
	w := quotedprintable.NewWriter(&qp)
	io.WriteString(w, summary(v, released))
	w.Close()
	return wrapping{
		header: Annotation(v, released) +
			mailheader.Field("From", f.cfg.From) +
			mailheader.Field("To", strings.Join(f.cfg.To, ", ")) +
			mailheader.Field("Subject", "[mailtriage] "+mailheader.EncodeText(v.Subject)) +
			mailheader.Field("Date", mailheader.Date(now)) +
			mailheader.Field("Message-ID", mailheader.MessageID(idDomain)) +
			mailheader.Field("MIME-Version", "1.0") +
			mailheader.Field("Content-Type", `multipart/mixed; boundary="`+boundary+`"`),
		summary:  qp.String(),
		boundary: boundary,
		eightBit: eightBit,
	}
}

// overhead is the number of octets the wrapping adds to the original, or a
// little more.
func (m wrapping) overhead() int64 {
	if m.boundary == "" {
		return int64(len(m.header))
	}
	return int64(len(m.header)+len(m.summary)) + partOverhead
}

// write streams the wrapped original from src into w.
func (m wrapping) write(w io.Writer, src io.Reader) error {
	if _, err := io.WriteString(w, m.header); err != nil {
		return err
	}
	if m.boundary == "" {
		_, err := io.Copy(w, src)
		return err
	}
	if _, err := io.WriteString(w, "\r\n"); err != nil {
		return err
	}
	mw := textproto.NewMultipartWriter(w)
	if err := mw.SetBoundary(m.boundary); err != nil {
		return err
	}
	var text textproto.Header
	text.Set("Content-Transfer-Encoding", "quoted-printable")
	text.Set("Content-Type", "text/plain; charset=utf-8")
	pw, err := mw.CreatePart(text)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(pw, m.summary); err != nil {
		return err
	}
	// RFC 2046 §5.2.1: message/rfc822 takes no encoding but 7bit, 8bit or binary.
	var orig textproto.Header
	if m.eightBit {
		orig.Set("Content-Transfer-Encoding", "8bit")
	}
	orig.Set("Content-Disposition", `attachment; filename="original.eml"`)
	orig.Set("Content-Type", "message/rfc822")
	if pw, err = mw.CreatePart(orig); err != nil {
		return err
	}
	if _, err := io.Copy(pw, src); err != nil {
		return err
	}
	return mw.Close()
}
