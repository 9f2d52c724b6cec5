package config

import (
	"fmt"
	"maps"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

var (
	// mailboxNamePattern keeps mailbox names safe in store keys, log
	// attributes and metric labels.
	mailboxNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// relayServicePattern is the shape of the analyzer's service names.
	relayServicePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	// domainPattern is a lower-case DNS name, optionally "*." for subdomains.
	domainPattern = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// policyClasses are the keys a mailbox's policy may set, in the analyzer's
// matching order.
func policyClasses() []string {
	return []string{
		string(analyzer.ClassUnparseable),
		string(analyzer.ClassEncrypted),
		string(analyzer.ClassSigned),
		string(analyzer.ClassPrivateRelay),
		string(analyzer.ClassClean),
	}
}

func (d *decoder) config(root *yaml.Node) *Config {
	cfg := &Config{
		State: State{URL: DefaultStateURL, Prefix: DefaultPrefix, ThreadTTL: DefaultThreadTTL, Retention: DefaultRetention},
		Log:   Log{Format: DefaultLogFormat, Level: DefaultLogLevel},
	}
	d.mapping(root, "", []field{
		{key: "state", decode: func(n *yaml.Node, p string) { d.state(n, p, &cfg.State) }},
		{key: "metrics", decode: func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{{key: "listen", decode: d.listen(&cfg.Metrics.Listen)}})
		}},
		{key: "log", decode: func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{
				{key: "format", decode: setEnum(d, &cfg.Log.Format, "text", "json")},
				{key: "level", decode: setEnum(d, &cfg.Log.Level, "debug", "info", "warn", "error")},
			})
		}},
		{key: "relays", decode: func(n *yaml.Node, p string) { cfg.Relays = d.relays(n, p) }},
		{key: "mailboxes", required: true, decode: func(n *yaml.Node, p string) { cfg.Mailboxes = d.mailboxes(n, p) }},
	})
	return cfg
}

func (d *decoder) state(n *yaml.Node, path string, st *State) {
	seen := d.mapping(n, path, []field{
		{key: "url", decode: d.setStr(&st.URL)},
		{key: "prefix", decode: d.setStr(&st.Prefix)},
		{key: "thread_ttl", decode: d.duration(&st.ThreadTTL, time.Minute)},
		{key: "retention", decode: d.duration(&st.Retention, minRetention)},
		{key: "password_file", decode: d.setStr(&st.PasswordFile)},
		{key: "password_env", decode: d.setStr(&st.PasswordEnv)},
		{key: "ca_file", decode: d.setStr(&st.CAFile)},
	})
	if v, ok := seen["url"]; ok {
		d.checkStateURL(v, join(path, "url"), st.URL, st.PasswordFile != "" || st.PasswordEnv != "")
	}
	if v, ok := seen["prefix"]; ok && (st.Prefix == "" || strings.ContainsAny(st.Prefix, " \t\r\n")) {
		d.errorf(v, join(path, "prefix"), "must be a non-empty word without spaces")
	}
	if st.PasswordFile != "" && st.PasswordEnv != "" {
		d.errorf(seen["password_env"], join(path, "password_env"), "password_file and password_env are exclusive; set one")
	}
	if (st.PasswordFile != "" || st.PasswordEnv != "") && strings.HasPrefix(st.URL, "file:") {
		d.errorf(n, path, "a password is only for redis:// and rediss:// state URLs")
	}
	if v, ok := seen["ca_file"]; ok && !strings.HasPrefix(st.URL, "rediss:") && !strings.HasPrefix(st.URL, "rediss+cluster:") {
		d.errorf(v, join(path, "ca_file"), "a CA file is only for rediss:// and rediss+cluster:// state URLs")
	}
}

