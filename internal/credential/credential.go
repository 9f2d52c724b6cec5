// Package credential turns the configured way of proving who we are (a
// password from a file or the environment, an OAuth 2.0 access token from a
// file, a command or one of the built-in flows) into SASL clients for IMAP
// AUTHENTICATE and SMTP AUTH.
//
// It follows RFC 4616 (PLAIN), RFC 7628 (OAUTHBEARER) and Google's and
// Microsoft's XOAUTH2 profile; LOGIN is the draft-murchison-sasl-login
// mechanism. The OAuth 2.0 flows (NewOAuth2) use golang.org/x/oauth2: a
// stored refresh token (RFC 6749 §6) written by the device authorization
// grant (RFC 8628, Login), client credentials (§4.4) and a Google service
// account's JWT bearer assertion (RFC 7523). It never prints a credential:
// values travel as secret.Secret and errors name only the file, variable,
// command or endpoint that failed, with an endpoint's RFC 6749 §5.2 error
// code but never its response body.
package credential

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/mailtriage/mailtriage/internal/secret"
)

// Mechanism names a SASL mechanism, as the configuration spells it.
type Mechanism string

// The supported mechanisms.
const (
	Plain       Mechanism = "plain"
	Login       Mechanism = "login"
	XOAuth2     Mechanism = "xoauth2"
	OAuthBearer Mechanism = "oauthbearer"
)

// Mechanisms lists the supported mechanisms, for validation messages.
func Mechanisms() []Mechanism { return []Mechanism{Plain, Login, XOAuth2, OAuthBearer} }

// OAuth reports whether the mechanism takes an access token rather than a
// password.
func (m Mechanism) OAuth() bool { return m == XOAuth2 || m == OAuthBearer }

// Getter hands out the current password or token. Implementations re-read
// their source as needed, so a rotated secret is picked up without restart.
type Getter interface {
	Get(ctx context.Context) (secret.Secret, error)
}

// Auth is one account's credentials.
type Auth struct {
	Mechanism Mechanism // "" means Plain
	Username  string
	Secret    Getter
}

// Invalidator is a Getter that can forget a token a server refused before
// its expiry (OAuth2Getter), so that the next Get fetches a new one.
type Invalidator interface {
	Invalidate(s secret.Secret)
}

// Withheld stands in errors and logs for the text of a server's reply to an
// authentication exchange (SMTP AUTH, IMAP AUTHENTICATE and LOGIN): a
// careless server echoes the client's response — the password or token, or
// their base64 — in it. The reply's code says what happened.
const Withheld = "[reply text withheld: it may echo the credential]"

// ErrNoSecret is returned when an Auth has no Getter.
var ErrNoSecret = errors.New("no password or token configured")

// SASL returns a fresh SASL client holding the current secret.
func (a Auth) SASL(ctx context.Context) (sasl.Client, error) {
	if a.Secret == nil {
		return nil, ErrNoSecret
	}
	s, err := a.Secret.Get(ctx)
	if err != nil {
		return nil, fmt.Errorf("credential for %s: %w", a.Username, err)
	}
	return a.Client(s)
}

// Client returns a SASL client of the mechanism holding s, a secret got
// from a.Secret (for a caller that may hand a refused token back to
// Invalidate).
func (a Auth) Client(s secret.Secret) (sasl.Client, error) {
	switch a.Mechanism {
	case Plain, "":
		return sasl.NewPlainClient("", a.Username, s.Reveal()), nil
	case Login:
		return sasl.NewLoginClient(a.Username, s.Reveal()), nil
	case XOAuth2:
		return &xoauth2Client{username: a.Username, token: s}, nil
	case OAuthBearer:
		return sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: a.Username, Token: s.Reveal()}), nil
	default:
		return nil, fmt.Errorf("unknown SASL mechanism %q", a.Mechanism)
	}
}

// xoauth2Client implements the XOAUTH2 mechanism of Gmail and Microsoft 365,
// which go-sasl does not ship:
// base64("user=" user "\x01auth=Bearer " token "\x01\x01").
type xoauth2Client struct {
	username string
	token    secret.Secret
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	ir := "user=" + c.username + "\x01auth=Bearer " + c.token.Reveal() + "\x01\x01"
	return "XOAUTH2", []byte(ir), nil
}

// Next answers the server's error challenge (a JSON status) with an empty
// response, after which the server fails the exchange with its own reply.
func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	return []byte{}, nil
}

// XOAuth2Server returns the server side of XOAUTH2, for test servers: it
// reads the initial response and hands the user and the bearer token to
// check, whose error (the protocol's own refusal) fails the exchange.
func XOAuth2Server(check func(username, token string) error) sasl.Server {
	return xoauth2Server(check)
}

type xoauth2Server func(username, token string) error

func (check xoauth2Server) Next(response []byte) ([]byte, bool, error) {
	if response == nil {
		return []byte{}, false, nil // ask for the initial response
	}
	var user, token string
	for _, kv := range strings.Split(string(response), "\x01") {
		if v, ok := strings.CutPrefix(kv, "user="); ok {
			user = v
		} else if v, ok := strings.CutPrefix(kv, "auth=Bearer "); ok {
			token = v
		}
	}
	if err := check(user, token); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}
