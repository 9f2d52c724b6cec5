package bench

import (
	"bytes"
	"net/mail"
	"testing"
)

func TestMixIsDeterministicAndMixed(t *testing.T) {
	ts := loadTemplates(t)
	const n = 2000
	a, b := newMix(7, ts), newMix(7, ts)
	var encrypted, relayed, ordinary int
	ids := map[string]bool{}
	for i := range n {
		ra, flag := a.message("box", i)
		rb, _ := b.message("box", i)
		if !bytes.Equal(ra, rb) {
			t.Fatalf("message %d differs between two mixes with one seed", i)
		}
		m, err := mail.ReadMessage(bytes.NewReader(ra))
		if err != nil {
			t.Fatalf("message %d does not parse: %v", i, err)
		}
		id := m.Header.Get("Message-ID")
		if ids[id] || id == "" {
			t.Fatalf("message %d: Message-ID %q missing or repeated", i, id)
		}
		ids[id] = true
		switch {
		case flag:
			encrypted++
		case bytes.Contains(ra, []byte("Customer ")):
			ordinary++
		default:
			relayed++
		}
	}
	// 10% encrypted, 10% relayed, 80% ordinary, within sampling noise.
	for name, got := range map[string]struct{ got, want int }{
		"encrypted": {encrypted, n / 10}, "relayed": {relayed, n / 10}, "ordinary": {ordinary, 8 * n / 10},
	} {
		if d := got.got - got.want; d < -n/40 || d > n/40 {
			t.Errorf("%s: %d of %d messages, want about %d", name, got.got, n, got.want)
		}
	}
}

func TestWithMessageID(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"replaces", "From: a@b\r\nMessage-ID: <old@x>\r\nSubject: s\r\n\r\nbody Message-ID: <keep@x>\r\n",
			"Message-ID: <new@x>\r\nFrom: a@b\r\nSubject: s\r\n\r\nbody Message-ID: <keep@x>\r\n"},
		{"folded and lower case, LF", "message-id:\n <old@x>\nSubject: s\n\nbody\n",
			"Message-ID: <new@x>\nSubject: s\n\nbody\n"},
		{"adds when missing", "Subject: s\r\n\r\nbody\r\n", "Message-ID: <new@x>\r\nSubject: s\r\n\r\nbody\r\n"},
	}
	for _, tc := range tests {
		if got := string(withMessageID([]byte(tc.in), "<new@x>")); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
