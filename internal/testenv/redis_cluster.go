package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis Cluster timings. A replica takes over from a master that has been
// unreachable for the node timeout, plus an election of about a second
// (Redis Cluster specification, "Replica election and promotion").
const (
	clusterNodeTimeout   = time.Second
	clusterCreateTimeout = time.Minute
	clusterReadyTimeout  = 30 * time.Second
	clusterSlots         = 16384
)

// RedisCluster is a private Redis Cluster on loopback: masters that share
// the 16384 slots, each with its replicas, made by `redis-cli --cluster
// create`. Every node is a Redis of this package, stopped by t.Cleanup.
type RedisCluster struct {
	// URL is redis+cluster://first-node?addr=node&addr=..., every node a
	// seed, ready for store.Open.
	URL string
	// Nodes are every node, masters and replicas, in start order.
	Nodes []*Redis

	t        testing.TB
	masters  int
	replicas int
}

// StartRedisCluster starts masters×(1+replicas) cluster nodes, joins them
// into one cluster and waits until every slot is served and every master
// has its replicas. It fails the test, never skips, when redis-server or
// redis-cli is missing.
func StartRedisCluster(t testing.TB, masters, replicas int) *RedisCluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("testenv: a Redis Cluster needs at least 3 masters, not %d", masters)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("testenv: redis-cli not found on PATH (install the Debian package redis-tools): %v", err)
	}
	c := &RedisCluster{t: t, masters: masters, replicas: replicas}
	addrs := make([]string, masters*(1+replicas))
	for i := range addrs {
		n := startRedis(t, "", false, true)
		c.Nodes = append(c.Nodes, n)
		addrs[i] = n.Addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterCreateTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.URL = "redis+cluster://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
	c.waitReady(true)
	return c
}

// KillMasterOf kills (SIGKILL) the master serving key's slot and returns
// it; one of its replicas takes over after the node timeout.
func (c *RedisCluster) KillMasterOf(key string) *Redis {
	c.t.Helper()
	m, err := c.masterOf(key)
	if err != nil {
		c.t.Fatalf("testenv: find the master of %q: %v", key, err)
	}
	m.Kill()
	return m
}

// WaitServed waits until every slot is served by a running master again,
// as after a replica took over from a killed one.
func (c *RedisCluster) WaitServed() {
	c.t.Helper()
	c.waitReady(false)
}

// Heal restarts every stopped node (each rejoins from its nodes.conf, a
// former master as a replica of its successor) and waits until every
// master has its replicas again.
func (c *RedisCluster) Heal() {
	c.t.Helper()
	for _, n := range c.Nodes {
		if !n.running() {
			if err := n.start(); err != nil {
				c.t.Fatalf("testenv: restart cluster node %s: %v", n.Addr, err)
			}
		}
	}
	c.waitReady(true)
}

// client returns a client of this one server that never retries, for
// probes; the caller closes it.
func (r *Redis) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
}

// runningNodes returns the nodes whose process is up.
func (c *RedisCluster) runningNodes() []*Redis {
	var up []*Redis
	for _, n := range c.Nodes {
		if n.running() {
			up = append(up, n)
		}
	}
	return up
}

// running reports whether the server's process is up.
func (r *Redis) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	addr   string // host:port, without the bus port
	master bool
	failed bool
	slots  [][2]int // ranges, inclusive
}

// clusterNodes asks n for its view of the cluster (CLUSTER NODES).
func clusterNodes(ctx context.Context, n *Redis) ([]clusterNode, error) {
	rdb := n.client()
	defer rdb.Close()
	text, err := rdb.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, err
	}
	var nodes []clusterNode
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		// <id> <ip:port@cport> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot> <slot> ...
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		flags := strings.Split(f[2], ",")
		cn := clusterNode{addr: addr}
		for _, fl := range flags {
			switch fl {
			case "master":
				cn.master = true
			case "fail", "fail?":
				cn.failed = true
			}
		}
		for _, sl := range f[8:] {
			if strings.HasPrefix(sl, "[") { // a slot being migrated
				continue
			}
			lo, hi, isRange := strings.Cut(sl, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("CLUSTER NODES slot %q", sl)
			}
			cn.slots = append(cn.slots, [2]int{a, b})
		}
		nodes = append(nodes, cn)
	}
	return nodes, nil
}

// node returns the node of this cluster at addr, nil when none.
func (c *RedisCluster) node(addr string) *Redis {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// masterOf returns the running master that serves key's slot, as the
// first running node sees it.
func (c *RedisCluster) masterOf(key string) (*Redis, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	up := c.runningNodes()
	if len(up) == 0 {
		return nil, fmt.Errorf("no node is running")
	}
	rdb := up[0].client()
	slot, err := rdb.ClusterKeySlot(ctx, key).Result()
	rdb.Close()
	if err != nil {
		return nil, err
	}
	nodes, err := clusterNodes(ctx, up[0])
	if err != nil {
		return nil, err
	}
	for _, cn := range nodes {
		for _, r := range cn.slots {
			if cn.master && !cn.failed && int(slot) >= r[0] && int(slot) <= r[1] {
				if m := c.node(cn.addr); m != nil && m.running() {
					return m, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no running master serves slot %d", slot)
}

// waitReady waits until every running node reports cluster_state:ok, the
// running masters serve all slots between them and, with replicas, every
// master has its replicas connected.
func (c *RedisCluster) waitReady(replicas bool) {
	c.t.Helper()
	deadline := time.Now().Add(clusterReadyTimeout)
	var last error
	for time.Now().Before(deadline) {
		if last = c.ready(replicas); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("testenv: Redis Cluster not ready within %v: %v", clusterReadyTimeout, last)
}

func (c *RedisCluster) ready(replicas bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range c.runningNodes() {
		rdb := n.client()
		info, err := rdb.ClusterInfo(ctx).Result()
		rdb.Close()
		if err != nil {
			return fmt.Errorf("CLUSTER INFO on %s: %w", n.Addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster state is not ok", n.Addr)
		}
		nodes, err := clusterNodes(ctx, n)
		if err != nil {
			return fmt.Errorf("CLUSTER NODES on %s: %w", n.Addr, err)
		}
		served, masters := 0, 0
		for _, cn := range nodes {
			if !cn.master || cn.failed || len(cn.slots) == 0 {
				continue
			}
			if m := c.node(cn.addr); m == nil || !m.running() {
				return fmt.Errorf("%s: slots still assigned to %s, which is down", n.Addr, cn.addr)
			}
			masters++
			for _, r := range cn.slots {
				served += r[1] - r[0] + 1
			}
		}
		if served != clusterSlots || masters != c.masters {
			return fmt.Errorf("%s: %d masters serve %d slots; want %d serving %d", n.Addr, masters, served, c.masters, clusterSlots)
		}
	}
	if !replicas {
		return nil
	}
	for _, n := range c.Nodes {
		rdb := n.client()
		info, err := rdb.Info(ctx, "replication").Result()
		rdb.Close()
		if err != nil {
			return fmt.Errorf("INFO replication on %s: %w", n.Addr, err)
		}
		switch {
		case strings.Contains(info, "role:master"):
			if !strings.Contains(info, "connected_slaves:"+strconv.Itoa(c.replicas)+"\r\n") {
				return fmt.Errorf("%s: master without its %d replicas", n.Addr, c.replicas)
			}
		case !strings.Contains(info, "master_link_status:up"):
			return fmt.Errorf("%s: replica not in sync with its master", n.Addr)
		}
	}
	return nil
}
