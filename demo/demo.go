// Package demo is `mailtriage demo`: the whole pipeline on a laptop, with
// nothing installed and nothing configured.
//
// It starts the in-process IMAP server (internal/memimap, go-imap's
// imapmemserver) on 127.0.0.1 with implicit TLS and a freshly generated
// certificate, seeds its INBOX with the
// sample messages embedded from demo/mailbox, starts an in-process SMTP sink
// (internal/smtpsink), writes a configuration pointing at both and at an
// embedded bbolt store in a temporary directory, and hands that file to the
// caller's run-once function: the real `mailtriage run --once` path, not a
// copy of it. It then reads back what happened, over IMAP and from the sink,
// and prints it.
//
// The demo never opens a socket beyond the loopback interface and removes its
// temporary directory when it is done.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/internal/memimap"
	"github.com/mailtriage/mailtriage/internal/selfsigned"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// The demo mailbox's fixed names.
const (
	MailboxName   = "demo"
	Username      = "helpdesk-forward@demo.example"
	ReviewFolder  = "Triage/Review"
	ReleaseFolder = "Triage/Release"
	HelpdeskAddr  = "helpdesk@demo.example"
	TriageAddr    = "triage@demo.example"
	watchedFolder = "INBOX"
)

// mailboxFS holds the sample messages, one RFC 5322 message per .eml file.
//
//go:embed mailbox/*.eml
var mailboxFS embed.FS

// Sample is one embedded sample message.
type Sample struct {
	Name string // file name, e.g. "03-smime-encrypted.eml"
	Raw  []byte
}

// Samples returns the embedded sample messages in file name order.
func Samples() ([]Sample, error) {
	names, err := fs.Glob(mailboxFS, "mailbox/*.eml")
	if err != nil {
		return nil, fmt.Errorf("list demo mailbox: %w", err)
	}
	sort.Strings(names)
	out := make([]Sample, 0, len(names))
	for _, n := range names {
		raw, err := mailboxFS.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("read demo message %s: %w", n, err)
		}
		out = append(out, Sample{Name: path.Base(n), Raw: raw})
	}
	return out, nil
}

// Options shape the demo environment.
type Options struct {
	Dir           string // where config, state and secrets go; must exist
	Schedule      string // the mailbox's cron spec; "@every 1m" when empty
	MetricsListen string // metrics.listen; "" = off
	// Repeat seeds each sample this many times, each copy after the first
	// with a Message-ID of its own (a longer cycle, for the signal tests);
	// 0 or 1: once.
	Repeat int
}

// Env is a running demo environment: an IMAP server seeded with the samples,
// an SMTP sink, and a configuration file naming them.
type Env struct {
	ConfigPath string // the generated YAML configuration
	StateURL   string // the bbolt store the configuration names
	IMAPAddr   string // host:port of the IMAP server (implicit TLS)
	Password   string // the IMAP password (also in a password_file under Dir)
	Sink       *smtpsink.Sink
	Samples    []Sample

	roots *x509.CertPool
	imap  *memimap.Server
}

// Start starts the servers, seeds INBOX and writes the configuration.
// Close stops everything; the caller owns opt.Dir.
func Start(ctx context.Context, opt Options) (env *Env, err error) {
	if opt.Schedule == "" {
		opt.Schedule = "@every 1m"
	}
	samples, err := Samples()
	if err != nil {
		return nil, err
	}
	env = &Env{Samples: samples}
	defer func() {
		if err != nil {
			env.Close()
		}
	}()

	cert, err := selfsigned.Loopback("mailtriage demo IMAP")
	if err != nil {
		return nil, fmt.Errorf("demo IMAP certificate: %w", err)
	}
	env.roots = cert.RootCAs
	env.Password = rand.Text()

	env.imap, err = memimap.Start(ctx, memimap.Options{
		TLS: &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12},
	})
	if err != nil {
		return nil, fmt.Errorf("start demo IMAP server: %w", err)
	}
	env.IMAPAddr = env.imap.Addr
	user, err := env.imap.AddUser(Username, env.Password)
	if err != nil {
		return nil, err
	}
	for i := range max(1, opt.Repeat) {
		for _, s := range samples {
			raw := s.Raw
			if i > 0 {
				raw = bytes.Replace(raw, []byte("Message-ID: <"), fmt.Appendf(nil, "Message-ID: <copy%d.", i), 1)
			}
			if _, err := user.Append(watchedFolder, bytes.NewReader(raw), &imap.AppendOptions{Time: time.Now()}); err != nil {
				return nil, fmt.Errorf("seed demo %s with %s: %w", watchedFolder, s.Name, err)
			}
		}
	}

	env.Sink, err = smtpsink.Start(ctx, smtpsink.Options{TLS: tlsmode.None})
	if err != nil {
		return nil, fmt.Errorf("start demo SMTP sink: %w", err)
	}

	caFile := filepath.Join(opt.Dir, "imap-ca.pem")
	pwFile := filepath.Join(opt.Dir, "imap-password")
	env.ConfigPath = filepath.Join(opt.Dir, "mailtriage.yaml")
	env.StateURL = "file:" + filepath.Join(opt.Dir, "state.db")
	for _, f := range []struct {
		path string
		data []byte
	}{
		{caFile, cert.PEM},
		{pwFile, []byte(env.Password)},
		{env.ConfigPath, []byte(configYAML(env, opt, caFile, pwFile))},
	} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, fmt.Errorf("write demo file: %w", err)
		}
	}
	return env, nil
}

// configYAML is the demo's configuration: IMAP over implicit TLS with the
// generated certificate as ca_file, SMTP in plain text on loopback.
func configYAML(env *Env, opt Options, caFile, pwFile string) string {
	return fmt.Sprintf(`# Generated by mailtriage demo.
log:
  level: warn
state:
  url: %q
metrics:
  listen: %q
mailboxes:
  - name: %s
    schedule: %q
    imap:
      address: %q
      tls: implicit
      ca_file: %q
      username: %q
      password_file: %q
    folder: %s
    review_folder: %s
    release_folder: %s
    after_forward: seen
    forward:
      to: [%s]
      from: %s
      mode: redirect
      smtp:
        address: %q
        tls: none
        insecure_plaintext: true
`, env.StateURL, opt.MetricsListen, MailboxName, opt.Schedule, env.IMAPAddr, caFile, Username, pwFile,
		watchedFolder, ReviewFolder, ReleaseFolder, HelpdeskAddr, TriageAddr, env.Sink.Addr())
}

// Close stops the IMAP server and the SMTP sink.
func (e *Env) Close() error {
	var errs []error
	if e.Sink != nil {
		if err := e.Sink.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close demo SMTP sink: %w", err))
		}
	}
	if e.imap != nil {
		if err := e.imap.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close demo IMAP server: %w", err))
		}
	}
	return errors.Join(errs...)
}
