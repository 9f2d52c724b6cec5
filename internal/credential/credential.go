// Package credential turns the configured way of proving who we are (a
// password from a file or the environment, an OAuth 2.0 access token from a
// file or a command) into SASL clients for IMAP AUTHENTICATE and SMTP AUTH.
//
// It follows RFC 4616 (PLAIN), RFC 7628 (OAUTHBEARER) and Google's and
// Microsoft's XOAUTH2 profile; LOGIN is the draft-murchison-sasl-login
// mechanism. It never prints a credential: values travel as secret.Secret and
// errors name only the file, variable or command that failed.
package credential

import (
	"context"
	"errors"
	"fmt"

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
