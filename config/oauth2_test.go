package config

import (
	"reflect"
	"strings"
	"testing"
)

// withIMAP puts block in place of the minimal file's password_file.
func withIMAP(block string) string {
	return strings.Replace(minimal, "      password_file: /run/secrets/imap\n", block, 1)
}

// The oauth2 block: each provider's defaults (flow, endpoints, scopes,
// the service account's subject), on IMAP and on SMTP.
func TestOAuth2Defaults(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		smtp bool
		want OAuth2
	}{
		{"microsoft delegated IMAP", withIMAP("      auth: oauth2\n      oauth2:\n        provider: microsoft\n        tenant: contoso.onmicrosoft.com\n        client_id: app-1\n        refresh_token_file: /var/lib/mailtriage/rt\n"), false,
			OAuth2{Provider: "microsoft", Flow: "refresh_token", Tenant: "contoso.onmicrosoft.com", ClientID: "app-1", RefreshTokenFile: "/var/lib/mailtriage/rt",
				TokenURL:      "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
				DeviceAuthURL: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode",
				Scopes:        []string{"https://outlook.office365.com/IMAP.AccessAsUser.All", "offline_access"}}},
		{"microsoft app-only IMAP", withIMAP("      auth: oauth2\n      oauth2:\n        provider: microsoft\n        flow: client_credentials\n        tenant: 0b3c5e2a-1111-2222-3333-444455556666\n        client_id: app-1\n        client_secret_file: /run/secrets/app\n"), false,
			OAuth2{Provider: "microsoft", Flow: "client_credentials", Tenant: "0b3c5e2a-1111-2222-3333-444455556666", ClientID: "app-1", ClientSecretFile: "/run/secrets/app",
				TokenURL: "https://login.microsoftonline.com/0b3c5e2a-1111-2222-3333-444455556666/oauth2/v2.0/token",
				Scopes:   []string{"https://outlook.office365.com/.default"}}},
		{"microsoft delegated SMTP", strings.Replace(minimal, "        address: smtp.example.com\n", "        address: smtp.office365.com\n        username: triage@example.com\n        auth: oauth2\n        oauth2: {provider: microsoft, tenant: contoso.com, client_id: app-1, refresh_token_file: /rt}\n", 1), true,
			OAuth2{Provider: "microsoft", Flow: "refresh_token", Tenant: "contoso.com", ClientID: "app-1", RefreshTokenFile: "/rt",
				TokenURL:      "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token",
				DeviceAuthURL: "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/devicecode",
				Scopes:        []string{"https://outlook.office365.com/SMTP.Send", "offline_access"}}},
		{"google service account acts for the username", withIMAP("      auth: oauth2\n      oauth2:\n        provider: google\n        service_account_file: /run/secrets/sa.json\n"), false,
			OAuth2{Provider: "google", Flow: "service_account", ServiceAccountFile: "/run/secrets/sa.json", Subject: "support@example.com",
				Scopes: []string{"https://mail.google.com/"}}},
		{"generic with its own scopes", withIMAP("      oauth2:\n        provider: generic\n        client_id: c\n        token_url: https://id.example.com/token\n        device_auth_url: https://id.example.com/device\n        refresh_token_file: /rt\n        scopes: [imap, offline_access]\n"), false,
			OAuth2{Provider: "generic", Flow: "refresh_token", ClientID: "c", TokenURL: "https://id.example.com/token", DeviceAuthURL: "https://id.example.com/device", RefreshTokenFile: "/rt",
				Scopes: []string{"imap", "offline_access"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml), "config.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			s := cfg.Mailboxes[0].IMAP
			if tc.smtp {
				s = cfg.Mailboxes[0].Forward.SMTP
			}
			if s.Auth != "xoauth2" || s.OAuth2 == nil {
				t.Fatalf("auth %q, oauth2 %v; want xoauth2 with the block", s.Auth, s.OAuth2)
			}
			got := *s.OAuth2
			got.mailbox, got.configFile = "", ""
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("oauth2 =\n %+v\nwant\n %+v", got, tc.want)
			}
			if s.OAuth2.loginCommand() != "mailtriage login --config config.yaml --mailbox support" {
				t.Errorf("login command %q", s.OAuth2.loginCommand())
			}
			if a, err := s.Credential(); err != nil || a.Secret == nil {
				t.Errorf("Credential: %+v, %v", a, err)
			}
		})
	}
}

