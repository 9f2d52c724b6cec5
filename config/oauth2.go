package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mailtriage/mailtriage/internal/credential"
)

// AuthOAuth2 is the auth value that takes an oauth2 block: XOAUTH2 with a
// token from one of the built-in flows.
const AuthOAuth2 = "oauth2"

// The oauth2.provider values.
const (
	ProviderMicrosoft = "microsoft"
	ProviderGoogle    = "google"
	ProviderGeneric   = "generic"
)

// OAuth2 is a server's built-in OAuth 2.0 login: where the tokens come
// from. It names files, never holds a secret.
type OAuth2 struct {
	Provider           string   `json:"provider"`         // microsoft | google | generic
	Flow               string   `json:"flow"`             // refresh_token | client_credentials | service_account
	Tenant             string   `json:"tenant,omitempty"` // microsoft: the directory (tenant) ID or domain
	ClientID           string   `json:"client_id,omitempty"`
	ClientSecretFile   string   `json:"client_secret_file,omitempty"`
	Scopes             []string `json:"scopes"`
	TokenURL           string   `json:"token_url,omitempty"`
	DeviceAuthURL      string   `json:"device_auth_url,omitempty"`
	RefreshTokenFile   string   `json:"refresh_token_file,omitempty"`   // refresh_token: written by `mailtriage login`
	ServiceAccountFile string   `json:"service_account_file,omitempty"` // service_account: Google's JSON key
	Subject            string   `json:"subject,omitempty"`              // service_account: the user acted for; the username by default

	mailbox, configFile string // for the error of a refused refresh token
}

// Provider endpoints and scopes. Sources: Microsoft, "Authenticate an IMAP,
// POP or SMTP connection using OAuth" (learn.microsoft.com/exchange/
// client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-
// application-by-using-oauth) and the identity platform's v2.0 endpoints;
// Google, "OAuth 2.0 Mechanism" for IMAP and SMTP (developers.google.com/
// workspace/gmail/imap/xoauth2-protocol) and "Using OAuth 2.0 for Server to
// Server Applications".
const (
	microsoftTokenURL  = "https://login.microsoftonline.com/%s/oauth2/v2.0/token"
	microsoftDeviceURL = "https://login.microsoftonline.com/%s/oauth2/v2.0/devicecode"
	microsoftIMAPScope = "https://outlook.office365.com/IMAP.AccessAsUser.All"
	microsoftSMTPScope = "https://outlook.office365.com/SMTP.Send"
	microsoftAppScope  = "https://outlook.office365.com/.default"
	offlineAccess      = "offline_access"
	googleTokenURL     = "https://oauth2.googleapis.com/token"
	googleDeviceURL    = "https://oauth2.googleapis.com/device/code"
	googleMailScope    = "https://mail.google.com/"
)

