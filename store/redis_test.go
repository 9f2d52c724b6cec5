package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// redisOpener opens stores on one server or cluster, each under its own
// prefix so subtests never see each other's keys.
func redisOpener(url string) opener {
	var n atomic.Int64
	return func(t *testing.T, opt Options) Store {
		t.Helper()
		opt.Prefix = fmt.Sprintf("test%d", n.Add(1))
		s, err := Open(t.Context(), url, opt)
		if err != nil {
			t.Fatalf("Open redis: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func TestRedisContract(t *testing.T) {
	testContract(t, redisOpener(testenv.StartRedis(t).URL))
}

// TestRedisKeyLayout checks the layout the package comment documents.
func TestRedisKeyLayout(t *testing.T) {
	ctx := t.Context()
	srv := testenv.StartRedis(t)
	s, err := Open(ctx, srv.URL, Options{ThreadTTL: time.Hour})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.SetMailboxState(ctx, "support", MailboxState{UIDValidity: 5, HighWater: 8}); err != nil {
		t.Fatal(err)
	}
	o := testOutcome(7)
	if err := s.RecordOutcomes(ctx, "support", []Outcome{o}); err != nil {
		t.Fatal(err)
	}
	note := ThreadNote{MessageID: "<m@x>", ThreadKey: "<r@x>", RelayAddresses: []string{"a@duck.com"}, ReplyTokens: []string{"t@duck.com"}}
	if err := s.NoteThreads(ctx, "support", []ThreadNote{note}); err != nil {
		t.Fatal(err)
	}
	l, err := s.AcquireLease(ctx, "support", time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer raw.Close()
	keys := []struct {
		key, typ string
		expires  bool
	}{
		{"mailtriage:{support}:state", "hash", false},
		{"mailtriage:{support}:outcome:" + o.Fingerprint, "string", true},
		{"mailtriage:{support}:msgid:<m@x>", "string", true},
		{"mailtriage:{support}:thread:<r@x>:msgids", "set", true},
		{"mailtriage:{support}:thread:<r@x>:relays", "set", true},
		{"mailtriage:{support}:thread:<r@x>:tokens", "set", true},
		{"mailtriage:{support}:lease", "string", true},
	}
	all, err := raw.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(keys) {
		t.Errorf("server holds keys %q; want exactly %d", all, len(keys))
	}
	for _, k := range keys {
		typ, err := raw.Type(ctx, k.key).Result()
		if err != nil || typ != k.typ {
			t.Errorf("TYPE %s = %q, %v; want %s", k.key, typ, err, k.typ)
		}
		ttl, err := raw.PTTL(ctx, k.key).Result()
		if err != nil || (ttl > 0) != k.expires {
			t.Errorf("PTTL %s = %v, %v; want expiry %v", k.key, ttl, err, k.expires)
		}
	}
	if got, _ := raw.HGetAll(ctx, "mailtriage:{support}:state").Result(); got["uidvalidity"] != "5" || got["highwater"] != "8" {
		t.Errorf("state hash = %v", got)
	}
	if got, _ := raw.Get(ctx, "mailtriage:{support}:lease").Result(); got != l.Token() {
		t.Errorf("lease value = %q; want the token %q", got, l.Token())
	}
	if got, _ := raw.Get(ctx, "mailtriage:{support}:outcome:"+o.Fingerprint).Result(); !strings.HasPrefix(got, `{"m":"<m7@example.com>","a":"flagged"`) {
		t.Errorf("outcome value = %s; want compact JSON", got)
	}
	if ttl, _ := raw.PTTL(ctx, "mailtriage:{support}:outcome:"+o.Fingerprint).Result(); ttl > DefaultRetention || ttl < DefaultRetention-2*time.Hour {
		t.Errorf("outcome PTTL = %v; want the default retention from its time (within the last hour)", ttl)
	}
}

// TestRedisPreviousLayout: outcome records in the one hash of the previous
// layout (P:{M}:outcomes, no expiry) are still read, within the retention;
// the first write of the new layout gives that hash the retention as its
// expiry, once, so that it goes when its last record is due.
func TestRedisPreviousLayout(t *testing.T) {
	ctx := t.Context()
	srv := testenv.StartRedis(t)
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer raw.Close()
	const hash = "mailtriage:{support}:outcomes"
	kept, outlivedOne, replaced := testOutcome(1), testOutcome(2), testOutcome(3)
	outlivedOne.At = time.Now().Add(-DefaultRetention - time.Hour)
	for _, o := range []Outcome{kept, outlivedOne, replaced} {
		v, err := encodeOutcome(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.HSet(ctx, hash, o.Fingerprint, v).Err(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, srv.URL, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	fps := []string{kept.Fingerprint, outlivedOne.Fingerprint, replaced.Fingerprint}
	got, err := s.Outcomes(ctx, "support", fps)
	if err != nil {
		t.Fatalf("Outcomes: %v", err)
	}
	if len(got) != 2 || !sameOutcome(got[kept.Fingerprint], kept) || !sameOutcome(got[replaced.Fingerprint], replaced) {
		t.Errorf("Outcomes from the previous layout = %+v; want the two records inside the retention", got)
	}
	if ttl, _ := raw.PTTL(ctx, hash).Result(); ttl != -1 {
		t.Errorf("PTTL of the old hash after a read = %v; want none (-1)", ttl)
	}

	replaced.Action, replaced.UID = analyzer.ActionForwarded, 99
	if err := s.RecordOutcomes(ctx, "support", []Outcome{replaced}); err != nil {
		t.Fatalf("RecordOutcomes: %v", err)
	}
	if got, err := s.Outcomes(ctx, "support", fps); err != nil || !sameOutcome(got[replaced.Fingerprint], replaced) {
		t.Errorf("Outcomes after a new record = %+v, %v; want the new record over the old hash's", got, err)
	}
	ttl, _ := raw.PTTL(ctx, hash).Result()
	if ttl <= DefaultRetention-time.Minute || ttl > DefaultRetention {
		t.Fatalf("PTTL of the old hash after a write = %v; want the retention %v", ttl, DefaultRetention)
	}
	// Later writes leave that expiry alone.
	if err := raw.PExpire(ctx, hash, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordOutcomes(ctx, "support", []Outcome{testOutcome(4)}); err != nil {
		t.Fatalf("RecordOutcomes: %v", err)
	}
	if ttl, _ := raw.PTTL(ctx, hash).Result(); ttl > time.Hour {
		t.Errorf("PTTL of the old hash after a second write = %v; want the first expiry kept", ttl)
	}
}

// TestRedisAuth: requirepass servers need the password from the URL.
func TestRedisAuth(t *testing.T) {
	const password = "Zq8-s3cret-xV"
	srv := testenv.StartRedisWithPassword(t, password)
	s, err := Open(t.Context(), srv.URL, Options{})
	if err != nil {
		t.Fatalf("Open with the password: %v", err)
	}
	if err := s.SetMailboxState(t.Context(), "support", MailboxState{1, 2}); err != nil {
		t.Errorf("SetMailboxState: %v", err)
	}
	s.Close()
	tests := []struct {
		url, want, reason string
	}{
		{"redis://" + srv.Addr + "/0", "NOAUTH", "no password"},
		{"redis://:wrong-" + password + "@" + srv.Addr + "/0", "WRONGPASS", "wrong password"},
		{"redis://default:wrong-" + password + "@" + srv.Addr + "/0", "WRONGPASS", "wrong password with user"},
	}
	for _, tt := range tests {
		s, err := Open(t.Context(), tt.url, Options{})
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded; want an error", tt.reason)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), password) {
			t.Errorf("%s: Open = %v; want %s and no password", tt.reason, err, tt.want)
		}
	}
}

// TestRedisErrorsHidePassword: whatever fails, the password stays out of
// the error text.
func TestRedisErrorsHidePassword(t *testing.T) {
	const password = "pw-Kx93-never-shown"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens there now
	tests := []struct{ url, reason string }{
		{"redis://user:" + password + "@" + dead + "/0", "dead port"},
		{"rediss://user:" + password + "@" + dead + "/0", "dead port with TLS"},
		{"redis://user:" + password + "@" + dead + "/notanumber", "bad database"},
		{"redis://user:" + password + "@" + dead + "/0?bogus=1", "unknown option"},
		{"redis://user:" + password + "@[::1/0", "malformed URL"},
		{"ftp://user:" + password + "@" + dead, "unsupported scheme"},
	}
	for _, tt := range tests {
		s, err := Open(t.Context(), tt.url, Options{})
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded; want an error", tt.reason)
			continue
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("%s: error shows the password: %v", tt.reason, err)
		}
	}
}

// TestRedisRestart: a dead server gives clear errors; the same store
// recovers once the server is back, without reopening.
func TestRedisRestart(t *testing.T) {
	ctx := t.Context()
	srv := testenv.StartRedis(t)
	s, err := Open(ctx, srv.URL, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.SetMailboxState(ctx, "support", MailboxState{1, 1}); err != nil {
		t.Fatalf("SetMailboxState: %v", err)
	}
	lease, err := s.AcquireLease(ctx, "support", time.Minute)
	if err != nil {
		t.Fatalf("AcquireLease: %v", err)
	}
	if err := lease.Renew(ctx); err != nil { // loads the script into the cache
		t.Fatalf("Renew: %v", err)
	}
	srv.Stop()
	ops := []struct {
		name string
		run  func() error
	}{
		{"hmget state", func() error { _, err := s.MailboxState(ctx, "support"); return err }},
		{"set outcomes", func() error { return s.RecordOutcomes(ctx, "support", []Outcome{testOutcome(1)}) }},
		{"set nx lease", func() error { _, err := s.AcquireLease(ctx, "support", time.Second); return err }},
		{"ping", func() error { return s.Ping(ctx) }},
	}
	for _, op := range ops {
		err := op.run()
		if err == nil || !strings.Contains(err.Error(), "redis "+op.name) || !strings.Contains(err.Error(), srv.Addr) {
			t.Errorf("%s with the server down = %v; want an error naming the command and %s", op.name, err, srv.Addr)
		}
	}
	srv.Restart()
	// The restarted server kept nothing (no persistence): the lease is gone,
	// and its script, no longer cached, is sent again.
	if err := lease.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Renew after restart = %v; want ErrLeaseLost", err)
	}
	if err := s.SetMailboxState(ctx, "support", MailboxState{2, 3}); err != nil {
		t.Fatalf("SetMailboxState after restart: %v", err)
	}
	if got, err := s.MailboxState(ctx, "support"); err != nil || got != (MailboxState{2, 3}) {
		t.Errorf("MailboxState after restart = %+v, %v", got, err)
	}
}

// TestRedisDeadline: a server that accepts but never answers holds a
// call only as long as the caller's context allows.
func TestRedisDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c // keep it open, say nothing
		}
	}()
	defer func() {
		l.Close()
		for c := range held {
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	s, err := Open(ctx, "redis://"+l.Addr().String()+"/0", Options{})
	if err == nil {
		s.Close()
		t.Fatalf("Open against a silent server succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Open took %v with a 300ms deadline: %v", took, err)
	}
}

// TestRedisTLS: rediss:// verifies the server's certificate, against
// Options.RootCAs when given.
func TestRedisTLS(t *testing.T) {
	srv := testenv.StartRedisTLS(t)
	s, err := Open(t.Context(), srv.URL, Options{RootCAs: srv.TLS.RootCAs})
	if err != nil {
		t.Fatalf("Open %s with the CA: %v", srv.URL, err)
	}
	defer s.Close()
	if err := s.SetMailboxState(t.Context(), "support", MailboxState{1, 2}); err != nil {
		t.Errorf("SetMailboxState over TLS: %v", err)
	}
	tests := []struct {
		url    string
		opt    Options
		want   string
		reason string
	}{
		{srv.URL, Options{}, "certificate", "system roots do not know the test CA"},
		{"redis://" + srv.Addr + "/0", Options{RootCAs: srv.TLS.RootCAs}, "redis ping", "plaintext to a TLS port"},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		s, err := Open(ctx, tt.url, tt.opt)
		cancel()
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded; want an error", tt.reason)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Open = %v; want an error about %s", tt.reason, err, tt.want)
		}
	}
}

// TestRedisLeaseAcrossReplicas: acquirers on separate connections, as
// separate replicas would be, still elect exactly one owner.
func TestRedisLeaseAcrossReplicas(t *testing.T) {
	srv := testenv.StartRedis(t)
	const replicas, perReplica = 5, 4
	stores := make([]Store, replicas)
	for i := range stores {
		s, err := Open(t.Context(), srv.URL, Options{})
		if err != nil {
			t.Fatalf("Open replica %d: %v", i, err)
		}
		defer s.Close()
		stores[i] = s
	}
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		winners atomic.Int64
	)
	for i := range replicas * perReplica {
		wg.Go(func() {
			<-start
			_, err := stores[i%replicas].AcquireLease(t.Context(), "support", time.Minute)
			switch {
			case err == nil:
				winners.Add(1)
			case !errors.Is(err, ErrLeaseHeld):
				t.Errorf("acquirer %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := winners.Load(); n != 1 {
		t.Errorf("%d acquirers won across %d replicas; want exactly 1", n, replicas)
	}
}