// checkStateURL refuses a state URL that holds a secret or weakens TLS
// verification. Its messages never quote the URL or a part of it: any part
// might be a password put in the wrong place.
func (d *decoder) checkStateURL(n *yaml.Node, path, raw string, passwordSource bool) {
	u, err := url.Parse(raw)
	if err != nil {
		// Not the parser's message: it quotes the input, which might hold a
		// password that the check below would have refused.
		d.errorf(n, path, "not a URL")
		return
	}
	switch u.Scheme {
	case "file":
		if u.Opaque == "" && u.Path == "" {
			d.errorf(n, path, "file: URL needs a path, as in file:/var/lib/mailtriage/state.db")
		}
	case "redis", "rediss", "redis+cluster", "rediss+cluster":
		if _, hasPassword := u.User.Password(); hasPassword {
			d.errorf(n, path, "holds a password; put it in state.password_file or state.password_env")
		} else if u.User != nil && !passwordSource {
			// redis://PASSWORD@host: a lone user name is often the password.
			d.errorf(n, path, "holds a user name but no state.password_file or state.password_env; a password goes there, a Redis ACL user name beside it")
		}
		if u.Host == "" {
			d.errorf(n, path, "%s: URL needs a host, as in %s://localhost:6379/0", u.Scheme, u.Scheme)
		}
		if u.Fragment != "" || u.RawFragment != "" || strings.HasSuffix(raw, "#") {
			d.errorf(n, path, "has a #fragment; a state URL has none")
		}
		if db := strings.TrimPrefix(u.Path, "/"); db != "" && strings.Trim(db, "0123456789") != "" {
			d.errorf(n, path, "path must be a database number, as in %s://localhost:6379/0", u.Scheme)
		}
		if db := strings.Trim(u.Path, "/"); strings.HasSuffix(u.Scheme, "+cluster") && db != "" && db != "0" {
			d.errorf(n, path, "a Redis Cluster has only database 0, not %q", db)
		}
		d.checkStateQuery(n, path, u.RawQuery)
	default:
		d.errorf(n, path, "scheme %q is not one of file, redis, rediss, redis+cluster, rediss+cluster", u.Scheme)
	}
}

// checkStateQuery refuses the query options of a redis:// or rediss:// URL
// that carry a secret or weaken verification; go-redis checks the rest
// (naming only the option) when the store opens.
func (d *decoder) checkStateQuery(n *yaml.Node, path, rawQuery string) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		d.errorf(n, path, "query does not parse")
		return
	}
	for _, key := range slices.Sorted(maps.Keys(q)) {
		k := strings.ToLower(key)
		switch {
		case k == "skip_verify":
			// go-redis: skip_verify=true accepts any certificate.
			d.errorf(n, path, "query option skip_verify turns off certificate verification; trust a private CA with state.ca_file")
		case strings.Contains(k, "pass") || strings.Contains(k, "secret") || strings.Contains(k, "token") || k == "auth":
			d.errorf(n, path, "a query option holds a password; put it in state.password_file or state.password_env")
		}
	}
}

// duration returns a field decoder storing a Go duration of at least lo.
func (d *decoder) duration(dst *time.Duration, lo time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.str(n, path)
		if !ok {
			return
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			d.errorf(n, path, "%q is not a duration such as 720h or 90m", s)
			return
		}
		if v < lo {
			d.errorf(n, path, "%s is shorter than %s", v, lo)
			return
		}
		*dst = v
	}
}

// listen returns a field decoder for a listen address: ":9090",
// "127.0.0.1:9090", or "" for off.
func (d *decoder) listen(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.str(n, path)
		if !ok {
			return
		}
		if s != "" {
			if _, port, err := net.SplitHostPort(s); err != nil || !validPort(port) {
				d.errorf(n, path, "%q is not a listen address such as :9090 or 127.0.0.1:9090", s)
				return
			}
		}
		*dst = s
	}
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n < 65536 && strconv.Itoa(n) == p
}

func (d *decoder) relays(n *yaml.Node, path string) []Relay {
	var out []Relay
	names := map[string]int{}
	d.sequence(n, path, func(_ int, item *yaml.Node, p string) {
		var r Relay
		seen := d.mapping(item, p, []field{
			{key: "service", required: true, decode: d.setStr(&r.Service)},
			{key: "domains", required: true, decode: func(n *yaml.Node, p string) { r.Domains, _ = d.strList(n, p) }},
		})
		if v, ok := seen["service"]; ok {
			switch line, dup := names[r.Service]; {
			case !relayServicePattern.MatchString(r.Service) || len(r.Service) > maxRelayServiceLength:
				d.errorf(v, join(p, "service"), "%q must be lower-case letters, digits and dashes", r.Service)
			case dup:
				d.errorf(v, join(p, "service"), "%q is already defined at line %d", r.Service, line)
			default:
				names[r.Service] = v.Line
			}
		}
		if v, ok := seen["domains"]; ok {
			if len(r.Domains) == 0 {
				d.errorf(v, join(p, "domains"), "must list at least one domain")
			}
			for i, dom := range r.Domains {
				if !domainPattern.MatchString(dom) {
					d.errorf(v, fmt.Sprintf("%s.domains[%d]", p, i), "%q is not a lower-case domain name (optionally *.domain)", dom)
				}
			}
		}
		out = append(out, r)
	})
	return out
}

