package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/robfig/cron/v3"
)

// minimal is the smallest valid file; cases below append to or edit it.
const minimal = `mailboxes:
  - name: support
    imap:
      address: imap.example.com
      username: support@example.com
      password_file: /run/secrets/imap
    forward:
      to: [desk@example.com]
      from: triage@example.com
      smtp:
        address: smtp.example.com
`

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal), "config.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Config{
		State: State{URL: "file:/var/lib/mailtriage/state.db", Prefix: "mailtriage", ThreadTTL: 720 * time.Hour, Retention: 2160 * time.Hour},
		Log:   Log{Format: "text", Level: "info"},
		Mailboxes: []Mailbox{{
			Name:     "support",
			Schedule: "@every 1m",
			Cron:     cron.Every(time.Minute),
			IMAP: Server{
				Address: "imap.example.com:993", TLS: "implicit", Username: "support@example.com",
				Auth: "plain", PasswordFile: "/run/secrets/imap",
			},
			Folder:        "INBOX",
			ReviewFolder:  "Triage/Review",
			ReleaseFolder: "Triage/Release",
			AfterForward:  "seen",
			BatchSize:     200,
			LeaseTTL:      2 * time.Minute,
			Forward: Forward{
				Route: "smtp", To: []string{"desk@example.com"}, From: "triage@example.com", Mode: "redirect",
				SMTP: Server{Address: "smtp.example.com:587", TLS: "starttls", Sessions: Sessions{Connections: 3}},
			},
			Policy: map[string]string{
				"unparseable": "flag", "encrypted": "flag", "signed": "forward",
				"private_relay": "forward", "clean": "forward",
			},
		}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	if got := cfg.Mailboxes[0].AnalyzerPolicy(); !reflect.DeepEqual(got, analyzer.DefaultPolicy()) {
		t.Errorf("AnalyzerPolicy = %v, want the analyzer's default %v", got, analyzer.DefaultPolicy())
	}
	if cfg.Mailboxes[0].Forward.SMTP.HasCredential() {
		t.Errorf("smtp without username or secret: HasCredential = true, want false")
	}
}

