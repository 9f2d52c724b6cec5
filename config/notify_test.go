package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNotify: the notify block's defaults, its values, and each error
// with its key and line.
func TestNotify(t *testing.T) {
	cfg, err := Parse([]byte(minimal), "config.yaml")
	if err != nil || cfg.Mailboxes[0].Notify != nil {
		t.Fatalf("without notify: Notify = %+v, %v; want nil (off)", cfg.Mailboxes[0].Notify, err)
	}
	cfg, err = Parse([]byte(minimal+"    notify:\n      from: noreply@example.com\n"), "config.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	nt := cfg.Mailboxes[0].Notify
	if nt == nil || nt.From != "noreply@example.com" || !slices.Equal(nt.Classes, []string{"encrypted"}) || nt.Period != 7*24*time.Hour || nt.SMTP != nil {
		t.Errorf("defaults: %+v", nt)
	}
	full := minimal + `    notify:
      from: noreply@example.com
      classes: [encrypted, forward_failed]
      template_file: /etc/mailtriage/notice.txt
      html_template_file: /etc/mailtriage/notice.html
      operator_line: Use our upload page.
      period: 24h
      apple_relay_registered: true
      smtp:
        address: smtp2.example.com
`
	cfg, err = Parse([]byte(full), "config.yaml")
	if err != nil {
		t.Fatalf("Parse full: %v", err)
	}
	nt = cfg.Mailboxes[0].Notify
	if !slices.Equal(nt.Classes, []string{"encrypted", "forward_failed"}) || nt.Period != 24*time.Hour || !nt.AppleRelayRegistered ||
		nt.OperatorLine != "Use our upload page." || nt.TemplateFile == "" || nt.HTMLTemplateFile == "" || nt.SMTP == nil || nt.SMTP.Address != "smtp2.example.com:587" {
		t.Errorf("values: %+v", nt)
	}

	tests := []struct {
		name  string
		block string
		want  string
	}{
		{"from missing", "      classes: [encrypted]\n", `config.yaml:13: mailboxes[0].notify.from: required key missing`},
		{"from with a name", "      from: \"Desk <d@example.com>\"\n", `config.yaml:13: mailboxes[0].notify.from: "Desk <d@example.com>" is not a bare e-mail address`},
		{"bad class", "      from: d@example.com\n      classes: [encrypted, spam]\n", `config.yaml:14: mailboxes[0].notify.classes[1]: "spam" is not one of encrypted, unparseable, forward_failed`},
		{"no class", "      from: d@example.com\n      classes: []\n", `config.yaml:14: mailboxes[0].notify.classes: must list at least one`},
		{"period too short", "      from: d@example.com\n      period: 1m\n", `config.yaml:14: mailboxes[0].notify.period: 1m0s is shorter than 1h0m0s`},
		{"operator line of two lines", "      from: d@example.com\n      operator_line: \"a\\nb\"\n", `config.yaml:14: mailboxes[0].notify.operator_line: must be one line`},
		{"unknown key", "      from: d@example.com\n      daily: true\n", `config.yaml:14: mailboxes[0].notify.daily: unknown key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal+"    notify:\n"+tt.block), "config.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v; want it to hold %q", err, tt.want)
			}
		})
	}
}

// TestDigest: the digest block's defaults and errors.
func TestDigest(t *testing.T) {
	cfg, err := Parse([]byte(minimal+"    digest:\n      to: [ops@example.com]\n"), "config.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if dg := cfg.Mailboxes[0].Digest; dg == nil || !slices.Equal(dg.To, []string{"ops@example.com"}) || dg.From != "" || dg.Period != 24*time.Hour {
		t.Errorf("defaults: %+v", dg)
	}
	tests := []struct{ name, block, want string }{
		{"to missing", "      period: 24h\n", `config.yaml:13: mailboxes[0].digest.to: required key missing`},
		{"to empty", "      to: []\n", `config.yaml:13: mailboxes[0].digest.to: must list at least one address`},
		{"bad to", "      to: [ops]\n", `config.yaml:13: mailboxes[0].digest.to[0]: "ops" is not a bare e-mail address`},
		{"bad from", "      to: [o@example.com]\n      from: x\n", `config.yaml:14: mailboxes[0].digest.from: "x" is not a bare e-mail address`},
		{"period too short", "      to: [o@example.com]\n      period: 5m\n", `config.yaml:14: mailboxes[0].digest.period: 5m0s is shorter than 1h0m0s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal+"    digest:\n"+tt.block), "config.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v; want it to hold %q", err, tt.want)
			}
		})
	}
}