// auth: oauthbearer takes an oauth2 block too.
func TestOAuth2WithOAuthBearer(t *testing.T) {
	cfg, err := Parse([]byte(withIMAP("      auth: oauthbearer\n      oauth2: {provider: google, service_account_file: /sa.json}\n")), "config.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	a, err := cfg.Mailboxes[0].IMAP.Credential()
	if err != nil || a.Mechanism != "oauthbearer" || a.Secret == nil {
		t.Fatalf("Credential: %+v, %v; want OAUTHBEARER with the oauth2 source", a, err)
	}
}

// The oauth2 block's refusals, each naming its key and line.
func TestOAuth2Errors(t *testing.T) {
	ms := func(extra string) string {
		return withIMAP("      auth: oauth2\n      oauth2:\n        provider: microsoft\n" + extra)
	}
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"auth oauth2 without a block", withIMAP("      auth: oauth2\n      token_file: /t\n"),
			[]string{`config.yaml:6: mailboxes[0].imap.auth: oauth2 needs an oauth2 block (provider, client_id, ...)`}},
		{"oauth2 and a password", withIMAP("      password_file: /p\n      oauth2: {provider: google, service_account_file: /sa}\n"),
			[]string{`config.yaml:7: mailboxes[0].imap.oauth2: password_file and oauth2 are exclusive; set one`}},
		{"no provider", withIMAP("      oauth2: {client_id: c}\n"),
			[]string{`config.yaml:6: mailboxes[0].imap.oauth2.provider: required key missing`}},
		{"microsoft without tenant", ms("        client_id: c\n        refresh_token_file: /rt\n"),
			[]string{`config.yaml:8: mailboxes[0].imap.oauth2.tenant: required for provider microsoft (the directory ID or a domain such as contoso.onmicrosoft.com)`}},
		{"refresh flow without its file", ms("        tenant: t.example\n        client_id: c\n"),
			[]string{`config.yaml:8: mailboxes[0].imap.oauth2.refresh_token_file: required for the refresh_token flow (mailtriage login writes it)`}},
		{"client credentials without a secret", ms("        flow: client_credentials\n        tenant: t.example\n        client_id: c\n"),
			[]string{`config.yaml:8: mailboxes[0].imap.oauth2.client_secret_file: required for the client_credentials flow`}},
		{"service account is Google's", ms("        flow: service_account\n        tenant: t.example\n"),
			[]string{`config.yaml:9: mailboxes[0].imap.oauth2.flow: "service_account" is not one of refresh_token, client_credentials for provider microsoft`}},
		{"plain http token url", withIMAP("      oauth2: {provider: generic, client_id: c, refresh_token_file: /rt, token_url: \"http://id.example.com/token\"}\n"),
			[]string{`config.yaml:6: mailboxes[0].imap.oauth2.token_url: "http://id.example.com/token" is not an https:// URL (http:// only to a loopback address)`}},
		{"generic without token url", withIMAP("      oauth2: {provider: generic, client_id: c, refresh_token_file: /rt}\n"),
			[]string{`config.yaml:6: mailboxes[0].imap.oauth2.token_url: required for provider generic`}},
		{"unknown oauth2 key", ms("        tenant: t.example\n        client_id: c\n        refresh_token_file: /rt\n        client_secret: s3cr3t\n"),
			[]string{`config.yaml:12: mailboxes[0].imap.oauth2.client_secret: unknown key`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "config.yaml")
			if err == nil {
				t.Fatal("Parse accepted the file")
			}
			got := strings.Split(err.Error(), "\n")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}
