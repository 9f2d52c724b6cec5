package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
)

// Cluster failover test parameters: the master serving the mailbox's slot
// is killed once failoverAt of failoverMessages have reached the sink.
const (
	failoverMessages = 300
	failoverAt       = 60
	// failoverWindow bounds the duplicates: the outcome records queued
	// behind the transfers (the group commit holds at most 64) and those
	// the killed master had acknowledged but not yet passed to its replica.
	failoverWindow = 64
)

// TestClusterFailover: `mailtriage run --once` on a Redis Cluster of three
// masters with a replica each; mid-cycle the master serving the mailbox's
// slot is killed. The cycle fails or carries on once the replica has taken
// over; a second run finishes the mailbox. Nothing may be lost, and
// duplicates may come only from the records the failover took with it.
func TestClusterFailover(t *testing.T) {
	h := newHarness(t, setup{state: "redis-cluster", imapTLS: "implicit", afterForward: "seen"})
	base := seedNumbered(t, h, failoverMessages)
	h.sink.SetFault(smtpsink.Fault{Delay: crashSMTPDelay})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd, logPath := h.command(ctx, "failover", "--once")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mailtriage run --once: %v", err)
	}
	for h.sink.Count() < failoverAt && time.Since(start) < runTimeout {
		time.Sleep(2 * time.Millisecond)
	}
	if n := h.sink.Count(); n < failoverAt {
		t.Fatalf("the cycle forwarded %d messages in %v; the failover was to come after %d\n%s", n, runTimeout, failoverAt, tail(logPath))
	}
	killed := h.cluster.KillMasterOf("mailtriage:{" + mailboxName + "}:lease")
	atKill := h.sink.Count()
	err := cmd.Wait()
	t.Logf("master %s killed with %d messages at the sink; the cycle ended after %v (%v) with %d",
		killed.Addr, atKill, time.Since(start).Round(time.Millisecond), err, h.sink.Count())
	h.cluster.WaitServed()
	h.noSecretIn(logPath)

	// The first run's lease went with the master, was released, or waits
	// for its lease_ttl: the test expires it at once (key layout P:{M}:lease).
	opt, err := redis.ParseClusterURL(strings.Replace(h.cluster.URL, "redis+cluster:", "redis:", 1))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClusterClient(opt)
	defer rdb.Close()
	if err := rdb.Del(ctx, "mailtriage:{"+mailboxName+"}:lease").Err(); err != nil {
		t.Fatalf("expire the first run's lease: %v", err)
	}
	h.sink.SetFault(smtpsink.Fault{})
	h.runOnce("after-failover")

	tl := tallyCrashIDs(t, h, base, nil)
	if tl.duplicates > failoverWindow {
		t.Errorf("%d duplicates after a failover; the window allows at most %d", tl.duplicates, failoverWindow)
	}
	t.Logf("cluster failover: %d messages (%d clean, %d encrypted), %d forwarded, %d duplicates", failoverMessages, tl.clean, tl.flagged, tl.forwarded, tl.duplicates)
	fmt.Printf("e2e cluster failover: master killed after %d of %d messages, %d forwarded, %d duplicates\n",
		atKill, failoverMessages, tl.forwarded, tl.duplicates)
}
