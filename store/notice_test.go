package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/internal/testenv"
)

// reopener gives a fresh client of the same state each call: the bbolt
// file closed and opened again, or a new Redis client on the running
// server, as a restarted worker would.
type reopener func(t *testing.T) Store

// TestNotices runs the notice-limit checks on both engines.
func TestNotices(t *testing.T) {
	engines := []struct {
		name string
		open func(t *testing.T) reopener
	}{
		{"bolt", func(t *testing.T) reopener {
			path := filepath.Join(t.TempDir(), "state.db")
			var last Store
			return func(t *testing.T) Store {
				if last != nil {
					if err := last.Close(); err != nil {
						t.Fatalf("close: %v", err)
					}
				}
				s, err := Open(t.Context(), "file:"+path, Options{})
				if err != nil {
					t.Fatalf("Open bolt: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				last = s
				return s
			}
		}},
		{"redis", func(t *testing.T) reopener {
			srv := testenv.StartRedis(t)
			return func(t *testing.T) Store {
				s, err := Open(t.Context(), srv.URL, Options{})
				if err != nil {
					t.Fatalf("Open redis: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		}},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Run("claim, release, expiry", func(t *testing.T) { noticeClaims(t, e.open(t)(t)) })
			t.Run("across a restart", func(t *testing.T) { noticeRestart(t, e.open(t)) })
		})
	}
}

func claim(t *testing.T, s Store, mailbox, key string, period time.Duration) bool {
	t.Helper()
	ok, err := s.ClaimNotice(t.Context(), mailbox, key, period)
	if err != nil {
		t.Fatalf("ClaimNotice(%s, %s): %v", mailbox, key, err)
	}
	return ok
}

func noticeClaims(t *testing.T, s Store) {
	ctx := t.Context()
	steps := []struct {
		name    string
		mailbox string
		key     string
		period  time.Duration
		want    bool
	}{
		{"first claim", "support", "k1", time.Hour, true},
		{"second claim within the period", "support", "k1", time.Hour, false},
		{"another sender", "support", "k2", time.Hour, true},
		{"the same sender in another mailbox", "sales", "k1", time.Hour, true},
	}
	for _, st := range steps {
		if got := claim(t, s, st.mailbox, st.key, st.period); got != st.want {
			t.Errorf("%s: claim = %v; want %v", st.name, got, st.want)
		}
	}
	if err := s.ReleaseNotice(ctx, "support", "k1"); err != nil {
		t.Fatalf("ReleaseNotice: %v", err)
	}
	if !claim(t, s, "support", "k1", 50*time.Millisecond) {
		t.Errorf("claim after release = false; want true")
	}
	time.Sleep(100 * time.Millisecond)
	if !claim(t, s, "support", "k1", time.Hour) {
		t.Errorf("claim after the period = false; want true")
	}
	if err := s.ReleaseNotice(ctx, "unknown", "k9"); err != nil {
		t.Errorf("ReleaseNotice of nothing = %v; want nil", err)
	}
	for _, bad := range []struct {
		mailbox, key string
		period       time.Duration
	}{{"", "k", time.Hour}, {"a{b}", "k", time.Hour}, {"support", "", time.Hour}, {"support", "k", 0}} {
		if _, err := s.ClaimNotice(ctx, bad.mailbox, bad.key, bad.period); err == nil {
			t.Errorf("ClaimNotice(%q, %q, %v) = nil error", bad.mailbox, bad.key, bad.period)
		}
	}
}

func noticeRestart(t *testing.T, open reopener) {
	s := open(t)
	if !claim(t, s, "support", "k1", time.Hour) {
		t.Fatal("first claim = false")
	}
	if !claim(t, s, "support", "k2", 100*time.Millisecond) {
		t.Fatal("short claim = false")
	}
	time.Sleep(150 * time.Millisecond)
	s = open(t)
	if claim(t, s, "support", "k1", time.Hour) {
		t.Error("claim after a restart = true; want the claim made before it kept")
	}
	if !claim(t, s, "support", "k2", time.Hour) {
		t.Error("claim after a restart on an expired claim = false; want true")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.ClaimNotice(ctx, "support", "k3", time.Hour); err == nil {
		t.Error("ClaimNotice with a cancelled context = nil error")
	}
}

// BenchmarkClaimNoticeHeld: the common call, a sender's second message
// while its claim holds.
func BenchmarkClaimNoticeHeld(b *testing.B) {
	s, err := Open(b.Context(), "file:"+filepath.Join(b.TempDir(), "state.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if ok, err := s.ClaimNotice(b.Context(), "support", "k", time.Hour); err != nil || !ok {
		b.Fatalf("first claim = %v, %v", ok, err)
	}
	for b.Loop() {
		if ok, err := s.ClaimNotice(b.Context(), "support", "k", time.Hour); err != nil || ok {
			b.Fatalf("claim = %v, %v; want held", ok, err)
		}
	}
}
