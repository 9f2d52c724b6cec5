package store

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lua scripts, each on one key: expireOnceScript gives a key that has no
// expiry one (as EXPIRE NX, which needs Redis 7.0); with the lease scripts
// only the token's owner extends or deletes the lease.
const (
	expireOnceScript = `if redis.call("PTTL", KEYS[1]) == -1 then return redis.call("PEXPIRE", KEYS[1], ARGV[1]) end return 0`
	renewScript      = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`
	releaseScript    = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`
)

// redisStore is the shared engine, on one server or a cluster.
type redisStore struct {
	c         redis.UniversalClient
	addr      string // for errors; never the URL, which may hold a password
	prefix    string
	ttl       time.Duration
	retention time.Duration
	renew     *redis.Script
	release   *redis.Script
}

// clusterSuffix marks the URL schemes of a Redis Cluster.
const clusterSuffix = "+cluster"

func openRedis(ctx context.Context, u *url.URL, opt Options) (*redisStore, error) {
	c, addr, err := newRedisClient(u, opt.RootCAs)
	if err != nil {
		// go-redis' own messages name the scheme, path or option, never
		// the password; u.Redacted hides it in ours.
		return nil, fmt.Errorf("open state %s: %w", u.Redacted(), err)
	}
	s := &redisStore{
		c:         c,
		addr:      addr,
		prefix:    opt.Prefix,
		ttl:       opt.ThreadTTL,
		retention: opt.Retention,
		renew:     redis.NewScript(renewScript),
		release:   redis.NewScript(releaseScript),
	}
	if err := s.Ping(ctx); err != nil {
		s.c.Close()
		return nil, fmt.Errorf("open state %s: %w", u.Redacted(), err)
	}
	return s, nil
}

// newRedisClient returns a client for one server (redis://, rediss://) or,
// for redis+cluster:// and rediss+cluster://, a cluster client seeded with
// the URL's host and its addr= parameters (go-redis' ParseClusterURL form).
// addr names the server or the seeds, for errors.
func newRedisClient(u *url.URL, roots *x509.CertPool) (redis.UniversalClient, string, error) {
	plain := *u
	plain.Scheme = strings.TrimSuffix(u.Scheme, clusterSuffix)
	if plain.Scheme == u.Scheme {
		ro, err := redis.ParseURL(plain.String())
		if err != nil {
			return nil, "", err
		}
		if ro.TLSConfig != nil && roots != nil {
			ro.TLSConfig.RootCAs = roots
		}
		// Callers' context deadlines bound every network wait, not only
		// go-redis' own dial, read and write timeouts.
		ro.ContextTimeoutEnabled = true
		return redis.NewClient(ro), ro.Addr, nil
	}
	// A cluster has only database 0 (Redis Cluster specification,
	// "Implemented subset").
	if p := strings.Trim(plain.Path, "/"); p != "" && p != "0" {
		return nil, "", fmt.Errorf("a Redis Cluster has only database 0, not %q", p)
	}
	plain.Path = ""
	co, err := redis.ParseClusterURL(plain.String())
	if err != nil {
		return nil, "", err
	}
	if co.TLSConfig != nil && roots != nil {
		co.TLSConfig.RootCAs = roots
	}
	co.ContextTimeoutEnabled = true
	return redis.NewClusterClient(co), "cluster " + strings.Join(co.Addrs, ","), nil
}

// key returns P:{M}:suffix.
func (s *redisStore) key(mailbox, suffix string) string {
	return s.prefix + ":{" + mailbox + "}:" + suffix
}

// fail wraps err with the command, the object and the mailbox. A cluster
// client keeps its map of slots to masters for a minute; an error that is
// no Redis reply (a master gone, a connection refused) has it read the map
// again, so that calls reach the replica that takes over as soon as it has.
func (s *redisStore) fail(op, mailbox string, err error) error {
	var reply redis.Error
	if cc, ok := s.c.(*redis.ClusterClient); ok && !errors.As(err, &reply) {
		cc.ReloadState(context.Background())
	}
	return fmt.Errorf("redis %s %s at %s: %w", op, mailbox, s.addr, err)
}

func (s *redisStore) MailboxState(ctx context.Context, mailbox string) (MailboxState, error) {
	if err := checkMailbox(mailbox); err != nil {
		return MailboxState{}, fmt.Errorf("redis hmget state: %w", err)
	}
	vals, err := s.c.HMGet(ctx, s.key(mailbox, "state"), "uidvalidity", "highwater").Result()
	if err != nil {
		return MailboxState{}, s.fail("hmget state", mailbox, err)
	}
	var n [2]uint32
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		x, err := strconv.ParseUint(str, 10, 32)
		if err != nil {
			return MailboxState{}, s.fail("hmget state", mailbox, fmt.Errorf("field %d: %w", i, err))
		}
		n[i] = uint32(x)
	}
	return MailboxState{UIDValidity: n[0], HighWater: n[1]}, nil
}

