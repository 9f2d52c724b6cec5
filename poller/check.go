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

// Check logs in, opens the watched folder read-only and makes sure the
// review and release folders exist (creating them as a cycle would). It
// stops at the first failure that makes the rest meaningless.
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

	sel, err := c.selectFolder(ctx, p.mb.Folder, true)
	r := CheckResult{Name: name("folder " + p.mb.Folder), Err: err}
	if err == nil {
		r.Detail = fmt.Sprintf("%d messages, uidvalidity %d", sel.NumMessages, sel.UIDValidity)
	}
	res = append(res, r)

	for _, f := range []struct{ what, folder string }{
		{"review folder", p.mb.ReviewFolder},
		{"release folder", p.mb.ReleaseFolder},
		{"forwarded folder", p.mb.ForwardedFolder},
	} {
		if f.folder == "" || (f.what == "forwarded folder" && p.mb.AfterForward != AfterForwardMove) {
			continue
		}
		created, err := c.ensure(ctx, f.folder)
		r := CheckResult{Name: name(f.what + " " + f.folder), Detail: "exists", Err: err}
		if created {
			r.Detail = "created"
		}
		res = append(res, r)
	}
	return res
}