// tenantPattern is a Microsoft tenant: a GUID or a domain name.
var tenantPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$`)

// flowsOf lists the flows each provider offers; the first is its default.
func flowsOf(provider string) []string {
	switch provider {
	case ProviderMicrosoft:
		return []string{string(credential.FlowRefreshToken), string(credential.FlowClientCredentials)}
	case ProviderGoogle:
		// Google's device flow does not grant https://mail.google.com/, so
		// a Workspace service account is the built-in way.
		return []string{string(credential.FlowServiceAccount), string(credential.FlowRefreshToken)}
	default:
		return []string{string(credential.FlowRefreshToken), string(credential.FlowClientCredentials)}
	}
}

// defaultScopes are a provider's scopes for a flow on an IMAP or SMTP server.
func defaultScopes(provider, flow, protocol string) []string {
	switch {
	case provider == ProviderMicrosoft && flow == string(credential.FlowClientCredentials):
		return []string{microsoftAppScope}
	case provider == ProviderMicrosoft && protocol == "smtp":
		return []string{microsoftSMTPScope, offlineAccess}
	case provider == ProviderMicrosoft:
		return []string{microsoftIMAPScope, offlineAccess}
	case provider == ProviderGoogle:
		return []string{googleMailScope}
	}
	return nil
}

func (d *decoder) oauth2(n *yaml.Node, path string, kind serverKind) *OAuth2 {
	o := &OAuth2{}
	seen := d.mapping(n, path, []field{
		{key: "provider", required: true, decode: setEnum(d, &o.Provider, ProviderMicrosoft, ProviderGoogle, ProviderGeneric)},
		{key: "flow", decode: d.setStr(&o.Flow)},
		{key: "tenant", decode: d.setStr(&o.Tenant)},
		{key: "client_id", decode: d.setStr(&o.ClientID)},
		{key: "client_secret_file", decode: d.setStr(&o.ClientSecretFile)},
		{key: "scopes", decode: func(n *yaml.Node, p string) { o.Scopes, _ = d.strList(n, p) }},
		{key: "token_url", decode: d.setStr(&o.TokenURL)},
		{key: "device_auth_url", decode: d.setStr(&o.DeviceAuthURL)},
		{key: "refresh_token_file", decode: d.setStr(&o.RefreshTokenFile)},
		{key: "service_account_file", decode: d.setStr(&o.ServiceAccountFile)},
		{key: "subject", decode: d.setStr(&o.Subject)},
	})
	if o.Provider == "" {
		return o
	}
	at := func(key string) (*yaml.Node, string) {
		if v, ok := seen[key]; ok {
			return v, join(path, key)
		}
		return n, join(path, key)
	}
	flows := flowsOf(o.Provider)
	if o.Flow == "" {
		o.Flow = flows[0]
	} else if !slices.Contains(flows, o.Flow) {
		v, p := at("flow")
		d.errorf(v, p, "%q is not one of %s for provider %s", o.Flow, strings.Join(flows, ", "), o.Provider)
		return o
	}
	need := func(key, value, why string) {
		if value == "" {
			v, p := at(key)
			d.errorf(v, p, "required %s", why)
		}
	}
	refuse := func(key, value, why string) {
		if value != "" {
			v, p := at(key)
			d.errorf(v, p, "not used %s", why)
		}
	}
	switch o.Flow {
	case string(credential.FlowRefreshToken):
		need("client_id", o.ClientID, "for the refresh_token flow")
		need("refresh_token_file", o.RefreshTokenFile, "for the refresh_token flow (mailtriage login writes it)")
		refuse("service_account_file", o.ServiceAccountFile, "by the refresh_token flow")
	case string(credential.FlowClientCredentials):
		need("client_id", o.ClientID, "for the client_credentials flow")
		need("client_secret_file", o.ClientSecretFile, "for the client_credentials flow")
		refuse("refresh_token_file", o.RefreshTokenFile, "by the client_credentials flow")
		refuse("service_account_file", o.ServiceAccountFile, "by the client_credentials flow")
	case string(credential.FlowServiceAccount):
		need("service_account_file", o.ServiceAccountFile, "for the service_account flow")
		refuse("refresh_token_file", o.RefreshTokenFile, "by the service_account flow")
		refuse("client_secret_file", o.ClientSecretFile, "by the service_account flow (the key file signs)")
	}
	if o.Flow != string(credential.FlowServiceAccount) {
		refuse("subject", o.Subject, "by the "+o.Flow+" flow")
	}
	switch o.Provider {
	case ProviderMicrosoft:
		need("tenant", o.Tenant, "for provider microsoft (the directory ID or a domain such as contoso.onmicrosoft.com)")
		if o.Tenant != "" && !tenantPattern.MatchString(o.Tenant) {
			v, p := at("tenant")
			d.errorf(v, p, "%q is not a tenant ID or domain", o.Tenant)
		}
		if o.TokenURL == "" {
			o.TokenURL = fmt.Sprintf(microsoftTokenURL, o.Tenant)
		}
		if o.DeviceAuthURL == "" && o.Flow == string(credential.FlowRefreshToken) {
			o.DeviceAuthURL = fmt.Sprintf(microsoftDeviceURL, o.Tenant)
		}
	case ProviderGoogle:
		refuse("tenant", o.Tenant, "by provider google")
		// A service account's key file names its token_uri.
		if o.TokenURL == "" && o.Flow != string(credential.FlowServiceAccount) {
			o.TokenURL = googleTokenURL
		}
		if o.DeviceAuthURL == "" && o.Flow == string(credential.FlowRefreshToken) {
			o.DeviceAuthURL = googleDeviceURL
		}
	case ProviderGeneric:
		refuse("tenant", o.Tenant, "by provider generic")
		need("token_url", o.TokenURL, "for provider generic")
	}
	for _, k := range []struct{ key, value string }{{"token_url", o.TokenURL}, {"device_auth_url", o.DeviceAuthURL}} {
		if _, set := seen[k.key]; set && k.value != "" && !endpointURL(k.value) {
			v, p := at(k.key)
			d.errorf(v, p, "%q is not an https:// URL (http:// only to a loopback address)", k.value)
		}
	}
	if _, set := seen["scopes"]; !set {
		o.Scopes = defaultScopes(o.Provider, o.Flow, kind.protocol)
	}
	return o
}

// endpointURL reports whether s is an https URL, or http to loopback.
func endpointURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	return u.Scheme == "http" && (host == "localhost" || ip != nil && ip.IsLoopback())
}

// oauth2Getter is the credential.Getter of the server's oauth2 block.
func (s Server) oauth2Getter() *credential.OAuth2Getter {
	o := s.OAuth2
	c := credential.OAuth2{
		Mailbox:            o.mailbox,
		LoginCommand:       o.loginCommand(),
		Flow:               credential.Flow(o.Flow),
		ClientID:           o.ClientID,
		TokenURL:           o.TokenURL,
		DeviceAuthURL:      o.DeviceAuthURL,
		Scopes:             o.Scopes,
		RefreshTokenFile:   o.RefreshTokenFile,
		ServiceAccountFile: o.ServiceAccountFile,
		Subject:            o.Subject,
	}
	if o.ClientSecretFile != "" {
		c.ClientSecret = credential.File(o.ClientSecretFile)
	}
	return credential.NewOAuth2(c)
}

// loginCommand is what a person runs to store a new refresh token.
func (o *OAuth2) loginCommand() string {
	return fmt.Sprintf("mailtriage login --config %s --mailbox %s", o.configFile, o.mailbox)
}

// ErrGoogleDeviceFlow: Google's device flow grants a short list of scopes
// that leaves out https://mail.google.com/ ("OAuth 2.0 for TV and
// Limited-Input Device Applications", allowed scopes).
var ErrGoogleDeviceFlow = errors.New("the Gmail scope https://mail.google.com/ is not among the scopes Google's device flow grants: use flow: service_account (Google Workspace), or store a refresh token from an installed-app sign-in in refresh_token_file")

// OAuth2Logins returns what `mailtriage login` signs in for the mailbox:
// one token source per refresh_token file among its IMAP and SMTP
// servers' oauth2 blocks of the refresh_token flow, asking for the scopes
// of every server sharing that file. It is empty when nothing needs a login.
func (m Mailbox) OAuth2Logins() ([]*credential.OAuth2Getter, error) {
	var out []*credential.OAuth2Getter
	byFile := map[string]*OAuth2{}
	var order []string
	for _, s := range []Server{m.IMAP, m.Forward.SMTP} {
		o := s.OAuth2
		if o == nil || o.Flow != string(credential.FlowRefreshToken) {
			continue
		}
		if o.Provider == ProviderGoogle && o.DeviceAuthURL == googleDeviceURL {
			return nil, fmt.Errorf("mailbox %s: %w", m.Name, ErrGoogleDeviceFlow)
		}
		first, seen := byFile[o.RefreshTokenFile]
		if !seen {
			united := *o
			united.Scopes = slices.Clone(o.Scopes)
			byFile[o.RefreshTokenFile] = &united
			order = append(order, o.RefreshTokenFile)
			continue
		}
		for _, sc := range o.Scopes {
			if !slices.Contains(first.Scopes, sc) {
				first.Scopes = append(first.Scopes, sc)
			}
		}
	}
	for _, f := range order {
		out = append(out, Server{OAuth2: byFile[f]}.oauth2Getter())
	}
	return out, nil
}
