package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestSessions: connections, max_per_minute and max_per_day in
// forward.smtp (route smtp) and forward.mx (route mx), their defaults, and
// every broken value with the line it is on. minimal's forward.smtp block
// ends at line 11, so a key appended to it is on line 12.
func TestSessions(t *testing.T) {
	smtp := func(keys string) string { return minimal + keys }
	mx := func(keys string) string {
		return strings.Replace(minimal, "      smtp:\n        address: smtp.example.com\n", "      route: mx\n      mx:\n"+keys, 1)
	}
	tests := []struct {
		name string
		yaml string
		want Sessions // of the route's block, when the file is valid
		errs []string // the exact error lines, when it is not
	}{
		{name: "smtp defaults", yaml: minimal, want: Sessions{Connections: 3}},
		{name: "smtp, every key", yaml: smtp("        connections: 3\n        max_per_minute: 30\n        max_per_day: 10000\n"),
			want: Sessions{Connections: 3, MaxPerMinute: 30, MaxPerDay: 10000}},
		{name: "smtp, one connection", yaml: smtp("        connections: 1\n"), want: Sessions{Connections: 1}},
		{name: "smtp, the most connections", yaml: smtp("        connections: 20\n"), want: Sessions{Connections: 20}},
		{name: "smtp, 0 is no limit", yaml: smtp("        max_per_minute: 0\n        max_per_day: 0\n"), want: Sessions{Connections: 3}},
		{name: "smtp, a day limit alone", yaml: smtp("        max_per_day: 2000\n"), want: Sessions{Connections: 3, MaxPerDay: 2000}},
		{name: "mx without a block", yaml: strings.Replace(minimal, "      smtp:\n        address: smtp.example.com\n", "      route: mx\n", 1),
			want: Sessions{Connections: 3}},
		{name: "mx, every key", yaml: mx("        connections: 5\n        max_per_minute: 100\n        max_per_day: 50000\n"),
			want: Sessions{Connections: 5, MaxPerMinute: 100, MaxPerDay: 50000}},

		{name: "smtp, no connections", yaml: smtp("        connections: 0\n"),
			errs: []string{`config.yaml:12: mailboxes[0].forward.smtp.connections: 0 is out of range 1..20`}},
		{name: "smtp, too many connections", yaml: smtp("        connections: 21\n"),
			errs: []string{`config.yaml:12: mailboxes[0].forward.smtp.connections: 21 is out of range 1..20`}},
		{name: "smtp, connections not a number", yaml: smtp("        connections: three\n"),
			errs: []string{`config.yaml:12: mailboxes[0].forward.smtp.connections: must be a whole number, not "three"`}},
		{name: "smtp, connections a fraction", yaml: smtp("        connections: 2.5\n"),
			errs: []string{`config.yaml:12: mailboxes[0].forward.smtp.connections: must be a whole number, not "2.5"`}},
		{name: "smtp, negative max_per_minute", yaml: smtp("        max_per_minute: -1\n"),
			errs: []string{`config.yaml:12: mailboxes[0].forward.smtp.max_per_minute: -1 is negative; 0 (or no key) is no limit`}},
		{name: "smtp, max_per_day as the page writes it", yaml: smtp("        max_per_day: 2,000\n"),
			errs: []string{`config.yaml:12: mailboxes[0].forward.smtp.max_per_day: must be a whole number, not "2,000"`}},
		{name: "smtp, max_per_day a list", yaml: smtp("        max_per_day: [2000]\n"),
			errs: []string{`config.yaml:12: mailboxes[0].forward.smtp.max_per_day: must be a whole number, not a list`}},
		{name: "smtp, misspelt key", yaml: smtp("        max_per_minut: 30\n"),
			errs: []string{`config.yaml:12: mailboxes[0].forward.smtp.max_per_minut: unknown key (did you mean max_per_minute?)`}},
		{name: "smtp, every key broken", yaml: smtp("        connections: -3\n        max_per_minute: -30\n        max_per_day: lots\n"),
			errs: []string{
				`config.yaml:12: mailboxes[0].forward.smtp.connections: -3 is out of range 1..20`,
				`config.yaml:13: mailboxes[0].forward.smtp.max_per_minute: -30 is negative; 0 (or no key) is no limit`,
				`config.yaml:14: mailboxes[0].forward.smtp.max_per_day: must be a whole number, not "lots"`,
			}},
		{name: "mx, no connections", yaml: mx("        connections: 0\n"),
			errs: []string{`config.yaml:12: mailboxes[0].forward.mx.connections: 0 is out of range 1..20`}},
		{name: "mx, negative max_per_day", yaml: mx("        max_per_day: -10\n"),
			errs: []string{`config.yaml:12: mailboxes[0].forward.mx.max_per_day: -10 is negative; 0 (or no key) is no limit`}},
		{name: "imap servers have none", yaml: strings.Replace(minimal, "      password_file: /run/secrets/imap\n", "      password_file: /run/secrets/imap\n      connections: 3\n", 1),
			errs: []string{`config.yaml:7: mailboxes[0].imap.connections: unknown key`}},
		{name: "not beside the forward block's keys", yaml: strings.Replace(minimal, "      smtp:\n", "      max_per_day: 2000\n      smtp:\n", 1),
			errs: []string{`config.yaml:10: mailboxes[0].forward.max_per_day: unknown key`}},
		{name: "notify.smtp has none", yaml: minimal + "    notify:\n      from: noreply@example.com\n      smtp:\n        address: smtp.example.com\n        max_per_minute: 30\n",
			errs: []string{`config.yaml:16: mailboxes[0].notify.smtp.max_per_minute: unknown key`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), "config.yaml")
			if tt.errs != nil {
				var errs Errors
				if !errors.As(err, &errs) {
					t.Fatalf("Parse = %v, want errors:\n%s", err, strings.Join(tt.errs, "\n"))
				}
				if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.errs) {
					t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.errs, "\n     "))
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			fw := cfg.Mailboxes[0].Forward
			got := fw.SMTP.Sessions
			if fw.Route == RouteMX {
				got = fw.MX.Sessions
			}
			if got != tt.want {
				t.Errorf("sessions = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestSessionsOnlyWithTheirRoute: the keys live in the route's own block,
// so route imap refuses them as it refuses forward.smtp and forward.mx, and
// route smtp refuses forward.mx's.
func TestSessionsOnlyWithTheirRoute(t *testing.T) {
	tests := []struct {
		name string
		fwd  string
		want string
	}{
		{"route imap with forward.smtp's", imapBlock + "      smtp:\n        address: smtp.example.com\n        connections: 3\n",
			"t.yaml:14: mailboxes[0].forward.smtp: only for route: smtp (this is route: imap)"},
		{"route imap with forward.mx's", imapBlock + "      mx:\n        max_per_minute: 30\n",
			"t.yaml:14: mailboxes[0].forward.mx: only for route: mx (this is route: imap)"},
		{"route imap, in forward.imap", imapBlock + "        max_per_day: 2000\n",
			"t.yaml:13: mailboxes[0].forward.imap.max_per_day: unknown key"},
		{"route smtp with forward.mx's", "      to: [desk@example.com]\n      from: triage@example.com\n      smtp:\n        address: smtp.example.com\n      mx:\n        connections: 3\n",
			"t.yaml:13: mailboxes[0].forward.mx: only for route: mx (this is route: smtp)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(routeConfig(tt.fwd)), "t.yaml")
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse = %v, want %s", err, tt.want)
			}
		})
	}
}