func (s *redisStore) SetMailboxState(ctx context.Context, mailbox string, st MailboxState) error {
	if err := checkMailbox(mailbox); err != nil {
		return fmt.Errorf("redis hset state: %w", err)
	}
	err := s.c.HSet(ctx, s.key(mailbox, "state"),
		"uidvalidity", strconv.FormatUint(uint64(st.UIDValidity), 10),
		"highwater", strconv.FormatUint(uint64(st.HighWater), 10)).Err()
	if err != nil {
		return s.fail("hset state", mailbox, err)
	}
	return nil
}

// outcomeKey returns the key of one outcome record.
func (s *redisStore) outcomeKey(mailbox, fingerprint string) string {
	return s.key(mailbox, "outcome:"+fingerprint)
}

func (s *redisStore) Outcomes(ctx context.Context, mailbox string, fingerprints []string) (map[string]Outcome, error) {
	if err := checkMailbox(mailbox); err != nil {
		return nil, fmt.Errorf("redis mget outcomes: %w", err)
	}
	found := make(map[string]Outcome)
	if len(fingerprints) == 0 {
		return found, nil
	}
	keys := make([]string, len(fingerprints))
	for i, fp := range fingerprints {
		keys[i] = s.outcomeKey(mailbox, fp)
	}
	// The records, and the hash the previous layout kept them all in: one
	// round trip, one slot.
	var records, legacy *redis.SliceCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		records = p.MGet(ctx, keys...)
		legacy = p.HMGet(ctx, s.key(mailbox, "outcomes"), fingerprints...)
		return nil
	})
	if err != nil {
		return nil, s.fail("mget outcomes", mailbox, err)
	}
	now := time.Now()
	for _, vals := range [][]any{legacy.Val(), records.Val()} {
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue
			}
			o, err := decodeOutcome(fingerprints[i], []byte(str))
			if err != nil {
				return nil, s.fail("mget outcomes", mailbox, err)
			}
			if !outlived(o.At, now, s.retention) {
				found[fingerprints[i]] = o // a record overrides the previous layout's
			}
		}
	}
	return found, nil
}

func (s *redisStore) RecordOutcomes(ctx context.Context, mailbox string, outs []Outcome) error {
	if err := checkMailbox(mailbox); err != nil {
		return fmt.Errorf("redis set outcomes: %w", err)
	}
	if len(outs) == 0 {
		return nil
	}
	now := time.Now()
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, o := range outs {
			o = stamp(o, now)
			v, err := encodeOutcome(o)
			if err != nil {
				return err
			}
			key := s.outcomeKey(mailbox, o.Fingerprint)
			if left := o.At.Add(s.retention).Sub(now); left >= time.Millisecond {
				p.Set(ctx, key, v, left)
			} else {
				p.Del(ctx, key) // replaced by a record already too old to keep
			}
		}
		// Every record of the previous layout's hash predates this write:
		// all of them have outlived the retention once it has passed.
		p.Eval(ctx, expireOnceScript, []string{s.key(mailbox, "outcomes")}, s.retention.Milliseconds())
		return nil
	})
	if err != nil {
		return s.fail("set outcomes", mailbox, err)
	}
	return nil
}

func (s *redisStore) ThreadKey(ctx context.Context, mailbox string, messageIDs []string) (string, error) {
	if err := checkMailbox(mailbox); err != nil {
		return "", fmt.Errorf("redis mget thread keys: %w", err)
	}
	if len(messageIDs) == 0 {
		return "", nil
	}
	keys := make([]string, len(messageIDs))
	for i, id := range messageIDs {
		keys[i] = s.key(mailbox, "msgid:"+id)
	}
	vals, err := s.c.MGet(ctx, keys...).Result()
	if err != nil {
		return "", s.fail("mget thread keys", mailbox, err)
	}
	for _, v := range vals {
		if str, ok := v.(string); ok && str != "" {
			return str, nil
		}
	}
	return "", nil
}

