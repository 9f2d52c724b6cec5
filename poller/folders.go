package poller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// ErrSpecialUseParent: the review or release folder would sit in (or be)
// the server's \Trash or \Junk folder (RFC 6154), where a client or the
// server itself may delete what it holds.
var ErrSpecialUseParent = errors.New("folder would be inside the server's trash or junk folder")

// Folders are a mailbox's configured folders as this server names them.
// A configured name is a path whose "/" separates levels: it becomes the
// server's hierarchy separator, and the path goes under the personal
// namespace's prefix when the server has one (RFC 2342): "Triage/Review"
// is "Triage/Review" on Dovecot's default namespace and
// "INBOX.Triage.Review" on Cyrus and Courier. INBOX is always INBOX
// (RFC 9051 §5.1), and a name already under the prefix is kept.
type Folders struct {
	Watched, Review, Release, Forwarded string

	Prefix    string // the personal namespace's prefix ("" for none)
	Separator string // the hierarchy separator ("" on a flat server)
}

// folders resolves the mailbox's folders on this server, once per
// poller: the namespace and separator of a server do not change.
func (p *Poller) folders(ctx context.Context, c *conn) (Folders, error) {
	p.mu.Lock()
	known := p.resolved
	p.mu.Unlock()
	if known != nil {
		return *known, nil
	}
	f, err := c.resolveFolders(ctx, p.mb)
	if err != nil {
		return Folders{}, err
	}
	p.mu.Lock()
	p.resolved = &f
	p.mu.Unlock()
	return f, nil
}

// resolveFolders reads the personal namespace (NAMESPACE, RFC 2342) or,
// without it, the separator (LIST "" "", RFC 9051 §6.3.9), maps the
// configured names, and refuses review and release folders inside a
// \Trash or \Junk folder when the server marks them (LIST (SPECIAL-USE),
// RFC 6154 §3).
func (s *conn) resolveFolders(ctx context.Context, mb Mailbox) (Folders, error) {
	var f Folders
	if s.caps.Has(imap.CapNamespace) {
		var ns *imap.NamespaceData
		err := s.do(ctx, func() error {
			var err error
			ns, err = s.c.Namespace().Wait()
			return err
		})
		if err != nil {
			return f, fmt.Errorf("namespace: %w", err)
		}
		if len(ns.Personal) > 0 {
			f.Prefix, f.Separator = ns.Personal[0].Prefix, delim(ns.Personal[0].Delim)
		}
	} else {
		err := s.do(ctx, func() error {
			list, err := s.c.List("", "", nil).Collect()
			if len(list) > 0 {
				f.Separator = delim(list[0].Delim)
			}
			return err
		})
		if err != nil {
			return f, fmt.Errorf("list the hierarchy separator: %w", err)
		}
	}
	name := func(configured string) string {
		if configured == "" {
			return ""
		}
		return folderName(configured, f.Prefix, f.Separator)
	}
	f.Watched, f.Review, f.Release, f.Forwarded = name(mb.Folder), name(mb.ReviewFolder), name(mb.ReleaseFolder), name(mb.ForwardedFolder)
	if !s.caps.Has(imap.CapSpecialUse) {
		return f, nil
	}
	var special []*imap.ListData
	err := s.do(ctx, func() error {
		var err error
		special, err = s.c.List("", "*", &imap.ListOptions{SelectSpecialUse: true}).Collect()
		return err
	})
	if err != nil {
		return f, fmt.Errorf("list special-use folders: %w", err)
	}
	for _, l := range special {
		if !slices.Contains(l.Attrs, imap.MailboxAttrTrash) && !slices.Contains(l.Attrs, imap.MailboxAttrJunk) {
			continue
		}
		for _, dest := range []string{f.Review, f.Release} {
			if dest != "" && within(dest, l.Mailbox, f.Separator) {
				return f, fmt.Errorf("%s is in %s %v: %w", dest, l.Mailbox, l.Attrs, ErrSpecialUseParent)
			}
		}
	}
	return f, nil
}

// folderName maps a configured folder path to the server's name for it.
func folderName(configured, prefix, sep string) string {
	if strings.EqualFold(configured, "INBOX") {
		return "INBOX"
	}
	levels := func(s string) string {
		if sep != "" && sep != "/" {
			return strings.ReplaceAll(s, "/", sep)
		}
		return s
	}
	// INBOX is case-insensitive, so is a prefix that starts with it.
	under := func(s string) bool { return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) }
	if under(configured) {
		return prefix + levels(configured[len(prefix):])
	}
	name := levels(configured)
	if under(name) {
		return prefix + name[len(prefix):]
	}
	return prefix + name
}

// within reports whether folder is parent or below it.
func within(folder, parent, sep string) bool {
	return folder == parent || sep != "" && strings.HasPrefix(folder, parent+sep)
}

// delim spells a LIST or NAMESPACE delimiter; 0 is NIL, a flat server.
func delim(r rune) string {
	if r == 0 {
		return ""
	}
	return string(r)
}
