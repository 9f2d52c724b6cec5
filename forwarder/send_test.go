package forwarder

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
)

// TestSend: a message composed whole goes out as given, from the envelope
// sender asked for (the null reverse-path included) to the recipients
// asked for, on the session Forward uses.
func TestSend(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	f := newForwarder(t, sink, nil)
	msg := []byte("From: support-noreply@example.com\r\nTo: alice@customer.example\r\nSubject: Auto: hi\r\n\r\n.leading dot\r\nbody\r\n")
	tests := []struct {
		name string
		from string
		to   []string
	}{
		{"null reverse-path", "", []string{"alice@customer.example"}},
		{"configured sender", "support-noreply@example.com", []string{"alice@customer.example"}},
	}
	conns := make(map[int]bool)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink.Reset()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := f.Send(ctx, tt.from, tt.to, msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := sink.Messages()
			if len(got) != 1 {
				t.Fatalf("sink got %d messages; want 1", len(got))
			}
			conns[got[0].Connection] = true
			if got[0].From != tt.from || !slices.Equal(got[0].To, tt.to) || string(got[0].Data) != string(msg) {
				t.Errorf("got from %q to %v data %q; want from %q to %v data %q", got[0].From, got[0].To, got[0].Data, tt.from, tt.to, msg)
			}
		})
	}
	if err := forward(t, f, cleanVerdict(), false, original); err != nil {
		t.Fatalf("Forward after Send: %v", err)
	}
	for _, m := range sink.Messages() {
		conns[m.Connection] = true
	}
	if len(conns) != 1 {
		t.Errorf("two sends and a forward came over connections %v; want one", conns)
	}
	for _, bad := range [][]string{nil, {"not an address"}, {"a@b.example\r\nRCPT TO:<x@y>"}} {
		if err := f.Send(context.Background(), "", bad, msg); err == nil {
			t.Errorf("Send to %q = nil; want an error", bad)
		}
	}
}