// TestValues checks that set keys arrive where they belong and that the
// per-server rules pick the right defaults.
func TestValues(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(string) string
		check func(*Config) (got, want any)
	}{
		{"starttls imap defaults to port 143",
			func(s string) string {
				return strings.Replace(s, "address: imap.example.com", "address: imap.example.com\n      tls: starttls", 1)
			},
			func(c *Config) (any, any) { return c.Mailboxes[0].IMAP.Address, "imap.example.com:143" }},
		{"implicit smtp defaults to port 465",
			func(s string) string {
				return strings.Replace(s, "address: smtp.example.com", "address: smtp.example.com\n        tls: implicit", 1)
			},
			func(c *Config) (any, any) { return c.Mailboxes[0].Forward.SMTP.Address, "smtp.example.com:465" }},
		{"state url with a Redis ACL user name beside a password source",
			func(s string) string {
				return "state: {url: \"rediss://triage@redis:6380/0?dial_timeout=3s\", password_env: PW}\n" + s
			},
			func(c *Config) (any, any) { return c.State.URL, "rediss://triage@redis:6380/0?dial_timeout=3s" }},
		{"ehlo_name",
			func(s string) string {
				return strings.Replace(s, "address: smtp.example.com", "address: smtp.example.com\n        ehlo_name: triage.example.com", 1)
			},
			func(c *Config) (any, any) { return c.Mailboxes[0].Forward.SMTP.EHLOName, "triage.example.com" }},
		{"explicit port kept",
			func(s string) string { return strings.Replace(s, "imap.example.com", "imap.example.com:1993", 1) },
			func(c *Config) (any, any) { return c.Mailboxes[0].IMAP.Address, "imap.example.com:1993" }},
		{"IPv6 literal with port",
			func(s string) string { return strings.Replace(s, "imap.example.com", `"[::1]:993"`, 1) },
			func(c *Config) (any, any) { return c.Mailboxes[0].IMAP.Address, "[::1]:993" }},
		{"token_command defaults to xoauth2",
			func(s string) string {
				return strings.Replace(s, "password_file: /run/secrets/imap", "token_command: [get-token, --for, imap]", 1)
			},
			func(c *Config) (any, any) {
				return []any{c.Mailboxes[0].IMAP.Auth, c.Mailboxes[0].IMAP.TokenCommand}, []any{"xoauth2", []string{"get-token", "--for", "imap"}}
			}},
		{"oauthbearer with token_file",
			func(s string) string {
				return strings.Replace(s, "password_file: /run/secrets/imap", "auth: oauthbearer\n      token_file: /run/tok", 1)
			},
			func(c *Config) (any, any) { return c.Mailboxes[0].IMAP.Mechanism(), credential.OAuthBearer }},
		{"policy overrides one class, keeps the rest",
			func(s string) string { return s + "    policy: {private_relay: flag}\n" },
			func(c *Config) (any, any) {
				p := c.Mailboxes[0].AnalyzerPolicy()
				return []analyzer.Action{p[analyzer.ClassPrivateRelay], p[analyzer.ClassEncrypted]}, []analyzer.Action{analyzer.ActionFlag, analyzer.ActionFlag}
			}},
		{"six-field cron is not the standard parser's",
			func(s string) string { return s + "    schedule: \"CRON_TZ=Europe/Paris 30 8 * * 1-5\"\n" },
			func(c *Config) (any, any) { return c.Mailboxes[0].Schedule, "CRON_TZ=Europe/Paris 30 8 * * 1-5" }},
		{"alias reuses a server block",
			func(s string) string {
				return strings.Replace(s, "    imap:\n", "    imap: &imap\n", 1) + "  - name: other\n    imap: *imap\n    forward: {to: [a@example.com], from: b@example.com, smtp: {address: smtp.example.com}}\n"
			},
			func(c *Config) (any, any) { return c.Mailboxes[1].IMAP, c.Mailboxes[0].IMAP }},
		{"redis state with password from env",
			func(s string) string {
				return "state:\n  url: rediss://user@redis.example.com:6380/2\n  password_env: REDIS_PW\n  thread_ttl: 48h\n" + s
			},
			func(c *Config) (any, any) { return c.State.ThreadTTL, 48 * time.Hour }},
		{"redis cluster state with a private CA and a retention",
			func(s string) string {
				return "state:\n  url: rediss+cluster://r1.example.com:7000?addr=r2.example.com:7000&addr=r3.example.com:7000\n  ca_file: /etc/ca.pem\n  retention: 720h\n" + s
			},
			func(c *Config) (any, any) { return c.State.Retention, 720 * time.Hour }},
		{"explicit empty metrics listen is off",
			func(s string) string { return "metrics:\n  listen: \"\"\nlog: {format: json, level: debug}\n" + s },
			func(c *Config) (any, any) {
				return []string{c.Metrics.Listen, c.Log.Format, c.Log.Level}, []string{"", "json", "debug"}
			}},
		{"route mx with defaults",
			func(s string) string {
				return strings.Replace(s, "      smtp:\n        address: smtp.example.com\n", "      route: mx\n", 1)
			},
			func(c *Config) (any, any) {
				return *c.Mailboxes[0].Forward.MX, MXRoute{Domain: "example.com", TLS: "required", Port: 25, Sessions: Sessions{Connections: 3}}
			}},
		{"route mx with every key",
			func(s string) string {
				return strings.Replace(s, "      smtp:\n        address: smtp.example.com\n",
					"      route: mx\n      mx:\n        tls: opportunistic\n        resolver: 127.0.0.1\n        port: 2525\n        ca_file: /etc/mx.pem\n        connections: 2\n        max_per_minute: 60\n        max_per_day: 5000\n", 1)
			},
			func(c *Config) (any, any) {
				return *c.Mailboxes[0].Forward.MX, MXRoute{Domain: "example.com", TLS: "opportunistic", Resolver: "127.0.0.1:53", Port: 2525, CAFile: "/etc/mx.pem",
					Sessions: Sessions{Connections: 2, MaxPerMinute: 60, MaxPerDay: 5000}}
			}},
		{"relays extend the table",
			func(s string) string {
				return "relays:\n  - service: my-relay\n    domains: [relay.example.net, \"*.relay.example.net\"]\n" + s
			},
			func(c *Config) (any, any) {
				return c.Relays, []Relay{{Service: "my-relay", Domains: []string{"relay.example.net", "*.relay.example.net"}}}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.edit(minimal)), "config.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got, want := tt.check(cfg); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

// TestErrors: each row is a broken file and the exact error lines it gives.
func TestErrors(t *testing.T) {
	imap := func(extra string) string {
		return strings.Replace(minimal, "      password_file: /run/secrets/imap\n", extra, 1)
	}
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"bad tls enum", imap("      password_file: /s\n      tls: tsl\n"),
			[]string{`config.yaml:7: mailboxes[0].imap.tls: "tsl" is not one of implicit, starttls, none`}},
		{"unknown key with suggestion", imap("      pasword_file: /s\n"),
			[]string{
				`config.yaml:4: mailboxes[0].imap: needs one of password_file, password_env, token_file, token_command, oauth2`,
				`config.yaml:6: mailboxes[0].imap.pasword_file: unknown key (did you mean password_file?)`,
			}},
		{"unknown top-level key", "mailbox: []\n" + minimal,
			[]string{`config.yaml:1: mailbox: unknown key (did you mean mailboxes?)`}},
		{"both password_file and password_env", imap("      password_file: /s\n      password_env: PW\n"),
			[]string{`config.yaml:7: mailboxes[0].imap.password_env: password_file and password_env are exclusive; set one`}},
		{"neither password_file nor password_env", imap(""),
			[]string{`config.yaml:4: mailboxes[0].imap: needs one of password_file, password_env, token_file, token_command, oauth2`}},
		{"empty password_env", imap("      password_env: \"\"\n"),
			[]string{`config.yaml:6: mailboxes[0].imap.password_env: must not be empty`,
				`config.yaml:4: mailboxes[0].imap: needs one of password_file, password_env, token_file, token_command, oauth2`}},
		{"xoauth2 with a password", imap("      auth: xoauth2\n      password_env: PW\n"),
			[]string{`config.yaml:6: mailboxes[0].imap.auth: xoauth2 takes token_file, token_command or oauth2, not password_env`}},
		{"plain with a token", imap("      auth: plain\n      token_file: /t\n"),
			[]string{`config.yaml:6: mailboxes[0].imap.auth: plain takes password_file or password_env, not token_file`}},
		{"bad auth enum", imap("      auth: cram-md5\n      password_env: PW\n"),
			[]string{`config.yaml:6: mailboxes[0].imap.auth: "cram-md5" is not one of plain, login, xoauth2, oauthbearer, oauth2`}},
		{"empty token_command", imap("      token_command: []\n"),
			[]string{`config.yaml:6: mailboxes[0].imap.token_command: must list the command and its arguments`}},
		{"tls none without insecure_plaintext", imap("      password_file: /s\n      tls: none\n"),
			[]string{`config.yaml:7: mailboxes[0].imap.tls: none sends passwords and mail in clear text; it needs insecure_plaintext: true`}},
		{"insecure_plaintext not a bool", imap("      password_file: /s\n      tls: none\n      insecure_plaintext: yes\n"),
			[]string{
				`config.yaml:7: mailboxes[0].imap.tls: none sends passwords and mail in clear text; it needs insecure_plaintext: true`,
				`config.yaml:8: mailboxes[0].imap.insecure_plaintext: must be true or false, not "yes"`,
			}},
		{"bad port", strings.Replace(minimal, "imap.example.com", "imap.example.com:99999", 1),
			[]string{`config.yaml:4: mailboxes[0].imap.address: "imap.example.com:99999" is not a host:port address such as imap.example.com:993`}},
		{"missing host", strings.Replace(minimal, "imap.example.com", `":993"`, 1),
			[]string{`config.yaml:4: mailboxes[0].imap.address: ":993" is not a host:port address such as imap.example.com:993`}},
		{"bad cron spec", minimal + "    schedule: \"61 * * * *\"\n",
			[]string{`config.yaml:12: mailboxes[0].schedule: "61 * * * *" is not a cron spec (five fields or a descriptor such as @every 1m): end of range (61) above maximum (59): 61`}},
		{"bad descriptor", minimal + "    schedule: \"@fortnightly\"\n",
			[]string{`config.yaml:12: mailboxes[0].schedule: "@fortnightly" is not a cron spec (five fields or a descriptor such as @every 1m): unrecognized descriptor: @fortnightly`}},
		{"too frequent", minimal + "    schedule: \"@every 100ms\"\n",
			[]string{`config.yaml:12: mailboxes[0].schedule: @every 100ms is shorter than 1s`}},
		{"duplicate mailbox name", minimal + strings.Replace(minimal, "mailboxes:\n", "", 1),
			[]string{`config.yaml:12: mailboxes[1].name: mailbox "support" is already defined at line 2`}},
		{"bad mailbox name", strings.Replace(minimal, "name: support", "name: \"sup port\"", 1),
			[]string{`config.yaml:2: mailboxes[0].name: "sup port" must be letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)`}},
		{"move without forwarded_folder", minimal + "    after_forward: move\n",
			[]string{`config.yaml:12: mailboxes[0].forwarded_folder: required when after_forward is move`}},
		{"bad after_forward", minimal + "    after_forward: archive\n",
			[]string{`config.yaml:12: mailboxes[0].after_forward: "archive" is not one of seen, move, delete`}},
		{"review folder is the watched folder", minimal + "    review_folder: INBOX\n",
			[]string{`config.yaml:12: mailboxes[0].review_folder: "INBOX" is also folder; each stage needs its own folder`}},
		{"batch_size out of range", minimal + "    batch_size: 0\n",
			[]string{`config.yaml:12: mailboxes[0].batch_size: 0 is out of range 1..10000`}},
		{"lease_ttl too short", minimal + "    lease_ttl: 10ms\n",
			[]string{`config.yaml:12: mailboxes[0].lease_ttl: 10ms is shorter than 1s`}},
		{"batch_size not a number", minimal + "    batch_size: lots\n",
			[]string{`config.yaml:12: mailboxes[0].batch_size: must be a whole number, not "lots"`}},
		{"idle not a bool", minimal + "    idle: [true]\n",
			[]string{`config.yaml:12: mailboxes[0].idle: must be true or false, not a list`}},
		{"policy bad class and bad action", minimal + "    policy:\n      encrypted: drop\n      spam: flag\n",
			[]string{
				`config.yaml:13: mailboxes[0].policy.encrypted: "drop" is not one of forward, flag`,
				`config.yaml:14: mailboxes[0].policy.spam: unknown key`,
			}},
		{"bad forward addresses", strings.Replace(strings.Replace(minimal, "[desk@example.com]", "[desk@example.com, \"Desk <d@example.com>\"]", 1), "triage@example.com", "triage", 1),
			[]string{
				`config.yaml:8: mailboxes[0].forward.to[1]: "Desk <d@example.com>" is not a bare e-mail address such as support@example.com`,
				`config.yaml:9: mailboxes[0].forward.from: "triage" is not a bare e-mail address such as support@example.com`,
			}},
		{"route mx with an smtp block", strings.Replace(minimal, "      smtp:\n", "      route: mx\n      smtp:\n", 1),
			[]string{`config.yaml:12: mailboxes[0].forward.smtp: only for route: smtp (this is route: mx)`}},
		{"route smtp without smtp", strings.Replace(minimal, "      smtp:\n        address: smtp.example.com\n", "", 1),
			[]string{`config.yaml:8: mailboxes[0].forward.smtp: required key missing`}},
		{"mx block with route smtp", minimal + "      mx: {tls: required}\n",
			[]string{`config.yaml:12: mailboxes[0].forward.mx: only for route: mx (this is route: smtp)`}},
		{"bad route", strings.Replace(minimal, "      smtp:\n", "      route: imap4\n      smtp:\n", 1),
			[]string{`config.yaml:10: mailboxes[0].forward.route: "imap4" is not one of smtp, imap, mx`}},
		{"route mx, bad mx values", strings.Replace(minimal, "      smtp:\n        address: smtp.example.com\n", "      route: mx\n      mx:\n        tls: none\n        port: 0\n        resolver: \"bad host:x\"\n", 1),
			[]string{
				`config.yaml:12: mailboxes[0].forward.mx.tls: "none" is not one of required, opportunistic`,
				`config.yaml:13: mailboxes[0].forward.mx.port: 0 is out of range 1..65535`,
				`config.yaml:14: mailboxes[0].forward.mx.resolver: "bad host:x" is not a host:port address such as 127.0.0.1:53`,
			}},
		{"route mx to two domains", strings.Replace(strings.Replace(minimal, "      smtp:\n        address: smtp.example.com\n", "      route: mx\n", 1), "[desk@example.com]", "[desk@example.com, desk@example.org]", 1),
			[]string{`config.yaml:8: mailboxes[0].forward.to: route: mx delivers to one domain; desk@example.org is not at example.com`}},
		{"route mx, notify without smtp", strings.Replace(minimal, "      smtp:\n        address: smtp.example.com\n", "      route: mx\n", 1) + "    notify: {from: noreply@example.com}\n",
			[]string{`config.yaml:11: mailboxes[0].notify.smtp: required with forward.route: mx (notices go to customers; route mx reaches only the helpdesk)`}},
		{"route mx with a digest", strings.Replace(minimal, "      smtp:\n        address: smtp.example.com\n", "      route: mx\n", 1) + "    digest: {to: [ops@example.com]}\n",
			[]string{`config.yaml:11: mailboxes[0].digest: needs forward.route: smtp (the digest goes to operators; route mx reaches only the helpdesk)`}},
		{"bad forward mode", strings.Replace(minimal, "      smtp:\n", "      mode: bounce\n      smtp:\n", 1),
			[]string{`config.yaml:10: mailboxes[0].forward.mode: "bounce" is not one of redirect, attach`}},
		{"ehlo_name a bare host name", strings.Replace(minimal, "address: smtp.example.com\n", "address: smtp.example.com\n        ehlo_name: 3f2a9c1b7d4e\n", 1),
			[]string{`config.yaml:12: mailboxes[0].forward.smtp.ehlo_name: "3f2a9c1b7d4e" is not a fully qualified domain name such as mail.example.com`}},
		{"ehlo_name is for smtp only", imap("      password_file: /s\n      ehlo_name: triage.example.com\n"),
			[]string{`config.yaml:7: mailboxes[0].imap.ehlo_name: unknown key`}},
		{"smtp secret without username", strings.Replace(minimal, "address: smtp.example.com\n", "address: smtp.example.com\n        password_env: SMTP_PW\n", 1),
			[]string{`config.yaml:12: mailboxes[0].forward.smtp.username: required with password_env`}},
		{"missing required keys", "mailboxes:\n  - name: support\n",
			[]string{
				`config.yaml:2: mailboxes[0].imap: required key missing`,
				`config.yaml:2: mailboxes[0].forward: required key missing`,
			}},
		{"missing smtp and to", "mailboxes:\n  - name: s\n    imap: {address: h, username: u, password_env: P}\n    forward: {from: a@example.com}\n",
			[]string{
				`config.yaml:4: mailboxes[0].forward.to: required key missing`,
				`config.yaml:4: mailboxes[0].forward.smtp: required key missing`,
			}},
		{"no mailboxes", "mailboxes: []\n",
			[]string{`config.yaml:1: mailboxes: must list at least one mailbox`}},
		{"empty file", "",
			[]string{`config.yaml: mailboxes: required key missing (the file is empty)`}},
		{"comment-only file", "# nothing\n",
			[]string{`config.yaml: mailboxes: required key missing (the file is empty)`}},
		{"not a mapping", "- a\n- b\n",
			[]string{`config.yaml:1: must be a mapping, not a list`}},
		{"duplicate key", "log: {format: text}\nlog: {format: json}\n" + minimal,
			[]string{`config.yaml:2: log: duplicate key (first at line 1)`}},
		{"bad log values", "log: {format: xml, level: loud}\n" + minimal,
			[]string{
				`config.yaml:1: log.format: "xml" is not one of text, json`,
				`config.yaml:1: log.level: "loud" is not one of debug, info, warn, error`,
			}},
		{"state url with password", "state: {url: \"redis://:hunter2@redis:6379/0\"}\n" + minimal,
			[]string{`config.yaml:1: state.url: holds a password; put it in state.password_file or state.password_env`}},
		{"state url with a lone user name", "state: {url: \"redis://hunter2@redis:6379/0\"}\n" + minimal,
			[]string{`config.yaml:1: state.url: holds a user name but no state.password_file or state.password_env; a password goes there, a Redis ACL user name beside it`}},
		{"state url with ?password=", "state: {url: \"redis://redis:6379/0?password=hunter2\"}\n" + minimal,
			[]string{`config.yaml:1: state.url: a query option holds a password; put it in state.password_file or state.password_env`}},
		{"state url with skip_verify", "state: {url: \"rediss://redis:6380/0?skip_verify=true\"}\n" + minimal,
			[]string{`config.yaml:1: state.url: query option skip_verify turns off certificate verification; trust a private CA with state.ca_file`}},
		{"state url with skip_verify=false too", "state: {url: \"rediss://redis:6380/0?dial_timeout=3s&Skip_Verify=false\"}\n" + minimal,
			[]string{`config.yaml:1: state.url: query option skip_verify turns off certificate verification; trust a private CA with state.ca_file`}},
		{"state url with a fragment", "state: {url: \"redis://redis:6379/0#hunter2\"}\n" + minimal,
			[]string{`config.yaml:1: state.url: has a #fragment; a state URL has none`}},
		{"state url with a path that is no database", "state: {url: \"redis://redis:6379/hunter2\"}\n" + minimal,
			[]string{`config.yaml:1: state.url: path must be a database number, as in redis://localhost:6379/0`}},
		{"state url query that does not parse", "state: {url: \"redis://redis:6379/0?a=%zz\"}\n" + minimal,
			[]string{`config.yaml:1: state.url: query does not parse`}},
		{"state url bad scheme", "state: {url: \"postgres://db/x\"}\n" + minimal,
			[]string{`config.yaml:1: state.url: scheme "postgres" is not one of file, redis, rediss, redis+cluster, rediss+cluster`}},
		{"state password with file url", "state: {password_env: PW}\n" + minimal,
			[]string{`config.yaml:1: state: a password is only for redis:// and rediss:// state URLs`}},
		{"state ca_file with file url", "state: {ca_file: /etc/ca.pem}\n" + minimal,
			[]string{`config.yaml:1: state.ca_file: a CA file is only for rediss:// and rediss+cluster:// state URLs`}},
		{"state ca_file with plain redis url", "state: {url: \"redis://r:6379/0\", ca_file: /etc/ca.pem}\n" + minimal,
			[]string{`config.yaml:1: state.ca_file: a CA file is only for rediss:// and rediss+cluster:// state URLs`}},
		{"retention shorter than an hour", "state: {retention: 30m}\n" + minimal,
			[]string{`config.yaml:1: state.retention: 30m0s is shorter than 1h0m0s`}},
		{"cluster with a database other than 0", "state: {url: \"redis+cluster://r1:7000/2?addr=r2:7000\"}\n" + minimal,
			[]string{`config.yaml:1: state.url: a Redis Cluster has only database 0, not "2"`}},
		{"bad thread_ttl", "state: {thread_ttl: forever}\n" + minimal,
			[]string{`config.yaml:1: state.thread_ttl: "forever" is not a duration such as 720h or 90m`}},
		{"bad metrics listen", "metrics: {listen: \"9090\"}\n" + minimal,
			[]string{`config.yaml:1: metrics.listen: "9090" is not a listen address such as :9090 or 127.0.0.1:9090`}},
		{"bad relays", "relays:\n  - service: Bad Name\n    domains: [Example.COM]\n  - domains: []\n" + minimal,
			[]string{
				`config.yaml:2: relays[0].service: "Bad Name" must be lower-case letters, digits and dashes`,
				`config.yaml:3: relays[0].domains[0]: "Example.COM" is not a lower-case domain name (optionally *.domain)`,
				`config.yaml:4: relays[1].service: required key missing`,
				`config.yaml:4: relays[1].domains: must list at least one domain`,
			}},
		{"syntax error", "state: a\nlog: b\n metrics: c\n",
			[]string{`config.yaml:3: invalid YAML: mapping values are not allowed in this context`}},
		{"two documents", minimal + "---\nlog: {}\n",
			[]string{`config.yaml:12: a second YAML document; the file must hold one`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), "config.yaml")
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want errors:\n%s", cfg, strings.Join(tt.want, "\n"))
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T is not Errors: %v", err, err)
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("an error prints the password: %v", err)
			}
			if !reflect.DeepEqual(sortedCopy(got), sortedCopy(tt.want)) {
				t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c
}

// TestNoSecretInConfig: the config names where secrets live; printing it,
// in any form, never shows one.
func TestNoSecretInConfig(t *testing.T) {
	const imapPassword, smtpPassword, redisPassword = "imap-pw-Zq8x", "smtp-pw-Kd3v", "redis-pw-Wm5j"
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "imap")
	if err := os.WriteFile(pwFile, []byte(imapPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_SMTP_PW", smtpPassword)
	t.Setenv("TEST_REDIS_PW", redisPassword)
	doc := fmt.Sprintf("state: {url: \"redis://127.0.0.1:6379/0\", password_env: TEST_REDIS_PW}\n%s",
		strings.Replace(strings.Replace(minimal, "/run/secrets/imap", pwFile, 1),
			"address: smtp.example.com\n", "address: smtp.example.com\n        username: triage\n        password_env: TEST_SMTP_PW\n", 1))
	cfg, err := Parse([]byte(doc), "config.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	imapAuth, err := cfg.Mailboxes[0].IMAP.Credential()
	if err != nil {
		t.Fatal(err)
	}
	smtpAuth, err := cfg.Mailboxes[0].Forward.SMTP.Credential()
	if err != nil {
		t.Fatal(err)
	}
	storeURL, err := cfg.State.StoreURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	printed := strings.Join([]string{
		fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(*cfg), string(js),
		fmt.Sprintf("%+v %+v %v", imapAuth, smtpAuth, storeURL),
	}, "\n")
	for _, s := range []string{imapPassword, smtpPassword, redisPassword} {
		if strings.Contains(printed, s) {
			t.Errorf("secret %q printed:\n%s", s, printed)
		}
	}
	// The secrets are reachable where they go on the wire.
	for _, c := range []struct {
		auth credential.Auth
		want string
	}{{imapAuth, imapPassword}, {smtpAuth, smtpPassword}} {
		got, err := c.auth.Secret.Get(ctx)
		if err != nil || got.Reveal() != c.want {
			t.Errorf("credential for %s: got %v (err %v), want the configured secret", c.auth.Username, got, err)
		}
	}
	if want := "redis://:" + redisPassword + "@127.0.0.1:6379/0"; storeURL.Reveal() != want {
		t.Errorf("StoreURL = %q, want %q", storeURL.Reveal(), want)
	}
}

func TestCredentialSources(t *testing.T) {
	tests := []struct {
		name   string
		server Server
		mech   credential.Mechanism
		err    error
	}{
		{"password file", Server{Address: "h:993", Username: "u", Auth: "plain", PasswordFile: "/f"}, credential.Plain, nil},
		{"token command", Server{Address: "h:993", Username: "u", Auth: "xoauth2", TokenCommand: []string{"t"}}, credential.XOAuth2, nil},
		{"none", Server{Address: "h:587"}, "", ErrNoCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := tt.server.Credential()
			if !errors.Is(err, tt.err) {
				t.Fatalf("Credential error = %v, want %v", err, tt.err)
			}
			if err == nil && (a.Mechanism != tt.mech || a.Username != tt.server.Username || a.Secret == nil) {
				t.Errorf("Credential = %+v, want mechanism %s for %s", a, tt.mech, tt.server.Username)
			}
		})
	}
}

func TestRootCAs(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.pem")
	if err := os.WriteFile(good, []byte(testCA), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (Server{Address: "h:993", CAFile: good}).RootCAs(); err != nil {
		t.Errorf("RootCAs(good) = %v", err)
	}
	if _, err := (Server{Address: "h:993", CAFile: bad}).RootCAs(); err == nil {
		t.Errorf("RootCAs(no PEM) succeeded, want an error")
	}
	if _, err := (Server{Address: "h:993", CAFile: filepath.Join(dir, "missing.pem")}).RootCAs(); err == nil {
		t.Errorf("RootCAs(missing file) succeeded, want an error")
	}
}

// testCA is a throw-away self-signed ECDSA certificate (openssl req -x509).
const testCA = `-----BEGIN CERTIFICATE-----
MIIBjDCCATGgAwIBAgIUGl8U2XNZcUklYSVCYgrXEjrrD30wCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPbWFpbHRyaWFnZS10ZXN0MCAXDTI2MTEyNTEwMjEwM1oYDzIx
MjYxMTAxMTAyMTAzWjAaMRgwFgYDVQQDDA9tYWlsdHJpYWdlLXRlc3QwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAQb0jqLzg+xxlHd8z6Gn52rAgLGbo1/UCCHQCZt
NB06HSONkmYgso99R9baAlfXFyNbIt7WgNRIP6o7d6Vjubb3o1MwUTAdBgNVHQ4E
FgQUtGmzqnzETZ7FpGmW3pdSFu89zb0wHwYDVR0jBBgwFoAUtGmzqnzETZ7FpGmW
3pdSFu89zb0wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAjaxa
T/olUisCYLFZI7sptw+jwzb+3Wdqun/bqb/FxxoCIQDmReWUBVKGgZ+COAWlD6U3
vh/sVhoUeiTUjdPEIJBqfg==
-----END CERTIFICATE-----
`

// TestConfigsDirectory loads every example shipped in configs/.
func TestConfigsDirectory(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "configs", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d files in configs/, want at least the 4 examples", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Errorf("Load:\n%v", err)
			}
		})
	}
}

