package bench

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/mailtriage/mailtriage/internal/testenv"
)

// relayEnv carries the bare loop's job (relayJob, JSON) to the child
// process that runs it.
const relayEnv = "MAILTRIAGE_BENCH_RELAY"

// TestMain runs the bare read-and-relay loop when the test binary is
// started as its child. The loop is a process of its own, as mailtriage
// is, so that both pay the same for talking to Dovecot and to the SMTP
// sink in the benchmark's process; run in the benchmark's process, the
// loop's SMTP round trips were hand-offs between goroutines.
func TestMain(m *testing.M) {
	if job := os.Getenv(relayEnv); job != "" {
		if err := relayChild(job, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bare loop:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// relayJob is what the child needs.
type relayJob struct {
	IMAPAddr, CAFile, User, Password, SMTPAddr string
}

// relayResult is what the child reports.
type relayResult struct {
	Messages int
	Bytes    int64
}

// relayLoop runs the bare loop over INBOX of user in a child process and
// returns what it relayed, with the child's wall time (process start to
// exit, as for mailtriage) and CPU.
func relayLoop(b *testing.B, d *testenv.Dovecot, user, sinkAddr string) (relayResult, run) {
	b.Helper()
	job, err := json.Marshal(relayJob{IMAPAddr: d.Addr, CAFile: d.CAFile, User: user, Password: d.Password, SMTPAddr: sinkAddr})
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), relayEnv+"="+string(job))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r, err := measure(cmd)
	if err != nil {
		b.Fatalf("bare loop: %v\n%s", err, tail(stderr.Bytes()))
	}
	var res relayResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		b.Fatalf("bare loop's report %q: %v", stdout.Bytes(), err)
	}
	return res, r
}

// relayChild is the bare loop: one IMAPS connection fetching every message
// of INBOX with BODY.PEEK[] and one SMTP connection sending each as it
// streams in, through go-smtp's DATA writer.
func relayChild(spec string, report io.Writer) error {
	var job relayJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		return fmt.Errorf("job: %w", err)
	}
	pem, err := os.ReadFile(job.CAFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return errors.New("no certificate in " + job.CAFile)
	}
	c, err := imapclient.DialTLS(job.IMAPAddr, &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		Dialer:    &net.Dialer{Timeout: imapDialLimit},
	})
	if err != nil {
		return fmt.Errorf("dial Dovecot: %w", err)
	}
	defer c.Close()
	if err := c.Login(job.User, job.Password).Wait(); err != nil {
		return fmt.Errorf("login %s: %w", job.User, err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return fmt.Errorf("examine INBOX: %w", err)
	}
	sc, err := smtp.Dial(job.SMTPAddr)
	if err != nil {
		return fmt.Errorf("dial SMTP sink: %w", err)
	}
	defer sc.Close()
	if err := sc.Hello("bench.mailtriage.test"); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	fetch := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}})
	bw := bufio.NewWriterSize(nil, 64<<10)
	var res relayResult
	for msg := fetch.Next(); msg != nil; msg = fetch.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			body, ok := item.(imapclient.FetchItemDataBodySection)
			if !ok {
				continue
			}
			if err := sc.Mail(triageAddr, nil); err != nil {
				return fmt.Errorf("MAIL: %w", err)
			}
			if err := sc.Rcpt(helpdeskAddr, nil); err != nil {
				return fmt.Errorf("RCPT: %w", err)
			}
			w, err := sc.Data()
			if err != nil {
				return fmt.Errorf("DATA: %w", err)
			}
			bw.Reset(w)
			copied, err := io.Copy(bw, body.Literal)
			if err == nil {
				err = bw.Flush()
			}
			if err == nil {
				err = w.Close()
			}
			if err != nil {
				return fmt.Errorf("relay message %d: %w", res.Messages+1, err)
			}
			res.Messages++
			res.Bytes += copied
		}
	}
	if err := fetch.Close(); err != nil {
		return fmt.Errorf("fetch INBOX: %w", err)
	}
	if err := sc.Quit(); err != nil {
		return fmt.Errorf("QUIT: %w", err)
	}
	return json.NewEncoder(report).Encode(res)
}
