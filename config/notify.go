package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Notify and digest defaults.
const (
	DefaultNotifyPeriod = 7 * 24 * time.Hour // RFC 3834 §2: at most one response per sender in a period such as a week
	DefaultDigestPeriod = 24 * time.Hour
	minNotifyPeriod     = time.Hour
	maxOperatorLine     = 500
)

// notifyClasses are the values of notify.classes.
func notifyClasses() []string { return []string{"encrypted", "unparseable", "forward_failed"} }

// Notify turns on the notice to the sender of mail that was not passed on
// (package notify). Its presence turns it on.
type Notify struct {
	From                 string        `json:"from"`    // addr-spec; the notice's From, never the customer's
	Classes              []string      `json:"classes"` // encrypted | unparseable | forward_failed
	TemplateFile         string        `json:"template_file,omitempty"`
	HTMLTemplateFile     string        `json:"html_template_file,omitempty"`
	OperatorLine         string        `json:"operator_line,omitempty"`
	Period               time.Duration `json:"period"`
	AppleRelayRegistered bool          `json:"apple_relay_registered"`
	SMTP                 *Server       `json:"smtp,omitempty"` // nil: forward.smtp
}

func (d *decoder) notify(n *yaml.Node, path string) *Notify {
	nt := &Notify{Classes: []string{"encrypted"}, Period: DefaultNotifyPeriod}
	seen := d.mapping(n, path, []field{
		{key: "from", required: true, decode: d.setStr(&nt.From)},
		{key: "classes", decode: func(n *yaml.Node, p string) { nt.Classes, _ = d.strList(n, p) }},
		{key: "template_file", decode: d.setStr(&nt.TemplateFile)},
		{key: "html_template_file", decode: d.setStr(&nt.HTMLTemplateFile)},
		{key: "operator_line", decode: d.setStr(&nt.OperatorLine)},
		{key: "period", decode: d.duration(&nt.Period, minNotifyPeriod)},
		{key: "apple_relay_registered", decode: d.setBool(&nt.AppleRelayRegistered)},
		{key: "smtp", decode: func(n *yaml.Node, p string) { s := d.server(n, p, smtpServer()); nt.SMTP = &s }},
	})
	d.envelope(seen, path, nil, &nt.From)
	if v, ok := seen["classes"]; ok {
		if len(nt.Classes) == 0 {
			d.errorf(v, join(path, "classes"), "must list at least one of encrypted, unparseable, forward_failed")
		}
		for i, c := range nt.Classes {
			if !slices.Contains(notifyClasses(), c) {
				d.errorf(v, fmt.Sprintf("%s.classes[%d]", path, i), "%q is not one of encrypted, unparseable, forward_failed", c)
			}
		}
	}
	if v, ok := seen["operator_line"]; ok && (len(nt.OperatorLine) > maxOperatorLine || strings.ContainsAny(nt.OperatorLine, "\r\n\x00")) {
		d.errorf(v, join(path, "operator_line"), "must be one line of at most %d characters", maxOperatorLine)
	}
	return nt
}

// Digest turns on the review folder's digest to operators. Its presence
// turns it on.
type Digest struct {
	To     []string      `json:"to"`   // addr-specs
	From   string        `json:"from"` // addr-spec; forward.from when absent
	Period time.Duration `json:"period"`
}

func (d *decoder) digest(n *yaml.Node, path string) *Digest {
	dg := &Digest{Period: DefaultDigestPeriod}
	seen := d.mapping(n, path, []field{
		{key: "to", required: true, decode: func(n *yaml.Node, p string) { dg.To, _ = d.strList(n, p) }},
		{key: "from", decode: d.setStr(&dg.From)},
		{key: "period", decode: d.duration(&dg.Period, minNotifyPeriod)},
	})
	d.envelope(seen, path, dg.To, &dg.From)
	return dg
}