func (d *decoder) mailboxes(n *yaml.Node, path string) []Mailbox {
	var out []Mailbox
	names := map[string]int{}
	d.sequence(n, path, func(_ int, item *yaml.Node, p string) {
		mb, nameNode := d.mailbox(item, p)
		if nameNode != nil && mb.Name != "" {
			if line, dup := names[mb.Name]; dup {
				d.errorf(nameNode, join(p, "name"), "mailbox %q is already defined at line %d", mb.Name, line)
			} else {
				names[mb.Name] = nameNode.Line
			}
		}
		out = append(out, mb)
	})
	if len(out) == 0 {
		d.errorf(n, path, "must list at least one mailbox")
	}
	return out
}

// mailbox decodes one mailbox and returns it with its name node, for the
// duplicate check.
func (d *decoder) mailbox(n *yaml.Node, path string) (Mailbox, *yaml.Node) {
	mb := Mailbox{
		Schedule:      DefaultSchedule,
		Folder:        DefaultFolder,
		ReviewFolder:  DefaultReviewFolder,
		ReleaseFolder: DefaultReleaseFolder,
		AfterForward:  DefaultAfterForward,
		BatchSize:     DefaultBatchSize,
		LeaseTTL:      DefaultLeaseTTL,
		Policy:        map[string]string{},
	}
	for class, action := range analyzer.DefaultPolicy() {
		mb.Policy[string(class)] = string(action)
	}
	seen := d.mapping(n, path, []field{
		{key: "name", required: true, decode: d.setStr(&mb.Name)},
		{key: "schedule", decode: d.setStr(&mb.Schedule)},
		{key: "idle", decode: d.setBool(&mb.Idle)},
		{key: "imap", required: true, decode: func(n *yaml.Node, p string) { mb.IMAP = d.server(n, p, imapServer()) }},
		{key: "folder", decode: d.setStr(&mb.Folder)},
		{key: "review_folder", decode: d.setStr(&mb.ReviewFolder)},
		{key: "release_folder", decode: d.setStr(&mb.ReleaseFolder)},
		{key: "after_forward", decode: setEnum(d, &mb.AfterForward, AfterForwardSeen, AfterForwardMove, AfterForwardDelete)},
		{key: "forwarded_folder", decode: d.setStr(&mb.ForwardedFolder)},
		{key: "batch_size", decode: d.setInt(&mb.BatchSize, 1, MaxBatchSize)},
		{key: "lease_ttl", decode: d.duration(&mb.LeaseTTL, minLeaseTTL)},
		{key: "forward", required: true, decode: func(n *yaml.Node, p string) { mb.Forward = d.forward(n, p) }},
		{key: "policy", decode: func(n *yaml.Node, p string) { d.policy(n, p, mb.Policy) }},
		{key: "notify", decode: func(n *yaml.Node, p string) { mb.Notify = d.notify(n, p) }},
		{key: "digest", decode: func(n *yaml.Node, p string) { mb.Digest = d.digest(n, p) }},
	})
	d.checkRouteCompanions(seen, path, mb)
	for _, o := range []*OAuth2{mb.IMAP.OAuth2, mb.Forward.SMTP.OAuth2} {
		if o != nil {
			o.mailbox, o.configFile = mb.Name, d.file
		}
	}
	if v, ok := seen["name"]; ok && (!mailboxNamePattern.MatchString(mb.Name) || len(mb.Name) > maxMailboxNameLength) {
		d.errorf(v, join(path, "name"), "%q must be letters, digits, '.', '_' and '-' (at most %d, starting with a letter or digit)", mb.Name, maxMailboxNameLength)
		mb.Name = ""
	}
	at := n // the default schedule is parsed too, so every mailbox has its Cron
	if v, ok := seen["schedule"]; ok {
		at = v
	}
	mb.Cron = d.schedule(at, join(path, "schedule"), mb.Schedule)
	folders := []struct {
		key   string
		value string
	}{
		{"folder", mb.Folder},
		{"review_folder", mb.ReviewFolder},
		{"release_folder", mb.ReleaseFolder},
		{"forwarded_folder", mb.ForwardedFolder},
	}
	used := map[string]string{}
	for _, f := range folders {
		v, ok := seen[f.key]
		if !ok {
			v = n
		}
		if ok && f.value == "" && f.key != "forwarded_folder" {
			d.errorf(v, join(path, f.key), "must not be empty")
			continue
		}
		if f.value == "" {
			continue
		}
		if strings.ContainsAny(f.value, "\r\n\x00") {
			d.errorf(v, join(path, f.key), "%q holds a control character", f.value)
			continue
		}
		if other, dup := used[f.value]; dup {
			d.errorf(v, join(path, f.key), "%q is also %s; each stage needs its own folder", f.value, other)
			continue
		}
		used[f.value] = f.key
	}
	if fi := mb.Forward.IMAP; mb.Forward.Route == RouteIMAP && fi.Address == mb.IMAP.Address && strings.EqualFold(fi.Username, mb.IMAP.Username) {
		if other, dup := used[fi.Folder]; dup {
			d.errorf(seen["forward"], join(path, "forward.imap.folder"), "%q is also %s of this account; the copies would be triaged again", fi.Folder, other)
		}
	}
	if mb.AfterForward == AfterForwardMove && mb.ForwardedFolder == "" {
		at := n
		if v, ok := seen["after_forward"]; ok {
			at = v
		}
		d.errorf(at, join(path, "forwarded_folder"), "required when after_forward is move")
	}
	return mb, seen["name"]
}

