package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// TestRedisClusterContract runs the contract suite on a 3-master cluster.
func TestRedisClusterContract(t *testing.T) {
	testContract(t, redisOpener(testenv.StartRedisCluster(t, 3, 0).URL))
}

// rawCluster returns a go-redis cluster client of c, closed with the test.
func rawCluster(t *testing.T, c *testenv.RedisCluster) *redis.ClusterClient {
	t.Helper()
	opt, err := redis.ParseClusterURL(strings.Replace(c.URL, "redis+cluster:", "redis:", 1))
	if err != nil {
		t.Fatal(err)
	}
	raw := redis.NewClusterClient(opt)
	t.Cleanup(func() { raw.Close() })
	return raw
}

// TestRedisClusterSlots: every key of one mailbox is in one slot, the
// slot of its hash tag, and mailboxes spread over the masters.
func TestRedisClusterSlots(t *testing.T) {
	ctx := t.Context()
	c := testenv.StartRedisCluster(t, 3, 0)
	s, err := Open(ctx, c.URL, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	mailboxes := []string{"support", "sales", "billing", "abuse", "jobs", "press"}
	for _, mb := range mailboxes {
		if err := s.SetMailboxState(ctx, mb, MailboxState{UIDValidity: 1, HighWater: 2}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordOutcomes(ctx, mb, []Outcome{testOutcome(1), testOutcome(2)}); err != nil {
			t.Fatal(err)
		}
		note := ThreadNote{MessageID: "<m@x>", ThreadKey: "<r@x>", RelayAddresses: []string{"a@duck.com"}, ReplyTokens: []string{"t@duck.com"}}
		if err := s.NoteThreads(ctx, mb, []ThreadNote{note}); err != nil {
			t.Fatal(err)
		}
		l, err := s.AcquireLease(ctx, mb, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Renew(ctx); err != nil {
			t.Errorf("Renew %s: %v", mb, err)
		}
		if err := s.NoteCycled(ctx, mb, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	raw := rawCluster(t, c)
	slots := map[int64]bool{}
	for _, mb := range mailboxes {
		want, err := raw.ClusterKeySlot(ctx, mb).Result()
		if err != nil {
			t.Fatal(err)
		}
		slots[want] = true
		var keys []string
		for _, n := range c.Nodes { // every node a master
			node := redis.NewClient(&redis.Options{Addr: n.Addr})
			ks, err := node.Keys(ctx, "mailtriage:{"+mb+"}:*").Result()
			node.Close()
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, ks...)
		}
		if len(keys) != 9 { // state, 2 outcomes, msgid, 3 thread sets, lease, cycled
			t.Errorf("%s has %d keys %q; want 9", mb, len(keys), keys)
		}
		for _, k := range keys {
			if got, err := raw.ClusterKeySlot(ctx, k).Result(); err != nil || got != want {
				t.Errorf("key %s in slot %d, %v; want the mailbox's slot %d", k, got, err, want)
			}
		}
	}
	if len(slots) < 2 {
		t.Errorf("%d mailboxes all hash to one slot; want them spread", len(mailboxes))
	}
}

// TestRedisClusterFailover: the master serving a mailbox is killed while a
// worker holds its lease and records outcomes; the store fails until a
// replica has taken over, then works again with the same client: what was
// recorded before the kill and replicated is there, the lease scripts run
// on the new master (the lease is renewed, or reported lost if its last
// write had not reached the replica), and the killed master rejoins.
func TestRedisClusterFailover(t *testing.T) {
	ctx := t.Context()
	c := testenv.StartRedisCluster(t, 3, 1)
	s, err := Open(ctx, c.URL, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	lease, err := s.AcquireLease(ctx, "support", time.Minute)
	if err != nil {
		t.Fatalf("AcquireLease: %v", err)
	}
	before := make([]Outcome, 200)
	fps := make([]string, len(before))
	for i := range before {
		before[i] = testOutcome(i)
		fps[i] = before[i].Fingerprint
	}
	if err := s.RecordOutcomes(ctx, "support", before); err != nil {
		t.Fatalf("RecordOutcomes: %v", err)
	}
	// Replicas acknowledge what they hold: WAIT on the master, so that the
	// records above are on the replica before the kill.
	raw := rawCluster(t, c)
	master, err := raw.MasterForKey(ctx, "mailtriage:{support}:lease")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := master.Wait(ctx, 1, 5000).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v; want the replica's acknowledgement", n, err)
	}

	killed := c.KillMasterOf("mailtriage:{support}:lease")
	start := time.Now()
	// While no master serves the slot, calls fail with an error; they
	// never hang past the caller's deadline.
	var failures int
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.RecordOutcomes(cctx, "support", []Outcome{testOutcome(1000)})
		cancel()
		if err == nil {
			break
		}
		failures++
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the store still fails %v after the kill: %v", time.Since(start), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("master %s killed: %d failed writes, working again after %v", killed.Addr, failures, time.Since(start).Round(time.Millisecond))
	c.WaitServed()

	got, err := s.Outcomes(ctx, "support", append(fps, testOutcome(1000).Fingerprint))
	if err != nil {
		t.Fatalf("Outcomes after failover: %v", err)
	}
	if len(got) != len(before)+1 {
		t.Errorf("after failover %d of %d records; want every replicated record and the one written after", len(got), len(before)+1)
	}
	if err := lease.Renew(ctx); err != nil {
		t.Errorf("Renew on the new master: %v", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Errorf("Release on the new master: %v", err)
	}
	if _, err := s.AcquireLease(ctx, "support", time.Minute); err != nil {
		t.Errorf("AcquireLease after Release: %v", err)
	}
	if _, err := s.AcquireLease(ctx, "support", time.Minute); !errors.Is(err, ErrLeaseHeld) {
		t.Errorf("second AcquireLease = %v; want ErrLeaseHeld", err)
	}
	c.Heal()
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping after the old master rejoined: %v", err)
	}
}
