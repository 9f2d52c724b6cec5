package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/mailtriage/mailtriage/analyzer"
)

// Record is one line of `scan --json`, with the fields and spelling of
// DESIGN.md section 3.
type Record struct {
	File             string                `json:"file"`
	MessageID        string                `json:"message_id"`
	Encryption       analyzer.Encryption   `json:"encryption"`
	EncryptionScheme string                `json:"encryption_scheme"`
	TransportTLS     analyzer.TransportTLS `json:"transport_tls"`
	Relay            analyzer.Relay        `json:"relay"`
	RelayService     string                `json:"relay_service"`
	ReplyToTokenized bool                  `json:"reply_to_tokenized"`
	ThreadKey        string                `json:"thread_key"`
	Action           analyzer.Action       `json:"action"`
	Reasons          []string              `json:"reasons"` // never null
}

// NewRecord is the JSON record of verdict v of the message named file.
func NewRecord(file string, v analyzer.Verdict) Record {
	reasons := v.Reasons
	if reasons == nil {
		reasons = []string{}
	}
	return Record{
		File:             file,
		MessageID:        v.MessageID,
		Encryption:       v.Encryption,
		EncryptionScheme: v.EncryptionScheme,
		TransportTLS:     v.TransportTLS,
		Relay:            v.Relay,
		RelayService:     v.RelayService,
		ReplyToTokenized: v.ReplyToTokenized,
		ThreadKey:        v.ThreadKey,
		Action:           v.Action,
		Reasons:          reasons,
	}
}

// Output writes verdicts the way `scan` does, as they come: a table with a
// closing count, or with JSON one Record per line. `mailtriage run
// --dry-run` prints through it too.
type Output struct {
	out printer
	sum Summary
}

// NewOutput writes to w: JSON lines when jsonOut is set, else the table.
func NewOutput(w io.Writer, jsonOut bool) *Output {
	if jsonOut {
		return &Output{out: newJSONPrinter(w)}
	}
	return &Output{out: newTablePrinter(w)}
}

// Message writes the verdict v of the message named name and counts it.
func (o *Output) Message(name string, v analyzer.Verdict) error {
	o.sum.Messages++
	if v.Action == analyzer.ActionFlag {
		o.sum.Flagged++
	}
	return o.out.message(name, v)
}

// Finish writes the closing part (the table's count) and returns the counts.
func (o *Output) Finish() (Summary, error) {
	return o.sum, o.out.finish(o.sum)
}

// printer writes verdicts as they come and a closing part at the end.
type printer interface {
	message(file string, v analyzer.Verdict) error
	finish(sum Summary) error
}

// jsonPrinter writes one JSON object per line.
type jsonPrinter struct{ enc *json.Encoder }

func newJSONPrinter(w io.Writer) *jsonPrinter {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &jsonPrinter{enc: enc}
}

func (p *jsonPrinter) message(file string, v analyzer.Verdict) error {
	return p.enc.Encode(NewRecord(file, v))
}

func (p *jsonPrinter) finish(Summary) error { return nil }

// Table column limits, in runes.
const (
	fromWidth    = 36
	subjectWidth = 40
	whyWidth     = 72
	// tableFlushRows is how many rows the table aligns at a time, so a large
	// mbox does not pile its rows up in memory.
	tableFlushRows = 500
)

// tablePrinter writes aligned columns: file, from, subject, encryption,
// relay, tls, action, and why (Why of the reasons).
type tablePrinter struct {
	w    io.Writer
	tw   *tabwriter.Writer
	rows int
}

func newTablePrinter(w io.Writer) *tablePrinter {
	return &tablePrinter{w: w}
}

func (p *tablePrinter) message(file string, v analyzer.Verdict) error {
	if p.tw == nil {
		p.tw = tabwriter.NewWriter(p.w, 0, 8, 2, ' ', 0)
		if _, err := fmt.Fprintln(p.tw, "FILE\tFROM\tSUBJECT\tENCRYPTION\tRELAY\tTLS\tACTION\tWHY"); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
		cell(file, 0), cell(v.From, fromWidth), cell(v.Subject, subjectWidth),
		v.Encryption, relayCell(v), v.TransportTLS, v.Action, cell(Why(v.Reasons), whyWidth))
	if err != nil {
		return err
	}
	p.rows++
	if p.rows%tableFlushRows == 0 {
		return p.tw.Flush()
	}
	return nil
}

func (p *tablePrinter) finish(sum Summary) error {
	if p.tw != nil {
		if err := p.tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(p.w, "%s: %d to flag, %d to forward; %d unreadable\n",
		count(sum.Messages, "message"), sum.Flagged, sum.Messages-sum.Flagged, sum.Failed)
	return err
}

// Why is the reason a table shows for a verdict: the first one about the
// content or the sender, rather than the transport hops every message has
// ("" when there is none).
func Why(reasons []string) string {
	for _, r := range reasons {
		if !strings.HasPrefix(r, "Received hop") {
			return r
		}
	}
	if len(reasons) > 0 {
		return reasons[0]
	}
	return ""
}

// count spells n things: "1 message", "2 messages".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// relayCell is the relay class, its service and whether Reply-To is a token:
// "private/firefox-relay+token".
func relayCell(v analyzer.Verdict) string {
	s := string(v.Relay)
	if v.RelayService != "" {
		s += "/" + v.RelayService
	}
	if v.ReplyToTokenized {
		s += "+token"
	}
	return s
}

// cell makes s safe for one table cell: control characters and tabs become
// spaces, and s is cut to max runes (0: no limit) with an ellipsis.
func cell(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return "-"
	}
	if max > 0 {
		if r := []rune(s); len(r) > max {
			return string(r[:max-1]) + "…"
		}
	}
	return s
}
