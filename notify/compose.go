package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	htmltemplate "html/template"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/mailheader"
)

// DefaultText is the notice's text when no template_file is set.
const DefaultText = `Hello,

we received your message

  Subject: {{.Subject}}
  Date:    {{.Date}}

but could not pass it on to our support team: {{.Reason}}.
The message is kept, unread, for a person to look at.
{{if .Operator}}
{{.Operator}}
{{end}}
This notice was sent automatically, once per sender and week at most.
`

// Templates are the notice's text and, when set, HTML bodies. Both see a
// TemplateData value.
type Templates struct {
	Text *texttemplate.Template
	HTML *htmltemplate.Template // nil: text only
}

// TemplateData is what a template may use.
type TemplateData struct {
	Subject  string // the original subject, decoded
	Date     string // the original Date, as written
	Reason   string // why it was not passed on, in plain words
	Operator string // notify.operator_line
}

// LoadTemplates reads the text template from textFile (DefaultText when
// "") and the HTML one from htmlFile ("" for none).
func LoadTemplates(textFile, htmlFile string) (Templates, error) {
	text := DefaultText
	if textFile != "" {
		b, err := os.ReadFile(textFile)
		if err != nil {
			return Templates{}, fmt.Errorf("notice template: %w", err)
		}
		text = string(b)
	}
	var t Templates
	var err error
	if t.Text, err = texttemplate.New("text").Option("missingkey=error").Parse(text); err != nil {
		return Templates{}, fmt.Errorf("notice template %s: %w", orDefault(textFile, "(built in)"), err)
	}
	if htmlFile != "" {
		b, err := os.ReadFile(htmlFile)
		if err != nil {
			return Templates{}, fmt.Errorf("notice HTML template: %w", err)
		}
		if t.HTML, err = htmltemplate.New("html").Option("missingkey=error").Parse(string(b)); err != nil {
			return Templates{}, fmt.Errorf("notice HTML template %s: %w", htmlFile, err)
		}
	}
	// Rendered once with sample fields, so that a template naming a field
	// that does not exist fails at start, not at the first notice.
	if _, _, err := t.render(TemplateData{Subject: "s", Date: "d", Reason: "r", Operator: "o"}); err != nil {
		return Templates{}, err
	}
	return t, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (t Templates) render(f TemplateData) (text, html string, err error) {
	var b strings.Builder
	if err := t.Text.Execute(&b, f); err != nil {
		return "", "", fmt.Errorf("notice template: %w", err)
	}
	text = b.String()
	if t.HTML != nil {
		b.Reset()
		if err := t.HTML.Execute(&b, f); err != nil {
			return "", "", fmt.Errorf("notice HTML template: %w", err)
		}
		html = b.String()
	}
	return text, html, nil
}

// reasonWords says in plain words why a message of class c with verdict v
// was not passed on.
func reasonWords(c Class, v analyzer.Verdict) string {
	switch c {
	case ClassForwardFailed:
		return "our helpdesk system refused to accept it"
	case ClassUnparseable:
		return "its format could not be read (it looks damaged or cut short)"
	}
	switch v.Encryption {
	case analyzer.EncryptionSMIMEEncrypted:
		return "it is encrypted with S/MIME, and our helpdesk cannot read encrypted mail"
	case analyzer.EncryptionPGPEncrypted:
		return "it is encrypted with PGP, and our helpdesk cannot read encrypted mail"
	case analyzer.EncryptionProprietaryEncrypted:
		return "it came as a secure-message portal notice, which our helpdesk cannot open"
	}
	return "it is encrypted, and our helpdesk cannot read encrypted mail"
}

// notice is one notice to compose.
type notice struct {
	from, to string
	host     string
	now      time.Time
	class    Class
	header   analyzer.Header // the original's kept fields
	verdict  analyzer.Verdict
	operator string
}

// maxReferences bounds the References of a notice: the thread's root and
// the latest IDs (RFC 5322 §3.6.4 lets a reply trim the middle).
const maxReferences = 10

// compose writes the notice: From our address, To the sender, an "Auto:"
// subject, In-Reply-To and References (RFC 3834 §3.1, RFC 5322 §3.6.4),
// Auto-Submitted: auto-replied (RFC 3834 §5) and X-Auto-Response-Suppress:
// All so that Exchange's own responders stay quiet; a text body, and an
// HTML alternative when there is a template.
func (t Templates) compose(n notice) ([]byte, error) {
	v := n.verdict
	text, html, err := t.render(TemplateData{
		Subject:  mailheader.Sanitize(v.Subject),
		Date:     mailheader.Sanitize(n.header.Get("Date")),
		Reason:   reasonWords(n.class, v),
		Operator: n.operator,
	})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	field := func(name, value string) { b.WriteString(mailheader.Field(name, value)) }
	field("From", n.from)
	field("To", n.to)
	subject := "Auto: " + mailheader.EncodeText(orDefault(v.Subject, "your message"))
	field("Subject", subject)
	field("Date", mailheader.Date(n.now))
	field("Message-ID", mailheader.MessageID(n.host))
	if id := msgID(v.MessageID); id != "" {
		field("In-Reply-To", id)
		field("References", references(v.References, id))
	}
	field("Auto-Submitted", "auto-replied")
	field("X-Auto-Response-Suppress", "All")
	field("MIME-Version", "1.0")
	if html == "" {
		writePart(&b, "text/plain; charset=utf-8", text)
		return b.Bytes(), nil
	}
	boundary := randomBoundary()
	field("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	for _, p := range []struct{ ctype, body string }{{"text/plain; charset=utf-8", text}, {"text/html; charset=utf-8", html}} {
		b.WriteString("--" + boundary + "\r\n")
		writePart(&b, p.ctype, p.body)
		b.WriteString("\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

// writePart writes a Content-Type, quoted-printable encoding and body.
func writePart(b *bytes.Buffer, ctype, body string) {
	b.WriteString(mailheader.Field("Content-Type", ctype))
	b.WriteString(mailheader.Field("Content-Transfer-Encoding", "quoted-printable"))
	b.WriteString("\r\n")
	w := quotedprintable.NewWriter(b)
	io.WriteString(w, strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n"))
	w.Close()
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
}

// msgID is <id> for a Message-ID without brackets, "" when it has none
// or holds what a msg-id cannot.
func msgID(id string) string {
	id = strings.Map(mailheader.MsgIDRune, mailheader.Sanitize(id))
	if id == "" || !strings.Contains(id, "@") {
		return ""
	}
	return "<" + id + ">"
}

// references is the original's References (root first, at most
// maxReferences) followed by its Message-ID.
func references(refs []string, id string) string {
	var ids []string
	for _, r := range refs {
		if m := msgID(r); m != "" {
			ids = append(ids, m)
		}
	}
	if len(ids) > maxReferences-1 {
		ids = append(ids[:1], ids[len(ids)-(maxReferences-2):]...)
	}
	return strings.Join(append(ids, id), " ")
}

func randomBoundary() string {
	var r [12]byte
	rand.Read(r[:])
	return "mailtriage-" + hex.EncodeToString(r[:])
}

// checkFrom accepts one bare address for notify.from.
func checkFrom(from string) error {
	a, err := mail.ParseAddress(from)
	if err != nil || a.Address != from || a.Name != "" {
		return fmt.Errorf("notify: from %q is not a bare mail address", from)
	}
	return nil
}
