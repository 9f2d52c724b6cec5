package poller

import (
	"testing"
)

// FuzzPartPath: any part path the analyzer could hand over either parses
// into positive section numbers that print back the same, or is refused;
// never a panic.
func FuzzPartPath(f *testing.F) {
	for _, seed := range []string{"1", "1.2", "2.1.3", "", "0", "1..2", "-1", "1.a", "99999999999999999999"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		part, err := partPath(path)
		if err != nil {
			return
		}
		for _, n := range part {
			if n <= 0 {
				t.Fatalf("partPath(%q) = %v: non-positive section", path, part)
			}
		}
		if back, err := partPath(joinPath(part)); err != nil || joinPath(back) != joinPath(part) {
			t.Fatalf("round trip of %q: %v, %v", path, back, err)
		}
	})
}
