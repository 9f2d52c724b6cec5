package mx

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestParseRecord(t *testing.T) {
	for _, tc := range []struct {
		txt, id string
		ok      bool
		why     string
	}{
		{"v=STSv1; id=20160831085700Z;", "20160831085700Z", true, "RFC 8461 §3.1 example"},
		{"v=STSv1;id=abc", "abc", true, "no spaces, no final semicolon"},
		{"v=STSv1; id=abc; ext=1", "abc", true, "extension fields are allowed"},
		{"v=STSv1;", "", false, "id is required"},
		{"v=STSv2; id=abc", "", false, "unknown version"},
		{"id=abc; v=STSv1", "", false, "v must come first"},
		{"v=STSv1; id=ab-c", "", false, "id is alphanumeric"},
		{"v=STSv1; id=" + strings.Repeat("a", 33), "", false, "id is at most 32 characters"},
		{"v=STSv1; junk", "", false, "a field without ="},
	} {
		id, ok := parseRecord(tc.txt)
		if id != tc.id || ok != tc.ok {
			t.Errorf("%s: parseRecord(%q) = %q, %v; want %q, %v", tc.why, tc.txt, id, ok, tc.id, tc.ok)
		}
	}
}

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		body string
		want *Policy
		why  string
	}{
		{"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
			&Policy{Mode: ModeEnforce, MX: []string{"mail.example.com", "*.example.net"}, MaxAge: 604800 * time.Second}, "RFC 8461 §3.2 example, CRLF"},
		{"version: STSv1\nmode: testing\nmx: MX.Example.COM.\nmax_age: 86400\nfoo: bar\n",
			&Policy{Mode: ModeTesting, MX: []string{"mx.example.com"}, MaxAge: 86400 * time.Second}, "LF, unknown key ignored, names lowered"},
		{"version: STSv1\nmode: none\nmax_age: 0\n", &Policy{Mode: ModeNone}, "mode none needs no mx"},
		{"version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", nil, "unknown version"},
		{"version: STSv1\nmode: enforce\nmax_age: 1\n", nil, "enforce without mx"},
		{"version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n", nil, "unknown mode"},
		{"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n", nil, "max_age above a year"},
		{"version: STSv1\nmode: enforce\nmx: a.b\n", nil, "max_age missing"},
		{"version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", nil, "negative max_age"},
		{"<html>not found</html>", nil, "an HTML page"},
	} {
		got, err := parsePolicy(tc.body)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%s: parsePolicy = %+v, want an error", tc.why, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: parsePolicy: %v", tc.why, err)
			continue
		}
		if got.Mode != tc.want.Mode || got.MaxAge != tc.want.MaxAge || strings.Join(got.MX, " ") != strings.Join(tc.want.MX, " ") {
			t.Errorf("%s: parsePolicy = %+v, want %+v", tc.why, got, tc.want)
		}
	}
}

func TestPolicyMatches(t *testing.T) {
	p := &Policy{MX: []string{"mail.example.com", "*.example.net"}}
	for _, tc := range []struct {
		host string
		want bool
		why  string
	}{
		{"mail.example.com", true, "exact"},
		{"MAIL.example.com.", true, "case and final dot do not matter"},
		{"mx1.example.net", true, "wildcard, one label"},
		{"a.mx1.example.net", false, "the wildcard covers one label only (RFC 8461 §4.1)"},
		{"example.net", false, "the wildcard needs a label"},
		{"mail.example.org", false, "another domain"},
	} {
		if got := p.Matches(tc.host); got != tc.want {
			t.Errorf("%s: Matches(%q) = %v, want %v", tc.why, tc.host, got, tc.want)
		}
	}
}

// TestOrder: lower preference first; equal preferences come in both
// orders (RFC 5321 §5.1), over enough tries that missing one is a bug.
func TestOrder(t *testing.T) {
	mxs := []*dns.MX{
		{Preference: 20, Mx: "c.example."},
		{Preference: 10, Mx: "a.example."},
		{Preference: 10, Mx: "b.example."},
		{Preference: 30, Mx: "A.example."},
	}
	seen := map[string]bool{}
	for range 64 {
		got := strings.Join(order(mxs), " ")
		if got != "a.example b.example c.example" && got != "b.example a.example c.example" {
			t.Fatalf("order = %q: want the preference 10 pair, then c; the duplicate dropped", got)
		}
		seen[got] = true
	}
	if len(seen) != 2 {
		t.Errorf("equal preferences were never shuffled: %v", seen)
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n")
	f.Add("version: STSv1\nmode: none\nmax_age: 0")
	f.Add(":\n:\r\nmx:*.\n")
	f.Fuzz(func(t *testing.T, body string) {
		p, err := parsePolicy(body)
		if err != nil {
			return
		}
		if p.Mode != ModeNone && len(p.MX) == 0 {
			t.Errorf("policy %+v in force with no mx", p)
		}
		if p.MaxAge < 0 || p.MaxAge > maxMaxAge*time.Second {
			t.Errorf("max_age %v out of range", p.MaxAge)
		}
		p.Matches("mx.example.com")
	})
}

func FuzzParseRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1;;;id=")
	f.Fuzz(func(t *testing.T, txt string) {
		id, ok := parseRecord(txt)
		if ok != (id != "") || len(id) > 32 {
			t.Errorf("parseRecord(%q) = %q, %v", txt, id, ok)
		}
	})
}