// schedule parses a mailbox's cron spec; it is the only parse of it.
func (d *decoder) schedule(n *yaml.Node, path, spec string) cron.Schedule {
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		d.errorf(n, path, "%q is not a cron spec (five fields or a descriptor such as @every 1m): %v", spec, err)
		return nil
	}
	if every, ok := strings.CutPrefix(spec, "@every "); ok {
		if dur, err := time.ParseDuration(strings.TrimSpace(every)); err == nil && dur < minScheduleInterval {
			d.errorf(n, path, "@every %s is shorter than %s", dur, minScheduleInterval)
		}
	}
	return sched
}

func (d *decoder) policy(n *yaml.Node, path string, p map[string]string) {
	var fields []field
	for _, class := range policyClasses() {
		dst := new(string)
		fields = append(fields, field{key: class, decode: func(n *yaml.Node, path string) {
			*dst = ""
			setEnum(d, dst, string(analyzer.ActionForward), string(analyzer.ActionFlag))(n, path)
			if *dst != "" {
				p[class] = *dst
			}
		}})
	}
	d.mapping(n, path, fields)
}

func (d *decoder) forward(n *yaml.Node, path string) Forward {
	fw := Forward{Route: DefaultRoute, Mode: DefaultForwardMode}
	seen := d.mapping(n, path, []field{
		{key: "route", decode: setEnum(d, &fw.Route, RouteSMTP, RouteIMAP, RouteMX)},
		{key: "to", decode: func(n *yaml.Node, p string) { fw.To, _ = d.strList(n, p) }},
		{key: "from", decode: d.setStr(&fw.From)},
		{key: "mode", decode: setEnum(d, &fw.Mode, ModeRedirect, ModeAttach)},
		{key: "smtp", decode: func(n *yaml.Node, p string) {
			var ss Sessions
			fw.SMTP = d.server(n, p, smtpServer(), d.sessions(&ss)...)
			fw.SMTP.Sessions = ss
		}},
		{key: "imap", decode: func(n *yaml.Node, p string) {
			folder := DefaultFolder
			fw.IMAP = d.server(n, p, imapServer(), field{key: "folder", decode: d.setStr(&folder)})
			if fw.IMAP.Folder = folder; folder == "" || strings.ContainsAny(folder, "\r\n\x00") {
				d.errorf(n, join(p, "folder"), "%q must be a folder name without control characters", folder)
			}
		}},
		{key: "mx", decode: func(n *yaml.Node, p string) { fw.MX = d.mxRoute(n, p) }},
	})
	d.envelope(seen, path, fw.To, &fw.From)
	d.checkRoute(n, path, seen, &fw)
	return fw
}

