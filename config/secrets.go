package config

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/secret"
)

// ErrNoCredential is returned by Server.Credential for a server configured
// without a password or token source (an SMTP relay that takes no AUTH).
var ErrNoCredential = errors.New("no password_file, password_env, token_file, token_command or oauth2")

// Credential builds the login for this server. The secret itself is read by
// the returned Getter when a connection authenticates, not now.
func (s Server) Credential() (credential.Auth, error) {
	var g credential.Getter
	switch {
	case s.PasswordFile != "":
		g = credential.File(s.PasswordFile)
	case s.PasswordEnv != "":
		g = credential.Env(s.PasswordEnv)
	case s.TokenFile != "":
		g = credential.File(s.TokenFile)
	case len(s.TokenCommand) > 0:
		g = credential.Command(s.TokenCommand)
	case s.OAuth2 != nil:
		g = s.oauth2Getter()
	default:
		return credential.Auth{}, fmt.Errorf("credential for %s: %w", s.Address, ErrNoCredential)
	}
	return credential.Auth{Mechanism: s.Mechanism(), Username: s.Username, Secret: g}, nil
}

// RootCAs returns the system roots plus the certificates of ca_file, for
// verifying the server's certificate. Verification is never turned off.
func (s Server) RootCAs() (*x509.CertPool, error) { return rootCAs(s.CAFile, s.Address) }

// RootCAs returns the system roots plus the certificates of state.ca_file,
// for verifying a rediss:// server's certificate.
func (s State) RootCAs() (*x509.CertPool, error) { return rootCAs(s.CAFile, "the state store") }

func rootCAs(caFile, what string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read ca_file for %s: %w", what, err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read ca_file %s for %s: no PEM certificate in it", caFile, what)
	}
	return pool, nil
}

// StoreURL returns state.url with the Redis password from password_file or
// password_env put in, as a Secret so that it cannot be printed by accident.
// Without a password source it is state.url unchanged.
func (s State) StoreURL(ctx context.Context) (secret.Secret, error) {
	var g credential.Getter
	switch {
	case s.PasswordFile != "":
		g = credential.File(s.PasswordFile)
	case s.PasswordEnv != "":
		g = credential.Env(s.PasswordEnv)
	default:
		return secret.New(s.URL), nil
	}
	pw, err := g.Get(ctx)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("state password: %w", err)
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("parse state.url: %w", err)
	}
	user := ""
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, pw.Reveal())
	return secret.New(u.String()), nil
}
