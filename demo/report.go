package demo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"mime"
	"net/textproto"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/poller"
	"github.com/mailtriage/mailtriage/scan"
)

// RunOnce is the real `mailtriage run --once --config configPath`,
// returning the cycle reports of its mailboxes.
type RunOnce func(ctx context.Context, configPath string) ([]poller.Report, error)

// imapTimeout bounds the demo's own read-back over IMAP.
const imapTimeout = 10 * time.Second

// Run is `mailtriage demo`: it starts the environment in a temporary
// directory, runs runOnce on its configuration, prints the report to w and
// removes everything it made. A failed run still prints what happened.
func Run(ctx context.Context, w io.Writer, runOnce RunOnce) (err error) {
	dir, err := os.MkdirTemp("", "mailtriage-demo-")
	if err != nil {
		return fmt.Errorf("make demo directory: %w", err)
	}
	defer os.RemoveAll(dir)
	env, err := Start(ctx, Options{Dir: dir})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := env.Close(); err == nil {
			err = cerr
		}
	}()

	fmt.Fprintf(w, "mailtriage demo\n\n%d sample messages wait in the INBOX of an in-process IMAP server (%s, TLS with a throw-away certificate);\n"+
		"clean mail goes to an in-process SMTP sink (%s) standing in for the helpdesk; state lives in a temporary bbolt file.\n\n"+
		"Running the real `mailtriage run --once` on them...\n", len(env.Samples), env.IMAPAddr, env.Sink.Addr())
	start := time.Now()
	reports, runErr := runOnce(ctx, env.ConfigPath)
	if runErr != nil {
		fmt.Fprintf(w, "the cycle failed after %s: %v\n\n", time.Since(start).Round(time.Millisecond), runErr)
	} else {
		fmt.Fprintf(w, "one cycle done in %s.\n\n", time.Since(start).Round(time.Millisecond))
	}
	if err := env.Report(ctx, w, reports); err != nil {
		return err
	}
	if runErr != nil {
		return fmt.Errorf("demo cycle: %w", runErr)
	}
	return nil
}

// seen is one message as read back from a folder.
type seen struct {
	folder  string
	subject string
	flags   []imap.Flag
}

