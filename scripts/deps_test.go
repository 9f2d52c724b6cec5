// Package scripts holds the repository's shell scripts; its test checks
// deps.sh, which `make test` and `.ci/run` run first, on fake machines.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// depsFiles are the files deps.sh looks for under DEPS_ROOT, by package.
var depsFiles = map[string]string{
	"dovecot-core":    "usr/sbin/dovecot",
	"dovecot-imapd":   "usr/lib/dovecot/imap",
	"ca-certificates": "etc/ssl/certs/ca-certificates.crt",
}

// depsCommands are the commands deps.sh looks for on PATH, by package.
var depsCommands = map[string]string{
	"redis-server": "redis-server",
	"redis-tools":  "redis-cli",
	"openssl":      "openssl",
	"gnupg":        "gpg",
	"make":         "make",
	"git":          "git",
}

// allPackages is every package deps.sh knows, in its table's order.
var allPackages = []string{"dovecot-core", "dovecot-imapd", "redis-server", "redis-tools", "openssl", "gnupg", "make", "git", "ca-certificates"}

// machine is a fake machine: a root holding the files of present and a
// PATH holding the commands of present, plus what the script itself runs;
// dir holds a copy of deps.sh.
type machine struct {
	root, bin, dir, aptLog string
}

func newMachine(t *testing.T, present []string, debian bool) machine {
	t.Helper()
	m := machine{root: t.TempDir(), bin: t.TempDir(), dir: t.TempDir()}
	m.aptLog = filepath.Join(m.root, "apt.log")
	script, err := os.ReadFile("deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	m.write(t, "deps.sh", string(script))
	// The table's own script line (cyrus.sh): fetched already on the fake
	// machine, so each test sees only the needs it sets up.
	m.write(t, "cyrus.sh", "#!/bin/sh\nexit 0\n")
	for _, tool := range []string{"dirname", "id"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s not on PATH: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(m.bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	for _, pkg := range present {
		if f, ok := depsFiles[pkg]; ok {
			p := filepath.Join(m.root, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if c, ok := depsCommands[pkg]; ok {
			if err := os.WriteFile(filepath.Join(m.bin, c), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	// apt-get records its arguments and installs nothing.
	apt := "#!/bin/sh\necho \"$*\" >> '" + m.aptLog + "'\n"
	if err := os.WriteFile(filepath.Join(m.bin, "apt-get"), []byte(apt), 0o755); err != nil {
		t.Fatal(err)
	}
	if debian {
		if err := os.MkdirAll(filepath.Join(m.root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(m.root, "etc/debian_version"), []byte("12.8\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// write puts an executable file into the directory of deps.sh.
func (m machine) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(m.dir, name), []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

// addNeed adds a line to the table of the copy of deps.sh.
func (m machine) addNeed(t *testing.T, line string) {
	t.Helper()
	p := filepath.Join(m.dir, "deps.sh")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	last := "ca-certificates  file /etc/ssl/certs/ca-certificates.crt\n"
	if !strings.Contains(string(b), last) {
		t.Fatalf("deps.sh has no line %q to add after", last)
	}
	m.write(t, "deps.sh", strings.Replace(string(b), last, last+line+"\n", 1))
}

// run runs deps.sh with args on the machine; it returns its exit status
// and output.
func (m machine) run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash not on PATH: %v", err)
	}
	cmd := exec.Command(bash, append([]string{filepath.Join(m.dir, "deps.sh")}, args...)...)
	cmd.Env = []string{"PATH=" + m.bin, "DEPS_ROOT=" + m.root}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return 0, string(out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("run deps.sh: %v", err)
	return 0, ""
}

func without(pkgs ...string) []string {
	return slices.DeleteFunc(slices.Clone(allPackages), func(p string) bool { return slices.Contains(pkgs, p) })
}

func TestDepsDryRun(t *testing.T) {
	tests := []struct {
		name    string
		present []string
		missing []string // in the table's order
	}{
		{"everything present: nothing to do", allPackages, nil},
		{"a fresh machine: everything", nil, allPackages},
		{"dovecot-core without dovecot-imapd (no /usr/lib/dovecot/imap)", without("dovecot-imapd"), []string{"dovecot-imapd"}},
		{"redis-server without redis-cli", without("redis-tools"), []string{"redis-tools"}},
		{"no gpg, no CA roots", without("gnupg", "ca-certificates"), []string{"gnupg", "ca-certificates"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, tt.present, true)
			code, out := m.run(t, "--dry-run")
			if len(tt.missing) == 0 {
				if code != 0 || out != "" {
					t.Fatalf("exit %d, output %q; want 0 and nothing", code, out)
				}
				return
			}
			if code != 1 {
				t.Errorf("exit %d; want 1\n%s", code, out)
			}
			want := "deps: would run: apt-get update && apt-get install -y --no-install-recommends " + strings.Join(tt.missing, " ") + "\n"
			if !strings.HasSuffix(out, want) {
				t.Errorf("output\n%s\nwant it to end with\n%s", out, want)
			}
			for _, pkg := range allPackages {
				if got, want := strings.Contains(out, "(Debian package "+pkg+")"), slices.Contains(tt.missing, pkg); got != want {
					t.Errorf("package %s named as missing: %v, want %v\n%s", pkg, got, want, out)
				}
			}
			if _, err := os.Stat(m.aptLog); err == nil {
				t.Errorf("--dry-run ran apt-get")
			}
		})
	}
}

// installCase is one run of deps.sh without --dry-run.
type installCase struct {
	name    string
	debian  bool
	present []string
	wantApt string // the apt-get calls, "" for none
	wantOut string // the end of the output; "" for none and exit 0
}

func TestDepsInstall(t *testing.T) {
	tests := []installCase{
		{"complete: apt-get never runs", true, allPackages, "", ""},
		{"not Debian: the command, not an install", false, without("dovecot-imapd", "gnupg"), "",
			"  apt-get update && apt-get install -y --no-install-recommends dovecot-imapd gnupg\n"},
	}
	if os.Geteuid() == 0 {
		// The fake apt-get installs nothing, so the check after it fails.
		tests = append(tests, installCase{"root on Debian: update, install, check again", true, without("dovecot-imapd", "gnupg"),
			"update -qq\ninstall -y -qq --no-install-recommends dovecot-imapd gnupg\n",
			"deps: still missing after the install\n"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, tt.present, tt.debian)
			code, out := m.run(t)
			if wantCode := map[bool]int{true: 0, false: 1}[tt.wantOut == ""]; code != wantCode {
				t.Errorf("exit %d; want %d\n%s", code, wantCode, out)
			}
			if !strings.HasSuffix(out, tt.wantOut) {
				t.Errorf("output\n%s\nwant it to end with\n%s", out, tt.wantOut)
			}
			apt, _ := os.ReadFile(m.aptLog)
			if string(apt) != tt.wantApt {
				t.Errorf("apt-get calls %q; want %q", apt, tt.wantApt)
			}
		})
	}
}

func TestDepsUsage(t *testing.T) {
	m := newMachine(t, allPackages, true)
	if code, out := m.run(t, "--install-everything"); code != 2 || !strings.Contains(out, "usage:") {
		t.Errorf("exit %d, output %q; want 2 and a usage line", code, out)
	}
}

// TestDepsScript checks the table's script kind, the one-line hook for a
// component that a script fetches itself.
func TestDepsScript(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		wantCode int
		wantOut  string
	}{
		{"fetched already: nothing to do", "#!/bin/sh\nexit 0\n", 0, ""},
		{"not fetched: the dry run names the script", "#!/bin/sh\nexit 1\n", 1, "fetch.sh\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, allPackages, true)
			m.write(t, "fetch.sh", tt.script)
			m.addNeed(t, "-                script fetch.sh")
			code, out := m.run(t, "--dry-run")
			if code != tt.wantCode || !strings.HasSuffix(out, tt.wantOut) || (tt.wantOut == "") != (out == "") {
				t.Errorf("exit %d, output %q; want %d and an output ending in %q", code, out, tt.wantCode, tt.wantOut)
			}
		})
	}
}