// TestExampleHasEveryKey: the annotated example sets every key the decoder
// knows, so the reference stays complete.
func TestExampleHasEveryKey(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "configs", "mailtriage.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, key := range []string{
		"state:", "url:", "prefix:", "thread_ttl:", "retention:", "password_file:", "password_env:", "metrics:", "listen:",
		"log:", "format:", "level:", "relays:", "service:", "domains:", "mailboxes:", "name:", "schedule:",
		"idle:", "imap:", "address:", "tls:", "insecure_plaintext:", "ca_file:", "username:", "auth:",
		"token_file:", "token_command:", "folder:", "review_folder:", "release_folder:", "after_forward:",
		"forwarded_folder:", "batch_size:", "lease_ttl:", "forward:", "to:", "from:", "mode:", "route:", "smtp:", "mx:", "resolver:", "port:",
		"connections:", "max_per_minute:", "max_per_day:", "policy:",
		"unparseable:", "encrypted:", "signed:", "private_relay:", "clean:",
	} {
		if !strings.Contains(text, key) {
			t.Errorf("configs/mailtriage.example.yaml does not mention %s", key)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("mailboxes: [{name: x, imap: {address: h}, forward: {to: [a@b], from: c@d, smtp: {address: s}}}]\n"))
	for _, name := range []string{"mailtriage.example.yaml", "microsoft365.yaml", "google.yaml", "redis-replicas.yaml", "helpdesk-imap.yaml", "zendesk.yaml", "zammad-imap.yaml"} {
		if data, err := os.ReadFile(filepath.Join("..", "configs", name)); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.yaml")
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v; want exactly one", cfg, err)
		}
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T is not a non-empty Errors: %v", err, err)
			}
			return
		}
		if len(cfg.Mailboxes) == 0 {
			t.Fatalf("a valid config without mailboxes")
		}
		for _, mb := range cfg.Mailboxes {
			fw := mb.Forward
			smtpRoute := fw.Route == RouteSMTP && len(fw.To) > 0 && fw.From != "" && fw.SMTP.Address != ""
			imapRoute := fw.Route == RouteIMAP && fw.IMAP.Address != "" && fw.IMAP.Folder != ""
			if mb.Name == "" || mb.IMAP.Address == "" || !smtpRoute && !imapRoute {
				t.Fatalf("a valid config with a missing required value: %+v", mb)
			}
		}
	})
}

