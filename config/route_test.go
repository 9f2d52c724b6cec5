package config

import (
	"strings"
	"testing"

	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// routeConfig is a mailbox whose forward section is fwd (indented by four).
func routeConfig(fwd string) string {
	return `mailboxes:
  - name: support
    imap:
      address: imap.example.com:993
      username: support@example.com
      password_file: /run/secrets/imap
    forward:
` + fwd
}

// imapBlock is a forward section of route imap.
const imapBlock = `      route: imap
      imap:
        address: desk.example.com
        username: intake@example.com
        password_env: DESK_PASSWORD
`

// TestForwardRoute: forward.route picks the keys a forward section takes.
func TestForwardRoute(t *testing.T) {
	tests := []struct {
		name       string
		fwd        string
		wantErr    string // "" when the file is valid
		wantFolder string
	}{
		{name: "imap, default folder", fwd: imapBlock, wantFolder: "INBOX"},
		{name: "imap, folder", fwd: imapBlock + "        folder: Helpdesk/Intake\n", wantFolder: "Helpdesk/Intake"},
		{name: "imap, same account, another folder", fwd: `      route: imap
      imap:
        address: imap.example.com:993
        username: support@example.com
        password_file: /run/secrets/imap
        folder: Helpdesk
`, wantFolder: "Helpdesk"},
		{name: "imap, the watched folder", fwd: `      route: imap
      imap:
        address: imap.example.com
        username: Support@example.com
        password_file: /run/secrets/imap
`, wantErr: `mailboxes[0].forward.imap.folder: "INBOX" is also folder of this account`},
		{name: "imap without its block", fwd: "      route: imap\n", wantErr: "mailboxes[0].forward.imap: required key missing"},
		{name: "imap with smtp", fwd: imapBlock + "      smtp:\n        address: smtp.example.com\n", wantErr: "forward.smtp: only for route: smtp (this is route: imap)"},
		{name: "imap with to", fwd: imapBlock + "      to: [desk@example.com]\n", wantErr: "forward.to: only for route: smtp"},
		{name: "imap with mode", fwd: imapBlock + "      mode: attach\n", wantErr: "forward.mode: only for route: smtp"},
		{name: "imap, empty folder", fwd: imapBlock + "        folder: \"\"\n", wantErr: "forward.imap.folder: \"\" must be a folder name"},
		{name: "imap, misspelt folder", fwd: imapBlock + "        foldr: X\n", wantErr: "forward.imap.foldr: unknown key (did you mean folder?)"},
		{name: "imap block needs a login", fwd: "      route: imap\n      imap:\n        address: desk.example.com\n", wantErr: "forward.imap.username: required key missing"},
		{name: "smtp with imap", fwd: `      to: [desk@example.com]
      from: triage@example.com
      smtp:
        address: smtp.example.com
      imap:
        address: desk.example.com
        username: intake@example.com
        password_env: DESK_PASSWORD
`, wantErr: "forward.imap: only for route: imap (this is route: smtp)"},
		{name: "smtp without smtp", fwd: "      route: smtp\n      to: [desk@example.com]\n      from: triage@example.com\n", wantErr: "forward.smtp: required key missing"},
		{name: "unknown route", fwd: "      route: mail\n", wantErr: `forward.route: "mail" is not one of smtp, imap`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(routeConfig(tc.fwd)), "t.yaml")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse = %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			fw := cfg.Mailboxes[0].Forward
			if fw.Route != RouteIMAP || fw.IMAP.Folder != tc.wantFolder || fw.IMAP.TLS != tlsmode.Implicit || !strings.HasSuffix(fw.IMAP.Address, ":993") {
				t.Errorf("forward = %+v, want route imap into %q over implicit TLS on port 993", fw, tc.wantFolder)
			}
		})
	}
}
