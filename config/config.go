// Package config reads mailtriage's YAML configuration file (DESIGN.md §3)
// into a checked Config with every default filled in.
//
// The file is decoded from yaml.Node rather than straight into structs, so
// that every problem can name its key path and its line:
//
//	config.yaml:14: mailboxes[0].imap.tls: "tsl" is not one of implicit, starttls, none
//
// Unknown keys, values of the wrong type or outside their set, bad cron specs,
// bad host:port addresses and e-mail addresses, duplicate mailbox names,
// missing required keys and contradicting keys are all reported, and all of
// them at once rather than the first only.
//
// The config never holds a secret: it holds where a secret lives (a file, an
// environment variable, a command) and Server.Credential turns that into a
// credential.Getter read at connection time. A Redis password likewise comes
// from state.password_file or state.password_env, never from state.url.
//
// Schedules follow robfig/cron v3's standard parser (five fields or a
// descriptor such as "@every 1m"); addresses follow RFC 5322 addr-spec
// (net/mail).
package config

import (
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
	"github.com/mailtriage/mailtriage/store"
	"github.com/robfig/cron/v3"
)

// Defaults filled in when a key is absent.
const (
	DefaultStateURL       = "file:/var/lib/mailtriage/state.db"
	DefaultPrefix         = store.DefaultPrefix
	DefaultThreadTTL      = store.DefaultThreadTTL
	DefaultRetention      = store.DefaultRetention
	minRetention          = time.Hour
	DefaultSchedule       = "@every 1m"
	DefaultFolder         = "INBOX"
	DefaultReviewFolder   = "Triage/Review"
	DefaultReleaseFolder  = "Triage/Release"
	DefaultAfterForward   = AfterForwardSeen
	DefaultForwardMode    = ModeRedirect
	DefaultRoute          = RouteSMTP
	DefaultBatchSize      = 200
	DefaultLeaseTTL       = 2 * time.Minute
	minLeaseTTL           = time.Second
	DefaultLogFormat      = "text"
	DefaultLogLevel       = "info"
	MaxBatchSize          = 10000
	defaultIMAPPort       = "993"
	defaultIMAPPlainPort  = "143"
	defaultSMTPPort       = "587"
	defaultSMTPSPort      = "465"
	defaultSMTPPlainPort  = "25"
	minScheduleInterval   = time.Second
	maxMailboxNameLength  = 64
	maxRelayServiceLength = 64

	// DefaultConnections is forward.smtp.connections and
	// forward.mx.connections when absent: Exchange Online allows one
	// mailbox 3 concurrent SMTP connections.
	DefaultConnections = forwarder.DefaultConnections
	MaxConnections     = 20
)

// The values of the enumerated keys.
const (
	AfterForwardSeen   = "seen"   // $Forwarded + \Seen, left in the folder
	AfterForwardMove   = "move"   // moved to forwarded_folder
	AfterForwardDelete = "delete" // deleted (UID EXPUNGE of that UID only)

	ModeRedirect = "redirect" // the original, byte for byte, with Resent-* headers
	ModeAttach   = "attach"   // a new message carrying the original as message/rfc822

	RouteSMTP = "smtp" // submission to forward.smtp
	RouteIMAP = "imap" // APPEND into forward.imap's folder, which the helpdesk pulls
	RouteMX   = "mx"   // delivery to the MX hosts of forward.to's domain (forward.mx)
)

// Config is the whole configuration file.
type Config struct {
	State     State     `json:"state"`
	Metrics   Metrics   `json:"metrics"`
	Log       Log       `json:"log"`
	Relays    []Relay   `json:"relays,omitempty"`
	Mailboxes []Mailbox `json:"mailboxes"`
}

// State says where the store lives.
type State struct {
	URL          string        `json:"url"`    // file:/path, redis://host:port/db, rediss://..., redis+cluster://host:port?addr=host:port...; never a password
	Prefix       string        `json:"prefix"` // key prefix in Redis
	ThreadTTL    time.Duration `json:"thread_ttl"`
	Retention    time.Duration `json:"retention"`               // how long outcome records are kept
	PasswordFile string        `json:"password_file,omitempty"` // Redis AUTH password, read by StoreURL
	PasswordEnv  string        `json:"password_env,omitempty"`
	CAFile       string        `json:"ca_file,omitempty"` // PEM roots for a rediss:// server's certificate, added to the system's
}

// Metrics says where /metrics, /healthz and /readyz listen; "" is off.
type Metrics struct {
	Listen string `json:"listen"`
}

// Log configures log/slog output.
type Log struct {
	Format string `json:"format"` // text | json
	Level  string `json:"level"`  // debug | info | warn | error
}

