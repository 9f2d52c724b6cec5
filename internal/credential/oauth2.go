package credential

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"

	"github.com/mailtriage/mailtriage/internal/secret"
)

// Flow is how an OAuth 2.0 access token is obtained.
type Flow string

// The supported flows.
const (
	// FlowRefreshToken: a refresh token stored in a file by `mailtriage
	// login` (device authorization grant, RFC 8628) is exchanged for access
	// tokens (RFC 6749 §6); a rotated refresh token is written back.
	FlowRefreshToken Flow = "refresh_token"
	// FlowClientCredentials: the application's own identity (RFC 6749
	// §4.4), Microsoft's app-only access with IMAP.AccessAsApp.
	FlowClientCredentials Flow = "client_credentials"
	// FlowServiceAccount: a Google service account signs a JWT (RFC 7523)
	// naming the user it acts for (domain-wide delegation).
	FlowServiceAccount Flow = "service_account"
)

// Sentinel errors of the OAuth 2.0 flows.
var (
	// ErrRefreshRefused: the token endpoint answered invalid_grant to the
	// stored refresh token (revoked, expired, password changed): a person
	// must run `mailtriage login` again.
	ErrRefreshRefused = errors.New("refresh token refused")
	// ErrNoRefreshToken: the refresh token file is missing or empty.
	ErrNoRefreshToken = errors.New("no refresh token stored")
	// ErrTokenEndpoint: the token endpoint refused the request otherwise
	// (bad client, scope, consent).
	ErrTokenEndpoint = errors.New("token endpoint refused the request")
)

// errorCodePattern is the shape of an RFC 6749 §5.2 error code, so that no
// other text of a response reaches an error.
var errorCodePattern = regexp.MustCompile(`^[a-z_]{1,64}$`)

// tokenTimeout bounds one request to a token endpoint.
const tokenTimeout = 30 * time.Second

// OAuth2 configures an OAuth 2.0 token source. Secrets (the client secret,
// the refresh token, the service account key) are read from their files
// when a token is needed, never held in the configuration.
type OAuth2 struct {
	// Mailbox and LoginCommand name the mailbox and the command a person
	// runs to store a new refresh token, for the error of a refused one.
	Mailbox      string
	LoginCommand string

	Flow             Flow
	ClientID         string
	ClientSecret     Getter // nil for a public client
	TokenURL         string
	DeviceAuthURL    string // RFC 8628 §3.1, for Login
	Scopes           []string
	RefreshTokenFile string // FlowRefreshToken: where the refresh token lives (0600)

	ServiceAccountFile string // FlowServiceAccount: the JSON key Google issues
	Subject            string // FlowServiceAccount: the user to act for

	// HTTPClient talks to the token endpoint; nil means a client with a
	// 30 s timeout.
	HTTPClient *http.Client
	// Clock decides when a token is due for renewal; time.Now when nil.
	Clock func() time.Time
}

// NewOAuth2 returns a Getter handing out access tokens of o's flow. A token
// is kept until DefaultRefreshMargin before its expiry as measured by this
// host's clock from the endpoint's expires_in, so a skewed clock does not
// shorten it; Invalidate drops one a server refused before then.
func NewOAuth2(o OAuth2) *OAuth2Getter {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: tokenTimeout}
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &OAuth2Getter{o: o}
}

// OAuth2Getter is the Getter of NewOAuth2. It is safe for concurrent use;
// one token request runs at a time.
type OAuth2Getter struct {
	o OAuth2

	mu      sync.Mutex
	token   secret.Secret
	refresh time.Time // when to ask for a new token
}

// Get returns the current access token, fetching a new one when it is due.
func (g *OAuth2Getter) Get(ctx context.Context) (secret.Secret, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.o.Clock()
	if !g.token.IsZero() && now.Before(g.refresh) {
		return g.token, nil
	}
	tok, err := g.fetch(ctx)
	if err != nil {
		return secret.Secret{}, err
	}
	lifetime := DefaultTokenLifetime
	if !tok.Expiry.IsZero() {
		// x/oauth2 sets Expiry from expires_in on the wall clock just now.
		lifetime = time.Until(tok.Expiry)
	}
	g.token = secret.New(tok.AccessToken)
	g.refresh = now.Add(lifetime - DefaultRefreshMargin)
	if lifetime <= DefaultRefreshMargin {
		g.refresh = now // used once, then fetched again
	}
	return g.token, nil
}

// Invalidate forgets s if it is the current token, so that the next Get
// asks for a new one: for a server that refused a token this host still
// thought valid (its clock runs ahead, or the token was revoked).
func (g *OAuth2Getter) Invalidate(s secret.Secret) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.token.Reveal() == s.Reveal() {
		g.token = secret.Secret{}
	}
}