// Report prints what became of every sample: the verdict table from the
// cycle reports, the review folder's content with its keywords as read back
// over IMAP, and what the helpdesk received.
func (e *Env) Report(ctx context.Context, w io.Writer, reports []poller.Report) error {
	folders, err := e.readBack(ctx)
	if err != nil {
		return err
	}
	// The in-memory server numbers the seeded messages 1, 2, … in sample
	// order, so an entry's UID in the watched folder names its sample.
	entries := make(map[uint32]poller.Entry)
	for _, rep := range reports {
		for _, en := range rep.Entries {
			if en.Folder == watchedFolder && !en.Released {
				entries[en.UID] = en
			}
		}
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SAMPLE\tSUBJECT\tFROM\tENCRYPTION\tRELAY\tACTION\tWHY")
	for i, s := range e.Samples {
		en, ok := entries[uint32(i+1)]
		if !ok {
			fmt.Fprintf(tw, "%s\t%s\t\t\t\tnot handled\t-\n", strings.TrimSuffix(s.Name, ".eml"), clip(headerSubject(s.Raw), 30))
			continue
		}
		v := en.Verdict
		action := string(en.Action)
		if en.MovedTo != "" && en.MovedTo != en.Folder {
			action += " → " + en.MovedTo
		}
		reason := scan.Why(v.Reasons)
		if reason == "" {
			reason = "-"
		}
		if en.Err != nil {
			reason = en.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", strings.TrimSuffix(s.Name, ".eml"), clip(v.Subject, 30), clip(v.From, 26),
			v.Encryption, relayText(v), action, clip(reason, 72))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write demo table: %w", err)
	}

	printFolder(w, folders, ReviewFolder, "Flagged mail, moved where a person looks")
	printFolder(w, folders, watchedFolder, "Left in "+watchedFolder+" after forwarding")
	e.printReceived(w)

	fmt.Fprintf(w, "\nNext step: point it at a real mailbox.\n"+
		"  cp configs/mailtriage.example.yaml mailtriage.yaml   # set the IMAP and SMTP servers, the helpdesk address, the password files\n"+
		"  mailtriage check --config mailtriage.yaml            # tries every connection, one line per check\n"+
		"  mailtriage run --config mailtriage.yaml --once       # one cycle; drop --once to keep watching on the schedule\n"+
		"Reviewers open %s in any mail client; moving a message into %s has it forwarded anyway.\n", ReviewFolder, ReleaseFolder)
	return nil
}

// relayText is the RELAY column: the class, the service of a private relay,
// and whether the Reply-To is a relay token.
func relayText(v analyzer.Verdict) string {
	s := string(v.Relay)
	if v.RelayService != "" {
		s = v.RelayService
	}
	if v.ReplyToTokenized {
		s += " +token"
	}
	return s
}

// printFolder lists the messages read back from folder with their flags.
func printFolder(w io.Writer, folders []seen, folder, title string) {
	var lines []string
	for _, s := range folders {
		if s.folder != folder {
			continue
		}
		flags := make([]string, len(s.flags))
		for i, f := range s.flags {
			flags[i] = keywordName(f)
		}
		sort.Strings(flags)
		lines = append(lines, fmt.Sprintf("  %-40s %s", clip(s.subject, 40), strings.Join(flags, " ")))
	}
	sort.Strings(lines)
	fmt.Fprintf(w, "\n%s: %s (%d)\n", title, folder, len(lines))
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// keywordName spells mailtriage's keywords as the poller sets them.
// Keywords are case-insensitive (RFC 9051 §2.3.2), and the in-memory server
// stores them lower-cased.
func keywordName(f imap.Flag) string {
	for _, k := range []imap.Flag{poller.KeywordEncrypted, poller.KeywordUnparseable, poller.KeywordPrivateRelay, poller.KeywordForwardFailed} {
		if strings.EqualFold(string(f), string(k)) {
			return string(k)
		}
	}
	return string(f)
}

// printReceived tells what the sink received and shows the headers
// mailtriage added to the first message.
func (e *Env) printReceived(w io.Writer) {
	msgs := e.Sink.Messages()
	fmt.Fprintf(w, "\nThe helpdesk (%s, via the SMTP sink) received %d messages.\n", HelpdeskAddr, len(msgs))
	if len(msgs) == 0 {
		return
	}
	m := msgs[0]
	fmt.Fprintf(w, "The first one, envelope from %s to %s, begins with the headers mailtriage added:\n", m.From, strings.Join(m.To, ", "))
	for _, line := range addedHeaders(m.Data) {
		fmt.Fprintf(w, "  %s\n", line)
	}
	fmt.Fprintln(w, "followed by the original message, byte for byte.")
}

// readBack lists every message in the review and watched folders.
func (e *Env) readBack(ctx context.Context) ([]seen, error) {
	c, err := imapclient.DialTLS(e.IMAPAddr, &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: e.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
	})
	if err != nil {
		return nil, fmt.Errorf("read back demo mailbox: dial %s: %w", e.IMAPAddr, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	timer := time.AfterFunc(imapTimeout, func() { c.Close() })
	defer timer.Stop()

	if err := c.Login(Username, e.Password).Wait(); err != nil {
		return nil, fmt.Errorf("read back demo mailbox: login: %w", err)
	}
	var out []seen
	for _, folder := range []string{ReviewFolder, watchedFolder} {
		sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			// A review folder that was never created holds nothing.
			if folder == ReviewFolder {
				continue
			}
			return nil, fmt.Errorf("read back demo mailbox: examine %s: %w", folder, err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		var all imap.SeqSet
		all.AddRange(1, sel.NumMessages)
		msgs, err := c.Fetch(all, &imap.FetchOptions{
			Flags:       true,
			BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true}},
		}).Collect()
		if err != nil {
			return nil, fmt.Errorf("read back demo mailbox: fetch %s: %w", folder, err)
		}
		for _, m := range msgs {
			var header []byte
			for _, b := range m.BodySection {
				header = b.Bytes
			}
			out = append(out, seen{folder: folder, subject: headerSubject(header), flags: m.Flags})
		}
	}
	if err := c.Logout().Wait(); err != nil {
		return nil, fmt.Errorf("read back demo mailbox: logout: %w", err)
	}
	return out, nil
}

// headerSubject returns the decoded Subject of a header block.
func headerSubject(raw []byte) string {
	s := readHeader(raw).Get("Subject")
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		s = d
	}
	return s
}

// addedHeaders returns the Resent-* and X-Mailtriage-* fields at the top of
// a forwarded message, unfolded, as they were written.
func addedHeaders(raw []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1] += " " + strings.TrimSpace(line)
			continue
		}
		lower := strings.ToLower(line)
		if !strings.HasPrefix(lower, "resent-") && !strings.HasPrefix(lower, "x-mailtriage-") {
			break
		}
		out = append(out, line)
	}
	return out
}

// readHeader parses as much of the header block of raw as it can: a broken
// header yields the fields before the break.
func readHeader(raw []byte) textproto.MIMEHeader {
	hdr, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
	return hdr
}

// clip shortens s to n runes for the table, marking the cut.
func clip(s string, n int) string {
	r := []rune(strings.Join(strings.Fields(s), " "))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n-1]) + "…"
}