// The schedule is parsed in config and handed over: each mailbox's Cron
// gives the next ticks its spec means.
func TestScheduleParsed(t *testing.T) {
	from := time.Date(2026, 11, 25, 10, 2, 30, 0, time.UTC)
	tests := []struct {
		spec string // "" = the default
		want []time.Time
	}{
		{"", []time.Time{from.Add(time.Minute), from.Add(2 * time.Minute)}},
		{"@every 90s", []time.Time{from.Add(90 * time.Second), from.Add(180 * time.Second)}},
		{"*/5 * * * *", []time.Time{time.Date(2026, 11, 25, 10, 5, 0, 0, time.UTC), time.Date(2026, 11, 25, 10, 10, 0, 0, time.UTC)}},
		{"@hourly", []time.Time{time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC), time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			src := minimal
			if tt.spec != "" {
				src += "    schedule: \"" + tt.spec + "\"\n"
			}
			cfg, err := Parse([]byte(src), "config.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			sched := cfg.Mailboxes[0].Cron
			if sched == nil {
				t.Fatal("Cron is nil")
			}
			at := from
			for i, want := range tt.want {
				at = sched.Next(at)
				if !at.Equal(want) {
					t.Errorf("tick %d = %v, want %v", i+1, at, want)
				}
			}
		})
	}
}
