package poller

import (
	"context"
	"fmt"
)

// CheckResult is one line of `mailtriage check`. Neither Detail nor Err
// ever holds a secret.
type CheckResult struct {
	Name   string // "imap login", "folder INBOX", ...
	Detail string // what was found, when it went well
	Err    error
}

// Check logs in, reads how the server names folders (namespace prefix and
// separator), opens the watched folder read-only and makes sure the review
// and release folders exist (creating them as a cycle would). Folder lines
// show the server's names. It stops at the first failure that makes the
// rest meaningless.
func (p *Poller) Check(ctx context.Context) []CheckResult {
	var res []CheckResult
	name := func(what string) string { return fmt.Sprintf("mailbox %s: %s", p.mb.Name, what) }

	c, err := p.dial(ctx, nil)
	res = append(res, CheckResult{
		Name:   name("imap login"),
		Detail: fmt.Sprintf("%s as %s (%s)", p.mb.IMAP.Address, p.mb.IMAP.Auth.Username, p.mb.IMAP.TLS),
		Err:    err,
	})
	if err != nil {
		return res
	}
	defer c.logout(ctx)

	f, err := p.folders(ctx, c)
	res = append(res, CheckResult{
		Name:   name("folder names"),
		Detail: fmt.Sprintf("personal namespace prefix %q, separator %q", f.Prefix, f.Separator),
		Err:    err,
	})
	if err != nil {
		return res
	}
	// configured says what a folder was configured as when the server
	// names it otherwise.
	configured := func(server, conf string) string {
		if server == conf {
			return ""
		}
		return fmt.Sprintf(" (configured %q)", conf)
	}

	sel, err := c.selectFolder(ctx, f.Watched, true)
	r := CheckResult{Name: name("folder " + f.Watched), Err: err}
	if err == nil {
		r.Detail = fmt.Sprintf("%d messages, uidvalidity %d%s", sel.NumMessages, sel.UIDValidity, configured(f.Watched, p.mb.Folder))
	}
	res = append(res, r)

	for _, x := range []struct{ what, folder, conf string }{
		{"review folder", f.Review, p.mb.ReviewFolder},
		{"release folder", f.Release, p.mb.ReleaseFolder},
		{"forwarded folder", f.Forwarded, p.mb.ForwardedFolder},
	} {
		if x.folder == "" || (x.what == "forwarded folder" && p.mb.AfterForward != AfterForwardMove) {
			continue
		}
		created, err := c.ensure(ctx, x.folder)
		r := CheckResult{Name: name(x.what + " " + x.folder), Detail: "exists" + configured(x.folder, x.conf), Err: err}
		if created {
			r.Detail = "created" + configured(x.folder, x.conf)
		}
		res = append(res, r)
	}
	return res
}