// sessions are the keys that size the forwarder's sessions, in
// forward.smtp and forward.mx (checkRoute takes each block only with its
// route, so route imap has none of them); s gets the defaults first.
// Connections default to what Exchange Online allows one mailbox.
func (d *decoder) sessions(s *Sessions) []field {
	s.Connections = DefaultConnections
	return []field{
		{key: "connections", decode: d.setInt(&s.Connections, 1, MaxConnections)},
		{key: "max_per_minute", decode: d.setLimit(&s.MaxPerMinute)},
		{key: "max_per_day", decode: d.setLimit(&s.MaxPerDay)},
	}
}

// envelope checks the addresses of a block's "to" (at least one) and
// "from" keys, where present.
func (d *decoder) envelope(seen map[string]*yaml.Node, path string, to []string, from *string) {
	if v, ok := seen["to"]; ok {
		if len(to) == 0 {
			d.errorf(v, join(path, "to"), "must list at least one address")
		}
		for i, a := range to {
			to[i] = d.addrSpec(v, fmt.Sprintf("%s.to[%d]", path, i), a)
		}
	}
	if v, ok := seen["from"]; ok {
		*from = d.addrSpec(v, join(path, "from"), *from)
	}
}

// addrSpec checks that s is a bare RFC 5322 addr-spec (no display name).
func (d *decoder) addrSpec(n *yaml.Node, path, s string) string {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		d.errorf(n, path, "%q is not a bare e-mail address such as support@example.com", s)
		return s
	}
	return a.Address
}

// serverKind tells IMAP and SMTP servers apart for defaults and rules.
type serverKind struct {
	protocol    string // "imap" | "smtp"
	defaultTLS  tlsmode.Mode
	ports       map[tlsmode.Mode]string // default port by tls
	needsLogin  bool
	exampleHost string
	ehlo        bool // takes ehlo_name (SMTP)
}

// imapServer: implicit TLS on 993 by default, and a login is required.
func imapServer() serverKind {
	return serverKind{
		protocol: "imap", defaultTLS: tlsmode.Implicit, needsLogin: true, exampleHost: "imap.example.com:993",
		ports: map[tlsmode.Mode]string{tlsmode.Implicit: defaultIMAPPort, tlsmode.StartTLS: defaultIMAPPlainPort, tlsmode.None: defaultIMAPPlainPort},
	}
}

// smtpServer: STARTTLS on 587 by default (RFC 6409), login optional.
func smtpServer() serverKind {
	return serverKind{
		protocol: "smtp", defaultTLS: tlsmode.StartTLS, exampleHost: "smtp.example.com:587", ehlo: true,
		ports: map[tlsmode.Mode]string{tlsmode.Implicit: defaultSMTPSPort, tlsmode.StartTLS: defaultSMTPPort, tlsmode.None: defaultSMTPPlainPort},
	}
}

// secretKeys are the keys naming where a server's secret lives.
func secretKeys() []string {
	return []string{"password_file", "password_env", "token_file", "token_command", "oauth2"}
}