// Relay extends the analyzer's table of private relay services.
type Relay struct {
	Service string   `json:"service"`
	Domains []string `json:"domains"` // lower-case; "*.example.com" matches subdomains
}

// Mailbox is one watched mailbox and where its clean mail goes.
type Mailbox struct {
	Name            string            `json:"name"`
	Schedule        string            `json:"schedule"`
	Cron            cron.Schedule     `json:"-"` // Schedule parsed, the one parse every consumer uses
	Idle            bool              `json:"idle"`
	IMAP            Server            `json:"imap"`
	Folder          string            `json:"folder"`
	ReviewFolder    string            `json:"review_folder"`
	ReleaseFolder   string            `json:"release_folder"`
	AfterForward    string            `json:"after_forward"`
	ForwardedFolder string            `json:"forwarded_folder,omitempty"`
	BatchSize       int               `json:"batch_size"`
	LeaseTTL        time.Duration     `json:"lease_ttl"` // the mailbox lease's expiry, renewed every third of it; what a crashed worker blocks
	Forward         Forward           `json:"forward"`
	Policy          map[string]string `json:"policy"`           // every class of analyzer.DefaultPolicy, filled in
	Notify          *Notify           `json:"notify,omitempty"` // nil: no sender notices (notify.go)
	Digest          *Digest           `json:"digest,omitempty"` // nil: no review digest (notify.go)
}

// Forward says where and how clean mail is sent. To, From, Mode and SMTP
// are for route smtp; IMAP, with its Folder, for route imap.
type Forward struct {
	Route string   `json:"route"`          // smtp | imap | mx
	To    []string `json:"to,omitempty"`   // addr-specs (routes smtp, mx)
	From  string   `json:"from,omitempty"` // addr-spec: envelope sender and Resent-From (routes smtp, mx)
	Mode  string   `json:"mode,omitempty"` // redirect | attach
	SMTP  Server   `json:"smtp"`           // with route smtp
	IMAP  Server   `json:"imap"`           // with route imap
	MX    *MXRoute `json:"mx,omitempty"`   // with route mx
}

// Server is an IMAP or SMTP server and how to log in to it. It names where
// the secret lives, never the secret.
type Server struct {
	Address           string       `json:"address"` // host:port, the default port filled in
	TLS               tlsmode.Mode `json:"tls"`     // implicit | starttls | none
	CAFile            string       `json:"ca_file,omitempty"`
	InsecurePlaintext bool         `json:"insecure_plaintext"`
	Username          string       `json:"username,omitempty"`
	Auth              string       `json:"auth,omitempty"` // plain | login | xoauth2 | oauthbearer; "" when no login
	PasswordFile      string       `json:"password_file,omitempty"`
	PasswordEnv       string       `json:"password_env,omitempty"`
	TokenFile         string       `json:"token_file,omitempty"`
	TokenCommand      []string     `json:"token_command,omitempty"`
	OAuth2            *OAuth2      `json:"oauth2,omitempty"`    // with auth: oauth2
	EHLOName          string       `json:"ehlo_name,omitempty"` // SMTP only; "" = the machine's FQDN, else an address literal
	Folder            string       `json:"folder,omitempty"`    // forward.imap only: where the copies go
	Sessions                       // forward.smtp only; zero elsewhere
}

// Sessions says how the forwarder uses its server: how many SMTP sessions
// it opens at once, and how many messages it sends in any minute and in any
// 24 hours (0: no limit). forward.smtp and forward.mx have these keys.
type Sessions struct {
	Connections  int `json:"connections,omitempty"`    // 1..MaxConnections; DefaultConnections when absent
	MaxPerMinute int `json:"max_per_minute,omitempty"` // 0: no limit
	MaxPerDay    int `json:"max_per_day,omitempty"`    // 0: no limit
}

// AnalyzerPolicy returns the mailbox's policy as the analyzer takes it.
func (m Mailbox) AnalyzerPolicy() analyzer.Policy {
	p := analyzer.DefaultPolicy()
	for class, action := range m.Policy {
		p[analyzer.Class(class)] = analyzer.Action(action)
	}
	return p
}

// HasCredential reports whether the server is configured to log in.
// IMAP servers always are; an SMTP relay may accept mail without AUTH.
func (s Server) HasCredential() bool {
	return s.PasswordFile != "" || s.PasswordEnv != "" || s.TokenFile != "" || len(s.TokenCommand) > 0 || s.OAuth2 != nil
}

// Mechanism returns the SASL mechanism as the credential package names it.
func (s Server) Mechanism() credential.Mechanism { return credential.Mechanism(s.Auth) }
