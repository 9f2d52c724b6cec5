package poller

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/robfig/cron/v3"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/secret"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
	"github.com/mailtriage/mailtriage/store"
)

// echoingLogin refuses LOGIN quoting the password, as a careless server's
// NO text does.
type echoingLogin struct{ imapserver.Session }

func (s echoingLogin) Login(username, password string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed,
		Text: "no user " + username + " with password " + password}
}

// echoingSASL refuses AUTHENTICATE PLAIN quoting the client's response in
// base64.
type echoingSASL struct{ echoingLogin }

func (echoingSASL) AuthenticateMechanisms() []string { return []string{sasl.Plain} }

func (echoingSASL) Authenticate(string) (sasl.Server, error) { return echoResponse{}, nil }

// echoingOAuth answers AUTHENTICATE OAUTHBEARER with an RFC 7628 error
// challenge whose status quotes the client's response.
type echoingOAuth struct{ echoingLogin }

func (echoingOAuth) AuthenticateMechanisms() []string { return []string{sasl.OAuthBearer} }

func (echoingOAuth) Authenticate(string) (sasl.Server, error) { return echoChallenge{}, nil }

type echoChallenge struct{}

func (echoChallenge) Next(response []byte) ([]byte, bool, error) {
	if response == nil {
		return []byte{}, false, nil
	}
	if len(response) == 1 && response[0] == 0x01 { // the client's reply to an error challenge
		return nil, false, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "rejected"}
	}
	return []byte(`{"status":"invalid_token ` + strings.ReplaceAll(string(response), "\x01", " ") + `","schemes":"bearer"}`), false, nil
}

type echoResponse struct{}

func (echoResponse) Next(response []byte) ([]byte, bool, error) {
	if response == nil {
		return []byte{}, false, nil
	}
	return nil, false, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed,
		Text: "rejected " + base64.StdEncoding.EncodeToString(response)}
}

// TestLoginEchoWithheld: an IMAP server that quotes the password, or the
// base64 of the SASL response, in its refusal or in an error challenge gets
// neither into the poller's errors, check results or log; the response code
// of a refusal stays.
func TestLoginEchoWithheld(t *testing.T) {
	const password = "imap-secret-echoed-Pq7"
	forms := []string{password, base64.StdEncoding.EncodeToString([]byte("\x00" + testUser + "\x00" + password))}
	for _, tc := range []struct {
		name    string
		mech    credential.Mechanism
		session func(imapserver.Session) imapserver.Session
		code    bool // the server's NO ends the exchange: its response code stays
	}{
		{"LOGIN", credential.Plain, func(s imapserver.Session) imapserver.Session { return echoingLogin{s} }, true},
		{"AUTHENTICATE PLAIN", credential.Plain, func(s imapserver.Session) imapserver.Session { return echoingSASL{echoingLogin{s}} }, true},
		{"AUTHENTICATE OAUTHBEARER, echo in the error challenge", credential.OAuthBearer,
			func(s imapserver.Session) imapserver.Session { return echoingOAuth{echoingLogin{s}} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := imapmemserver.New()
			srv := imapserver.New(&imapserver.Options{
				NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
					return tc.session(mem.NewSession()), nil, nil
				},
				Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
				Logger:       log.New(io.Discard, "", 0),
				InsecureAuth: true,
			})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
			st, err := store.Open(t.Context(), "file:"+t.TempDir()+"/state.db", store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })

			var logged strings.Builder
			logger := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
			mb := Mailbox{
				Name: "support", Schedule: cron.Every(time.Hour),
				IMAP: IMAP{
					Address: ln.Addr().String(), TLS: tlsmode.None, InsecurePlaintext: true,
					Auth:        credential.Auth{Mechanism: tc.mech, Username: testUser, Secret: credential.Static(secret.New(password))},
					DialTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second, BodyTimeout: 5 * time.Second,
				},
				Folder: "INBOX", ReviewFolder: "Triage/Review", ReleaseFolder: "Triage/Release", BatchSize: 10, LeaseTTL: 3 * time.Second,
			}
			p := New(mb, analyzer.New(nil), st, funcForwarder(func(_ context.Context, _ analyzer.Verdict, body io.Reader) error { return drain(body) }), newFakeMetrics(), logger)
			var texts []string
			for _, r := range p.Check(t.Context()) {
				if r.Err != nil {
					texts = append(texts, r.Err.Error(), fmt.Sprintf("%+v", r.Err))
				}
			}
			_, err = p.Cycle(t.Context())
			if err == nil {
				t.Fatal("a cycle logged in despite the refusal")
			}
			texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), logged.String())
			all := strings.Join(texts, "\n")
			for _, f := range forms {
				if strings.Contains(all, f) {
					t.Errorf("the credential (%q) reached an error or the log:\n%s", f, all)
				}
			}
			if tc.code && !strings.Contains(err.Error(), "AUTHENTICATIONFAILED") {
				t.Errorf("the refusal lost its response code: %v", err)
			}
		})
	}
}