// fetch asks the token endpoint for a new access token.
func (g *OAuth2Getter) fetch(ctx context.Context) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, tokenTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, g.o.HTTPClient)
	switch g.o.Flow {
	case FlowRefreshToken:
		return g.refreshed(ctx)
	case FlowClientCredentials:
		secret, err := g.clientSecret(ctx)
		if err != nil {
			return nil, err
		}
		cc := clientcredentials.Config{ClientID: g.o.ClientID, ClientSecret: secret, TokenURL: g.o.TokenURL, Scopes: g.o.Scopes, AuthStyle: oauth2.AuthStyleInParams}
		tok, err := cc.Token(ctx)
		return tok, g.endpointError("client credentials", err)
	case FlowServiceAccount:
		jc, err := serviceAccount(g.o)
		if err != nil {
			return nil, err
		}
		tok, err := jc.TokenSource(ctx).Token()
		return tok, g.endpointError("service account "+jc.Email, err)
	default:
		return nil, fmt.Errorf("unknown OAuth2 flow %q", g.o.Flow)
	}
}

// refreshed exchanges the stored refresh token (RFC 6749 §6) and writes a
// rotated one back before the access token is used. The request names the
// scopes: Microsoft's token endpoint wants them on a refresh, and that lets
// IMAP and SMTP share one refresh token with different scopes. x/oauth2's
// own refresher sends none (golang/oauth2#540), so the request goes
// through its client credentials source with the grant type replaced,
// which that package allows for this purpose.
func (g *OAuth2Getter) refreshed(ctx context.Context) (*oauth2.Token, error) {
	stored, err := readRefreshToken(g.o.RefreshTokenFile)
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: %w; run: %s", g.o.Mailbox, err, g.o.LoginCommand)
	}
	secret, err := g.clientSecret(ctx)
	if err != nil {
		return nil, err
	}
	rc := clientcredentials.Config{
		ClientID: g.o.ClientID, ClientSecret: secret, TokenURL: g.o.TokenURL, Scopes: g.o.Scopes,
		AuthStyle:      oauth2.AuthStyleInParams,
		EndpointParams: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {stored}},
	}
	tok, err := rc.Token(ctx)
	if err != nil {
		return nil, g.endpointError("refresh token", err)
	}
	if tok.RefreshToken != "" && tok.RefreshToken != stored {
		if err := WriteRefreshToken(g.o.RefreshTokenFile, tok.RefreshToken); err != nil {
			return nil, fmt.Errorf("mailbox %s: store the rotated refresh token: %w", g.o.Mailbox, err)
		}
	}
	return tok, nil
}

// config is the x/oauth2 client configuration of the device flow, the
// client secret read from its file.
func (g *OAuth2Getter) config(ctx context.Context) (*oauth2.Config, error) {
	secret, err := g.clientSecret(ctx)
	if err != nil {
		return nil, err
	}
	return &oauth2.Config{
		ClientID:     g.o.ClientID,
		ClientSecret: secret,
		Endpoint:     oauth2.Endpoint{TokenURL: g.o.TokenURL, DeviceAuthURL: g.o.DeviceAuthURL, AuthStyle: oauth2.AuthStyleInParams},
		Scopes:       g.o.Scopes,
	}, nil
}

func (g *OAuth2Getter) clientSecret(ctx context.Context) (string, error) {
	if g.o.ClientSecret == nil {
		return "", nil
	}
	s, err := g.o.ClientSecret.Get(ctx)
	if err != nil {
		return "", fmt.Errorf("client secret: %w", err)
	}
	return s.Reveal(), nil
}

// endpointError rewrites an x/oauth2 error so that it carries the RFC 6749
// §5.2 error code and the HTTP status but never the response body, which
// may echo what was sent.
func (g *OAuth2Getter) endpointError(what string, err error) error {
	if err == nil {
		return nil
	}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return fmt.Errorf("%s at %s: %w", what, g.o.TokenURL, err)
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	if re.ErrorCode == "invalid_grant" && g.o.Flow == FlowRefreshToken {
		return fmt.Errorf("mailbox %s: %w by %s (invalid_grant: revoked, expired or consent withdrawn); run: %s",
			g.o.Mailbox, ErrRefreshRefused, g.o.TokenURL, g.o.LoginCommand)
	}
	code := re.ErrorCode
	if code == "" {
		// x/oauth2/jwt leaves the RFC 6749 §5.2 body unparsed.
		var body struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(re.Body, &body) == nil && errorCodePattern.MatchString(body.Error) {
			code = body.Error
		} else {
			code = "no error code"
		}
	}
	return fmt.Errorf("mailbox %s: %s: %w %s (%s, HTTP %d)", g.o.Mailbox, what, ErrTokenEndpoint, g.o.TokenURL, code, status)
}