// server decodes an IMAP or SMTP server block; extra are the keys a block
// has besides the server's (forward.imap's folder).
func (d *decoder) server(n *yaml.Node, path string, kind serverKind, extra ...field) Server {
	s := Server{TLS: kind.defaultTLS}
	fields := []field{
		{key: "address", required: true, decode: d.setStr(&s.Address)},
		{key: "tls", decode: setEnum(d, &s.TLS, tlsmode.Implicit, tlsmode.StartTLS, tlsmode.None)},
		{key: "ca_file", decode: d.setStr(&s.CAFile)},
		{key: "insecure_plaintext", decode: d.setBool(&s.InsecurePlaintext)},
		{key: "username", required: kind.needsLogin, decode: d.setStr(&s.Username)},
		{key: "auth", decode: setEnum(d, &s.Auth, append(mechanisms(), AuthOAuth2)...)},
		{key: "password_file", decode: d.setStr(&s.PasswordFile)},
		{key: "password_env", decode: d.setStr(&s.PasswordEnv)},
		{key: "token_file", decode: d.setStr(&s.TokenFile)},
		{key: "token_command", decode: func(n *yaml.Node, p string) {
			s.TokenCommand, _ = d.strList(n, p)
			if len(s.TokenCommand) == 0 {
				d.errorf(n, p, "must list the command and its arguments")
			}
		}},
		{key: "oauth2", decode: func(n *yaml.Node, p string) { s.OAuth2 = d.oauth2(n, p, kind) }},
	}
	fields = append(fields, extra...)
	if kind.ehlo {
		fields = append(fields, field{key: "ehlo_name", decode: d.setStr(&s.EHLOName)})
	}
	seen := d.mapping(n, path, fields)
	if v, ok := seen["ehlo_name"]; ok && !forwarder.Qualified(s.EHLOName) {
		d.errorf(v, join(path, "ehlo_name"), "%q is not a fully qualified domain name such as mail.example.com", s.EHLOName)
	}
	if v, ok := seen["address"]; ok {
		s.Address = d.hostPort(v, join(path, "address"), s.Address, kind.ports[s.TLS], kind.exampleHost)
	}
	if s.TLS == tlsmode.None && !s.InsecurePlaintext {
		at := n
		if v, ok := seen["tls"]; ok {
			at = v
		}
		d.errorf(at, join(path, "tls"), "none sends passwords and mail in clear text; it needs insecure_plaintext: true")
	}
	values := map[string]bool{
		"password_file": s.PasswordFile != "",
		"password_env":  s.PasswordEnv != "",
		"token_file":    s.TokenFile != "",
		"token_command": len(s.TokenCommand) > 0,
		"oauth2":        s.OAuth2 != nil,
	}
	var sources []string
	for _, k := range secretKeys() {
		v, ok := seen[k]
		switch {
		case ok && !values[k] && k != "token_command" && k != "oauth2":
			d.errorf(v, join(path, k), "must not be empty")
		case ok:
			sources = append(sources, k)
		}
	}
	switch {
	case len(sources) > 1:
		d.errorf(seen[sources[1]], join(path, sources[1]), "%s and %s are exclusive; set one", sources[0], sources[1])
	case len(sources) == 0 && (kind.needsLogin || s.Username != "" || s.Auth != ""):
		d.errorf(n, path, "needs one of password_file, password_env, token_file, token_command, oauth2")
	case len(sources) == 1 && s.Username == "" && !kind.needsLogin:
		d.errorf(seen[sources[0]], join(path, "username"), "required with %s", sources[0])
	}
	if s.Auth == AuthOAuth2 && (len(sources) != 1 || sources[0] != "oauth2") {
		d.errorf(seen["auth"], join(path, "auth"), "oauth2 needs an oauth2 block (provider, client_id, ...)")
		return s
	}
	if len(sources) == 1 {
		token := sources[0] == "token_file" || sources[0] == "token_command" || sources[0] == "oauth2"
		switch {
		case (s.Auth == "" || s.Auth == AuthOAuth2) && token:
			s.Auth = "xoauth2"
		case s.Auth == "":
			s.Auth = "plain"
		case token != s.Mechanism().OAuth():
			want := "password_file or password_env"
			if s.Mechanism().OAuth() {
				want = "token_file, token_command or oauth2"
			}
			d.errorf(seen["auth"], join(path, "auth"), "%s takes %s, not %s", s.Auth, want, sources[0])
		}
	}
	if s.OAuth2 != nil && s.OAuth2.Flow == string(credential.FlowServiceAccount) && s.OAuth2.Subject == "" {
		s.OAuth2.Subject = s.Username // the mailbox the service account acts for
	}
	return s
}

// mechanisms are the auth values: the SASL mechanisms credential supports.
func mechanisms() []string {
	var out []string
	for _, m := range credential.Mechanisms() {
		out = append(out, string(m))
	}
	return out
}

// hostPort checks a host:port address and fills in the default port when
// only a host is given.
func (d *decoder) hostPort(n *yaml.Node, path, s, defaultPort, example string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil && !strings.Contains(s, ":") {
		host, port, err = s, defaultPort, nil
	}
	if err != nil || host == "" || strings.ContainsAny(host, " /\t") || !validPort(port) {
		d.errorf(n, path, "%q is not a host:port address such as %s", s, example)
		return s
	}
	return net.JoinHostPort(host, port)
}