func (s *redisStore) NoteThreads(ctx context.Context, mailbox string, notes []ThreadNote) error {
	if err := checkMailbox(mailbox); err != nil {
		return fmt.Errorf("redis note threads: %w", err)
	}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, n := range notes {
			if n.ThreadKey == "" {
				continue
			}
			thread := "thread:" + n.ThreadKey
			if n.MessageID != "" {
				p.Set(ctx, s.key(mailbox, "msgid:"+n.MessageID), n.ThreadKey, s.ttl)
				p.SAdd(ctx, s.key(mailbox, thread+":msgids"), n.MessageID)
			}
			if args := nonEmpty(n.RelayAddresses); len(args) > 0 {
				p.SAdd(ctx, s.key(mailbox, thread+":relays"), args...)
			}
			if args := nonEmpty(n.ReplyTokens); len(args) > 0 {
				p.SAdd(ctx, s.key(mailbox, thread+":tokens"), args...)
			}
			for _, suffix := range []string{":msgids", ":relays", ":tokens"} {
				p.PExpire(ctx, s.key(mailbox, thread+suffix), s.ttl)
			}
		}
		return nil
	})
	if err != nil {
		return s.fail("note threads", mailbox, err)
	}
	return nil
}

// nonEmpty returns the non-empty strings of ss as SADD arguments.
func nonEmpty(ss []string) []any {
	var out []any
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (s *redisStore) Thread(ctx context.Context, mailbox, key string) (Thread, error) {
	if err := checkMailbox(mailbox); err != nil {
		return Thread{}, fmt.Errorf("redis smembers thread: %w", err)
	}
	var cmds [3]*redis.StringSliceCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, suffix := range []string{":msgids", ":relays", ":tokens"} {
			cmds[i] = p.SMembers(ctx, s.key(mailbox, "thread:"+key+suffix))
		}
		return nil
	})
	if err != nil {
		return Thread{}, s.fail("smembers thread "+key+" in", mailbox, err)
	}
	var lists [3][]string
	for i, c := range cmds {
		if len(c.Val()) > 0 {
			lists[i] = slices.Sorted(slices.Values(c.Val()))
		}
	}
	return Thread{Key: key, MessageIDs: lists[0], RelayAddresses: lists[1], ReplyTokens: lists[2]}, nil
}

func (s *redisStore) AcquireLease(ctx context.Context, mailbox string, ttl time.Duration) (Lease, error) {
	if err := checkMailbox(mailbox); err != nil {
		return nil, fmt.Errorf("redis acquire lease: %w", err)
	}
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("redis acquire lease %s: ttl %v is below 1ms", mailbox, ttl)
	}
	l := &redisLease{s: s, mailbox: mailbox, key: s.key(mailbox, "lease"), token: newToken(), ttl: ttl}
	ok, err := s.c.SetNX(ctx, l.key, l.token, ttl).Result()
	if err != nil {
		return nil, s.fail("set nx lease", mailbox, err)
	}
	if !ok {
		return nil, fmt.Errorf("redis acquire lease %s: %w", mailbox, ErrLeaseHeld)
	}
	return l, nil
}

func (s *redisStore) NoteCycled(ctx context.Context, mailbox string, spacing time.Duration) error {
	if err := checkMailbox(mailbox); err != nil {
		return fmt.Errorf("redis note cycle: %w", err)
	}
	if spacing < time.Millisecond {
		return nil
	}
	if err := s.c.Set(ctx, s.key(mailbox, "cycled"), "1", spacing).Err(); err != nil {
		return s.fail("set cycled", mailbox, err)
	}
	return nil
}

func (s *redisStore) Cycled(ctx context.Context, mailbox string) (bool, error) {
	if err := checkMailbox(mailbox); err != nil {
		return false, fmt.Errorf("redis read cycle: %w", err)
	}
	n, err := s.c.Exists(ctx, s.key(mailbox, "cycled")).Result()
	if err != nil {
		return false, s.fail("exists cycled", mailbox, err)
	}
	return n == 1, nil
}

func (s *redisStore) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping %s: %w", s.addr, err)
	}
	return nil
}

func (s *redisStore) Close() error {
	if err := s.c.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("redis close %s: %w", s.addr, err)
	}
	return nil
}

// redisLease is a lease kept as P:{M}:lease.
type redisLease struct {
	s       *redisStore
	mailbox string
	key     string
	token   string
	ttl     time.Duration
}

func (l *redisLease) Token() string { return l.token }

func (l *redisLease) Renew(ctx context.Context) error {
	n, err := l.s.renew.Run(ctx, l.s.c, []string{l.key}, l.token, l.ttl.Milliseconds()).Int()
	if err != nil {
		return l.s.fail("renew lease", l.mailbox, err)
	}
	if n == 0 {
		return fmt.Errorf("redis renew lease %s: %w", l.mailbox, ErrLeaseLost)
	}
	return nil
}

func (l *redisLease) Release(ctx context.Context) error {
	n, err := l.s.release.Run(ctx, l.s.c, []string{l.key}, l.token).Int()
	if err != nil {
		return l.s.fail("release lease", l.mailbox, err)
	}
	if n == 0 {
		return fmt.Errorf("redis release lease %s: %w", l.mailbox, ErrLeaseLost)
	}
	return nil
}
