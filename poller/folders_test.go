package poller

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailtriage/mailtriage/internal/testenv"
)

// Configured folder paths on each server shape.
func TestFolderName(t *testing.T) {
	for _, tc := range []struct {
		name, configured, prefix, sep, want string
	}{
		{"Dovecot default: unchanged", "Triage/Review", "", "/", "Triage/Review"},
		{"Cyrus and Courier: under INBOX., dots", "Triage/Review", "INBOX.", ".", "INBOX.Triage.Review"},
		{"Cyrus with unixhierarchysep: under INBOX/", "Triage/Review", "INBOX/", "/", "INBOX/Triage/Review"},
		{"already under the prefix", "INBOX.Triage.Review", "INBOX.", ".", "INBOX.Triage.Review"},
		{"already under the prefix, with slashes", "INBOX/Triage", "INBOX.", ".", "INBOX.Triage"},
		{"the prefix is case-insensitive as INBOX is", "inbox.Triage", "INBOX.", ".", "INBOX.Triage"},
		{"INBOX itself stays", "INBOX", "INBOX.", ".", "INBOX"},
		{"inbox in any case is INBOX", "Inbox", "", "/", "INBOX"},
		{"a name that merely starts like the prefix", "INBOXES/Old", "INBOX.", ".", "INBOX.INBOXES.Old"},
		{"flat server: the slash is a character", "Triage/Review", "", "", "Triage/Review"},
		{"Exchange: slash separator, no prefix", "Triage/Review", "", "/", "Triage/Review"},
		{"Gmail labels", "Triage/Review", "", "/", "Triage/Review"},
		{"a backslash separator", "Triage/Review", "", `\`, `Triage\Review`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := folderName(tc.configured, tc.prefix, tc.sep); got != tc.want {
				t.Errorf("folderName(%q, %q, %q) = %q, want %q", tc.configured, tc.prefix, tc.sep, got, tc.want)
			}
		})
	}
}

func FuzzFolderName(f *testing.F) {
	f.Add("Triage/Review", "INBOX.", ".")
	f.Add("INBOX", "", "/")
	f.Add("inbox.x", "INBOX.", ".")
	f.Add("ä/ö", "Ä.", ".")
	f.Fuzz(func(t *testing.T, configured, prefix, sep string) {
		got := folderName(configured, prefix, sep)
		if strings.EqualFold(configured, "INBOX") {
			if got != "INBOX" {
				t.Fatalf("INBOX became %q", got)
			}
			return
		}
		if !strings.HasPrefix(got, prefix) {
			t.Fatalf("%q is not under the prefix %q", got, prefix)
		}
		if sep != "" && sep != "/" && !strings.Contains(prefix+sep, "/") && strings.Contains(got, "/") {
			t.Fatalf("%q keeps a slash on a %q server", got, sep)
		}
		if again := folderName(got, prefix, sep); again != got && !strings.Contains(sep, "/") {
			t.Fatalf("not stable: %q then %q", got, again)
		}
	})
}

// Against Dovecot with Cyrus' and Courier's namespace (INBOX. and "."):
// check shows the server's names and the interop cycles use them; and a
// review folder in the \Junk or \Trash folder is refused.
func TestFoldersOnDovecotNamespaces(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opt        testenv.DovecotOptions
		review     string // configured
		wantReview string // on the server
		is         error
	}{
		{"INBOX. prefix, dot separator", testenv.DovecotOptions{NamespacePrefix: "INBOX.", Separator: "."}, "Triage/Review", "INBOX.Triage.Review", nil},
		{"no prefix, slash separator", testenv.DovecotOptions{}, "Triage/Review", "Triage/Review", nil},
		{"review folder under Junk", testenv.DovecotOptions{SpecialUse: map[string]string{"Junk": `\Junk`}}, "Junk/Review", "", ErrSpecialUseParent},
		{"review folder is Trash", testenv.DovecotOptions{NamespacePrefix: "INBOX.", Separator: ".", SpecialUse: map[string]string{"Trash": `\Trash`}}, "Trash", "", ErrSpecialUseParent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDovecotEnv(t, tc.opt)
			p := e.poller(nil, func(mb *Mailbox) { mb.ReviewFolder = tc.review })
			res := p.Check(t.Context())
			if tc.is != nil {
				if len(res) != 2 || !errors.Is(res[1].Err, tc.is) {
					t.Fatalf("check: %+v, want the folder names line to fail with %v", res, tc.is)
				}
				if _, err := p.Cycle(t.Context()); !errors.Is(err, tc.is) {
					t.Fatalf("cycle: %v, want %v", err, tc.is)
				}
				return
			}
			for _, r := range res {
				if r.Err != nil {
					t.Fatalf("check: %s: %v", r.Name, r.Err)
				}
			}
			if got := res[3].Name; got != "mailbox support: review folder "+tc.wantReview {
				t.Errorf("check line %q, want the server's name %s", got, tc.wantReview)
			}
			release := folderName("Triage/Release", tc.opt.NamespacePrefix, orSlash(tc.opt.Separator))
			e.interop(p, tc.wantReview, release, true)
		})
	}
}

func orSlash(sep string) string {
	if sep == "" {
		return "/"
	}
	return sep
}