// serviceAccount reads Google's JSON key file into a JWT configuration.
func serviceAccount(o OAuth2) (*jwt.Config, error) {
	b, err := os.ReadFile(o.ServiceAccountFile)
	if err != nil {
		return nil, fmt.Errorf("read service account key: %w", err)
	}
	var key struct {
		Type         string `json:"type"`
		ClientEmail  string `json:"client_email"`
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
		TokenURI     string `json:"token_uri"`
	}
	if err := json.Unmarshal(b, &key); err != nil {
		// json errors name a type and an offset, never the key material.
		return nil, fmt.Errorf("service account key %s: %w", o.ServiceAccountFile, err)
	}
	if key.Type != "service_account" || key.ClientEmail == "" || key.PrivateKey == "" {
		return nil, fmt.Errorf("service account key %s: not a Google service account key (type, client_email, private_key)", o.ServiceAccountFile)
	}
	tokenURL := o.TokenURL
	if tokenURL == "" {
		tokenURL = key.TokenURI
	}
	return &jwt.Config{
		Email:        key.ClientEmail,
		PrivateKey:   []byte(key.PrivateKey),
		PrivateKeyID: key.PrivateKeyID,
		Subject:      o.Subject,
		Scopes:       o.Scopes,
		TokenURL:     tokenURL,
	}, nil
}

// readRefreshToken reads the refresh token file.
func readRefreshToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w in %s", ErrNoRefreshToken, path)
	}
	if err != nil {
		return "", fmt.Errorf("read refresh token: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%w in %s (empty)", ErrNoRefreshToken, path)
	}
	return v, nil
}

// WriteRefreshToken stores token in path atomically: a temporary file in
// the same directory, mode 0600, synced, then renamed over path, so that a
// crash leaves the old token or the new one, never half of either.
func WriteRefreshToken(path, token string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("refresh token file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	err = f.Chmod(0o600)
	if err == nil {
		_, err = io.WriteString(f, token+"\n")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write refresh token %s: %w", path, err)
	}
	return nil
}

// Login runs the device authorization grant (RFC 8628) for a
// FlowRefreshToken source: it asks for a device code, prints the user code
// and the verification URL to w, polls the token endpoint until the person
// has signed in (or ctx ends) and stores the refresh token.
func (g *OAuth2Getter) Login(ctx context.Context, w io.Writer) error {
	if g.o.Flow != FlowRefreshToken {
		return fmt.Errorf("mailbox %s: the %s flow needs no login", g.o.Mailbox, g.o.Flow)
	}
	if g.o.DeviceAuthURL == "" {
		return fmt.Errorf("mailbox %s: no device authorization URL", g.o.Mailbox)
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, g.o.HTTPClient)
	cfg, err := g.config(ctx)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, tokenTimeout)
	da, err := cfg.DeviceAuth(dctx)
	cancel()
	if err != nil {
		return g.deviceError("device authorization", err)
	}
	fmt.Fprintf(w, "To sign in mailbox %s, open %s and enter the code %s\n", g.o.Mailbox, da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(w, "(or open %s)\n", da.VerificationURIComplete)
	}
	if !da.Expiry.IsZero() {
		fmt.Fprintf(w, "The code expires at %s. Waiting...\n", da.Expiry.Format(time.Kitchen))
	}
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		return g.deviceError("device access token", err)
	}
	if tok.RefreshToken == "" {
		return fmt.Errorf("mailbox %s: the token endpoint gave no refresh token (Microsoft needs the offline_access scope)", g.o.Mailbox)
	}
	if err := WriteRefreshToken(g.o.RefreshTokenFile, tok.RefreshToken); err != nil {
		return fmt.Errorf("mailbox %s: %w", g.o.Mailbox, err)
	}
	fmt.Fprintf(w, "Signed in; refresh token stored in %s\n", g.o.RefreshTokenFile)
	return nil
}

// deviceError is endpointError for the device flow, whose codes (RFC 8628
// §3.5: access_denied, expired_token) say what the person did.
func (g *OAuth2Getter) deviceError(what string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return fmt.Errorf("mailbox %s: %s: %w (%s)", g.o.Mailbox, what, ErrTokenEndpoint, re.ErrorCode)
	}
	return fmt.Errorf("mailbox %s: %s: %w", g.o.Mailbox, what, err)
}
