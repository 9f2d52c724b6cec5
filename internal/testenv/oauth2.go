package testenv

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// OAuth2 grant types the server takes (RFC 6749 §6, §4.4; RFC 8628 §3.4;
// RFC 7523 §2.1).
const (
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// OAuth2Options configure an OAuth2Server.
type OAuth2Options struct {
	ClientID     string        // required on every request
	ClientSecret string        // "" = a public client (none checked)
	Lifetime     time.Duration // expires_in of each access token; 1 hour when 0
	Rotate       bool          // answer each refresh with a new refresh token, the old one then refused
	// Clock is the server's clock, which decides whether an access token
	// has expired (Valid); time.Now when nil. Tests skew or advance it.
	Clock func() time.Time
}

// OAuth2Server is a local OAuth 2.0 authorization server on a loopback
// httptest server: a token endpoint (/token) for the refresh token, client
// credentials, device code and JWT bearer grants, and a device
// authorization endpoint (/devicecode, RFC 8628 §3.1) whose code is
// approved at the second poll. It hands out random access tokens and
// tells IMAP and SMTP test servers whether one is valid, so that they
// check the bearer token the client presents. Its methods are safe for
// concurrent use.
type OAuth2Server struct {
	URL           string // base URL
	TokenURL      string
	DeviceAuthURL string

	opt OAuth2Options
	srv *httptest.Server

	mu       sync.Mutex
	access   map[string]time.Time // access token -> expiry on the server's clock
	refresh  map[string]bool      // live refresh tokens
	devices  map[string]int       // device code -> polls so far
	grants   map[string]int       // grant type -> successful token answers
	scopes   map[string]string    // grant type -> the scope parameter of its last request
	subjects []string             // "sub" of each JWT bearer assertion
	issued   []string             // every token handed out
	saKey    *rsa.PublicKey
}

// StartOAuth2 starts the server; it stops with the test.
func StartOAuth2(t testing.TB, opt OAuth2Options) *OAuth2Server {
	t.Helper()
	if opt.Lifetime == 0 {
		opt.Lifetime = time.Hour
	}
	if opt.Clock == nil {
		opt.Clock = time.Now
	}
	s := &OAuth2Server{
		opt:     opt,
		access:  map[string]time.Time{},
		refresh: map[string]bool{},
		devices: map[string]int{},
		grants:  map[string]int{},
		scopes:  map[string]string{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /devicecode", s.deviceCode)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL
	s.TokenURL = s.URL + "/token"
	s.DeviceAuthURL = s.URL + "/devicecode"
	return s
}

// IssueRefreshToken makes a live refresh token, as a past login would have.
func (s *OAuth2Server) IssueRefreshToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := "rt-" + randomToken()
	s.refresh[rt] = true
	s.issued = append(s.issued, rt)
	return rt
}

// Revoke makes every refresh token invalid (a password reset, an admin's
// revocation); access tokens already issued stay valid until they expire.
func (s *OAuth2Server) Revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.refresh)
}

// Valid reports whether token is an access token this server issued and
// that has not expired by its clock.
func (s *OAuth2Server) Valid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.access[token]
	return ok && s.opt.Clock().Before(exp)
}

// Grants returns how many tokens were issued for grant.
func (s *OAuth2Server) Grants(grant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grants[grant]
}

// Tokens returns every access and refresh token the server has issued,
// for tests that look for them where they must not be (logs, errors).
func (s *OAuth2Server) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// Scope returns the scope parameter of the last request of grant.
func (s *OAuth2Server) Scope(grant string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scopes[grant]
}

// Subjects returns the users the JWT bearer assertions asked to act for.
func (s *OAuth2Server) Subjects() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.subjects...)
}

// ServiceAccountKey writes a Google-shaped service account key file
// (type, client_email, private_key, token_uri pointing at this server) to
// dir and returns its path; the server accepts assertions signed with it.
func (s *OAuth2Server) ServiceAccountKey(t testing.TB, dir, email string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("testenv: service account key: %v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testenv: service account key: %v", err)
	}
	s.mu.Lock()
	s.saKey = &key.PublicKey
	s.mu.Unlock()
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"client_email":   email,
		"private_key_id": "test-key-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"token_uri":      s.TokenURL,
	})
	path := filepath.Join(dir, "service-account.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatalf("testenv: write service account key: %v", err)
	}
	return path
}

func (s *OAuth2Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	grant := r.PostForm.Get("grant_type")
	if grant != GrantJWTBearer && !s.client(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scopes[grant] = r.PostForm.Get("scope")
	var newRefresh string
	switch grant {
	case GrantRefreshToken:
		rt := r.PostForm.Get("refresh_token")
		if !s.refresh[rt] {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		if s.opt.Rotate {
			delete(s.refresh, rt)
			newRefresh = "rt-" + randomToken()
		}
	case GrantClientCredentials:
	case GrantDeviceCode:
		code := r.PostForm.Get("device_code")
		polls, ok := s.devices[code]
		if !ok {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		s.devices[code] = polls + 1
		if polls == 0 {
			oauthError(w, http.StatusBadRequest, "authorization_pending")
			return
		}
		delete(s.devices, code)
		newRefresh = "rt-" + randomToken()
	case GrantJWTBearer:
		sub, ok := s.assertion(r.PostForm.Get("assertion"))
		if !ok {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		s.subjects = append(s.subjects, sub)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	if newRefresh != "" {
		s.refresh[newRefresh] = true
		s.issued = append(s.issued, newRefresh)
	}
	at := "at-" + randomToken()
	s.issued = append(s.issued, at)
	s.access[at] = s.opt.Clock().Add(s.opt.Lifetime)
	s.grants[grant]++
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  at,
		"token_type":    "Bearer",
		"expires_in":    int(s.opt.Lifetime / time.Second),
		"refresh_token": newRefresh,
	})
}

// client checks the client id and secret, sent in the body or by HTTP
// Basic authentication (RFC 6749 §2.3.1).
func (s *OAuth2Server) client(r *http.Request) bool {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == s.opt.ClientID && (s.opt.ClientSecret == "" || secret == s.opt.ClientSecret)
}

// assertion checks a JWT bearer assertion's RS256 signature against the
// service account key and returns its "sub" claim.
func (s *OAuth2Server) assertion(jws string) (string, bool) {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 || s.saKey == nil {
		return "", false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || verifyRS256(s.saKey, parts[0]+"."+parts[1], sig) != nil {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var claims struct {
		Sub string `json:"sub"`
		Aud string `json:"aud"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Aud != s.TokenURL {
		return "", false
	}
	return claims.Sub, true
}

func (s *OAuth2Server) deviceCode(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || !s.client(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	code := "dc-" + randomToken()
	s.mu.Lock()
	s.devices[code] = 0
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":      code,
		"user_code":        "WDJB-MJHT",
		"verification_uri": s.URL + "/device",
		"expires_in":       600,
		"interval":         1,
	})
}

func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomToken() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// verifyRS256 checks an RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature.
func verifyRS256(key *rsa.PublicKey, signed string, sig []byte) error {
	sum := sha256.Sum256([]byte(signed))
	return rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig)
}
