package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// lockWait is how long Open waits for another process's lock on the file.
const lockWait = time.Second

// Bucket and key names inside a mailbox's bucket.
var (
	bucketState    = []byte("state")
	bucketOutcomes = []byte("outcomes")
	bucketMsgIDs   = []byte("msgids")
	bucketThreads  = []byte("threads")
	bucketExpiry   = []byte("expiry") // the index of msgids and threads by expiry (expiryKey)
	bucketDone     = []byte("done")   // the index of outcomes by their At (doneKey)
	keyLease       = []byte("lease")
	keyCycled      = []byte("cycled") // 8-byte big-endian Unix ns until which the last cycle counts as recent
	keyUIDValidity = []byte("uidvalidity")
	keyHighWater   = []byte("highwater")
)

// boltStore is the embedded engine.
type boltStore struct {
	db        *bolt.DB
	ttl       time.Duration
	retention time.Duration
}

// dropPerWrite bounds how many outcomes that outlived the retention one
// RecordOutcomes deletes, so that a shortened retention cannot make one
// write transaction huge; the rest go in later writes or at the next open.
const dropPerWrite = 10000

// msgIDRecord maps a Message-ID to its thread until expiry.
type msgIDRecord struct {
	Key    string    `json:"k"`
	Expiry time.Time `json:"x"`
}

// threadRecord is one thread's sets until expiry.
type threadRecord struct {
	MessageIDs     []string  `json:"m,omitempty"`
	RelayAddresses []string  `json:"r,omitempty"`
	ReplyTokens    []string  `json:"t,omitempty"`
	Expiry         time.Time `json:"x"`
}

// leaseRecord is a mailbox's lease.
type leaseRecord struct {
	Token  string    `json:"t"`
	Expiry time.Time `json:"x"`
}

func openBolt(ctx context.Context, path string, opt Options) (*boltStore, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	if !opt.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("open state file %s: %w", path, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait, ReadOnly: opt.ReadOnly})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open state file %s: %w (waited %v)", path, ErrLocked, lockWait)
	}
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	s := &boltStore{db: db, ttl: opt.ThreadTTL, retention: opt.Retention}
	if opt.ReadOnly {
		return s, nil
	}
	if err := s.tidy(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	return s, nil
}

// tidy runs when the file is opened: it deletes expired thread entries,
// outcomes older than the retention and every lease. The file lock proves
// that no other process has the file, so a lease found now was left by a
// process that died holding it.
func (s *boltStore) tidy() error {
	now := time.Now()
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, mb *bolt.Bucket) error {
			if err := mb.Delete(keyLease); err != nil {
				return fmt.Errorf("drop stale lease of %s: %w", name, err)
			}
			if err := dropExpired(mb, now); err != nil {
				return fmt.Errorf("expire threads of %s: %w", name, err)
			}
			if err := s.dropOutlived(mb, now, -1); err != nil {
				return fmt.Errorf("expire outcomes of %s: %w", name, err)
			}
			return nil
		})
	})
}

// doneKey is an outcome's key in the done index: its At in Unix
// nanoseconds, big-endian so that the index is in time order, then its
// fingerprint. The index holds times, not expiries, so that a changed
// retention applies to every record at once.
func doneKey(at time.Time, fingerprint []byte) []byte {
	k := make([]byte, 8+len(fingerprint))
	binary.BigEndian.PutUint64(k, uint64(at.UnixNano()))
	copy(k[8:], fingerprint)
	return k
}

// doneIndex returns the mailbox's done index, built from the outcomes when
// the file was written before the index existed (read whole once).
func doneIndex(mb *bolt.Bucket) (*bolt.Bucket, error) {
	if idx := mb.Bucket(bucketDone); idx != nil {
		return idx, nil
	}
	idx, err := mb.CreateBucket(bucketDone)
	if err != nil {
		return nil, err
	}
	outs := mb.Bucket(bucketOutcomes)
	if outs == nil {
		return idx, nil
	}
	var bad [][]byte
	err = outs.ForEach(func(k, v []byte) error {
		o, err := decodeOutcome(string(k), v)
		if err != nil {
			bad = append(bad, slices.Clone(k)) // unreadable: as good as outlived
			return nil
		}
		return idx.Put(doneKey(o.At, k), []byte{})
	})
	if err != nil {
		return nil, err
	}
	for _, k := range bad {
		if err := outs.Delete(k); err != nil {
			return nil, err
		}
	}
	return idx, nil
}

// dropOutlived deletes up to limit (all when negative) outcomes of a
// mailbox older than the retention, reading only that old end of the done
// index.
func (s *boltStore) dropOutlived(mb *bolt.Bucket, now time.Time, limit int) error {
	idx, err := doneIndex(mb)
	if err != nil {
		return err
	}
	outs := mb.Bucket(bucketOutcomes)
	cutoff := uint64(now.Add(-s.retention).UnixNano())
	var due [][]byte
	c := idx.Cursor()
	for k, _ := c.First(); k != nil && len(due) != limit; k, _ = c.Next() {
		if len(k) >= 8 && binary.BigEndian.Uint64(k) > cutoff {
			break
		}
		due = append(due, slices.Clone(k))
	}
	for _, k := range due {
		if err := idx.Delete(k); err != nil {
			return err
		}
		if len(k) < 8 || outs == nil {
			continue
		}
		v := outs.Get(k[8:])
		if v == nil {
			continue
		}
		// A record replaced since by a newer one keeps it; an undecodable
		// one is as good as outlived.
		if o, err := decodeOutcome(string(k[8:]), v); err == nil && !outlived(o.At, now, s.retention) {
			continue
		}
		if err := outs.Delete(k[8:]); err != nil {
			return err
		}
	}
	return nil
}

// Kinds of records in the expiry index.
const (
	kindMsgID  byte = 'm'
	kindThread byte = 't'
)

// expiryKey is a record's key in the expiry index: its expiry in Unix
// nanoseconds, big-endian so that the index is in time order, then its kind
// and its own key.
func expiryKey(at time.Time, kind byte, key []byte) []byte {
	k := make([]byte, 9+len(key))
	binary.BigEndian.PutUint64(k, uint64(at.UnixNano()))
	k[8] = kind
	copy(k[9:], key)
	return k
}

// recordExpiry decodes the expiry of a msgids or threads record.
func recordExpiry(kind byte, v []byte) (time.Time, error) {
	if kind == kindMsgID {
		var r msgIDRecord
		err := json.Unmarshal(v, &r)
		return r.Expiry, err
	}
	var r threadRecord
	err := json.Unmarshal(v, &r)
	return r.Expiry, err
}

// dropExpired deletes the expired msgids and threads records of a mailbox,
// reading only the expired part of the expiry index: the cost of opening
// the file does not grow with the state. A file written before the index
// existed is read whole once, and indexed.
func dropExpired(mb *bolt.Bucket, now time.Time) error {
	idx := mb.Bucket(bucketExpiry)
	if idx == nil {
		return indexExpiry(mb, now)
	}
	buckets := map[byte]*bolt.Bucket{kindMsgID: mb.Bucket(bucketMsgIDs), kindThread: mb.Bucket(bucketThreads)}
	var due [][]byte
	c := idx.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) >= 9 && binary.BigEndian.Uint64(k) > uint64(now.UnixNano()) {
			break
		}
		due = append(due, slices.Clone(k))
	}
	for _, k := range due {
		if err := idx.Delete(k); err != nil {
			return err
		}
		if len(k) < 9 || buckets[k[8]] == nil {
			continue
		}
		b, key := buckets[k[8]], k[9:]
		v := b.Get(key)
		if v == nil {
			continue
		}
		// A record refreshed since has a later entry; an undecodable one
		// is as good as expired.
		if x, err := recordExpiry(k[8], v); err == nil && now.Before(x) {
			continue
		}
		if err := b.Delete(key); err != nil {
			return err
		}
	}
	return nil
}

// indexExpiry builds the expiry index of a mailbox from its records,
// dropping those already expired.
func indexExpiry(mb *bolt.Bucket, now time.Time) error {
	idx, err := mb.CreateBucket(bucketExpiry)
	if err != nil {
		return err
	}
	for kind, name := range map[byte][]byte{kindMsgID: bucketMsgIDs, kindThread: bucketThreads} {
		b := mb.Bucket(name)
		if b == nil {
			continue
		}
		var drop [][]byte
		err := b.ForEach(func(k, v []byte) error {
			x, err := recordExpiry(kind, v)
			if err != nil || !now.Before(x) {
				drop = append(drop, slices.Clone(k))
				return nil
			}
			return idx.Put(expiryKey(x, kind, k), []byte{})
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// view runs fn on the mailbox's bucket, nil when the mailbox is unknown.
func (s *boltStore) view(ctx context.Context, op, mailbox string, fn func(mb *bolt.Bucket) error) error {
	if err := checkMailbox(mailbox); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, mailbox, err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error { return fn(tx.Bucket([]byte(mailbox))) }); err != nil {
		return fmt.Errorf("%s %s: %w", op, mailbox, err)
	}
	return nil
}

// update runs fn on the mailbox's bucket, created when missing.
func (s *boltStore) update(ctx context.Context, op, mailbox string, fn func(mb *bolt.Bucket) error) error {
	if err := checkMailbox(mailbox); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, mailbox, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		mb, err := tx.CreateBucketIfNotExists([]byte(mailbox))
		if err != nil {
			return err
		}
		return fn(mb)
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, mailbox, err)
	}
	return nil
}

func (s *boltStore) MailboxState(ctx context.Context, mailbox string) (MailboxState, error) {
	var st MailboxState
	err := s.view(ctx, "bolt read state", mailbox, func(mb *bolt.Bucket) error {
		if mb == nil {
			return nil
		}
		b := mb.Bucket(bucketState)
		if b == nil {
			return nil
		}
		if v := b.Get(keyUIDValidity); len(v) == 4 {
			st.UIDValidity = binary.BigEndian.Uint32(v)
		}
		if v := b.Get(keyHighWater); len(v) == 4 {
			st.HighWater = binary.BigEndian.Uint32(v)
		}
		return nil
	})
	return st, err
}

func (s *boltStore) SetMailboxState(ctx context.Context, mailbox string, st MailboxState) error {
	return s.update(ctx, "bolt write state", mailbox, func(mb *bolt.Bucket) error {
		b, err := mb.CreateBucketIfNotExists(bucketState)
		if err != nil {
			return err
		}
		if err := b.Put(keyUIDValidity, binary.BigEndian.AppendUint32(nil, st.UIDValidity)); err != nil {
			return err
		}
		return b.Put(keyHighWater, binary.BigEndian.AppendUint32(nil, st.HighWater))
	})
}

func (s *boltStore) Outcomes(ctx context.Context, mailbox string, fingerprints []string) (map[string]Outcome, error) {
	found := make(map[string]Outcome)
	now := time.Now()
	err := s.view(ctx, "bolt read outcomes", mailbox, func(mb *bolt.Bucket) error {
		if mb == nil {
			return nil
		}
		b := mb.Bucket(bucketOutcomes)
		if b == nil {
			return nil
		}
		for _, fp := range fingerprints {
			v := b.Get([]byte(fp))
			if v == nil {
				continue
			}
			o, err := decodeOutcome(fp, v)
			if err != nil {
				return err
			}
			if !outlived(o.At, now, s.retention) {
				found[fp] = o
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

func (s *boltStore) RecordOutcomes(ctx context.Context, mailbox string, outs []Outcome) error {
	if len(outs) == 0 {
		return nil
	}
	now := time.Now()
	return s.update(ctx, "bolt write outcomes", mailbox, func(mb *bolt.Bucket) error {
		b, err := mb.CreateBucketIfNotExists(bucketOutcomes)
		if err != nil {
			return err
		}
		idx, err := doneIndex(mb)
		if err != nil {
			return err
		}
		for _, o := range outs {
			o = stamp(o, now)
			v, err := encodeOutcome(o)
			if err != nil {
				return err
			}
			fp := []byte(o.Fingerprint)
			if old := b.Get(fp); old != nil {
				if prev, err := decodeOutcome(o.Fingerprint, old); err == nil {
					if err := idx.Delete(doneKey(prev.At, fp)); err != nil {
						return err
					}
				}
			}
			if err := idx.Put(doneKey(o.At, fp), []byte{}); err != nil {
				return err
			}
			if err := b.Put(fp, v); err != nil {
				return err
			}
		}
		return s.dropOutlived(mb, now, dropPerWrite)
	})
}

func (s *boltStore) ThreadKey(ctx context.Context, mailbox string, messageIDs []string) (string, error) {
	var key string
	now := time.Now()
	err := s.view(ctx, "bolt read thread key", mailbox, func(mb *bolt.Bucket) error {
		if mb == nil {
			return nil
		}
		b := mb.Bucket(bucketMsgIDs)
		if b == nil {
			return nil
		}
		for _, id := range messageIDs {
			v := b.Get([]byte(id))
			if v == nil {
				continue
			}
			var r msgIDRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode thread of %s: %w", id, err)
			}
			if now.Before(r.Expiry) {
				key = r.Key
				return nil
			}
		}
		return nil
	})
	return key, err
}

func (s *boltStore) NoteThreads(ctx context.Context, mailbox string, notes []ThreadNote) error {
	if len(notes) == 0 {
		return nil
	}
	now := time.Now()
	expiry := now.Add(s.ttl)
	return s.update(ctx, "bolt note threads", mailbox, func(mb *bolt.Bucket) error {
		ids, err := mb.CreateBucketIfNotExists(bucketMsgIDs)
		if err != nil {
			return err
		}
		threads, err := mb.CreateBucketIfNotExists(bucketThreads)
		if err != nil {
			return err
		}
		idx := mb.Bucket(bucketExpiry)
		if idx == nil {
			if err := indexExpiry(mb, now); err != nil {
				return err
			}
			idx = mb.Bucket(bucketExpiry)
		}
		// reindex moves a record's entry in the expiry index from old (the
		// zero time: none) to expiry.
		reindex := func(kind byte, key []byte, old time.Time) error {
			if !old.IsZero() {
				if err := idx.Delete(expiryKey(old, kind, key)); err != nil {
					return err
				}
			}
			return idx.Put(expiryKey(expiry, kind, key), []byte{})
		}
		for _, n := range notes {
			if n.ThreadKey == "" {
				continue
			}
			var t threadRecord
			var oldThread time.Time
			if v := threads.Get([]byte(n.ThreadKey)); v != nil {
				if err := json.Unmarshal(v, &t); err != nil {
					return fmt.Errorf("decode thread %s: %w", n.ThreadKey, err)
				}
				oldThread = t.Expiry
				if !now.Before(t.Expiry) {
					t = threadRecord{}
				}
			}
			if n.MessageID != "" {
				v, err := json.Marshal(msgIDRecord{Key: n.ThreadKey, Expiry: expiry})
				if err != nil {
					return err
				}
				var oldID time.Time
				if old := ids.Get([]byte(n.MessageID)); old != nil {
					oldID, _ = recordExpiry(kindMsgID, old) // undecodable: no entry to move
				}
				if err := reindex(kindMsgID, []byte(n.MessageID), oldID); err != nil {
					return err
				}
				if err := ids.Put([]byte(n.MessageID), v); err != nil {
					return err
				}
				t.MessageIDs = mergeSorted(t.MessageIDs, []string{n.MessageID})
			}
			t.RelayAddresses = mergeSorted(t.RelayAddresses, n.RelayAddresses)
			t.ReplyTokens = mergeSorted(t.ReplyTokens, n.ReplyTokens)
			t.Expiry = expiry
			v, err := json.Marshal(t)
			if err != nil {
				return err
			}
			if err := reindex(kindThread, []byte(n.ThreadKey), oldThread); err != nil {
				return err
			}
			if err := threads.Put([]byte(n.ThreadKey), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// mergeSorted returns the sorted union of a (already sorted) and add,
// without empty strings.
func mergeSorted(a, add []string) []string {
	for _, s := range add {
		if s == "" {
			continue
		}
		if i, ok := slices.BinarySearch(a, s); !ok {
			a = slices.Insert(a, i, s)
		}
	}
	return a
}

func (s *boltStore) Thread(ctx context.Context, mailbox, key string) (Thread, error) {
	th := Thread{Key: key}
	now := time.Now()
	err := s.view(ctx, "bolt read thread", mailbox, func(mb *bolt.Bucket) error {
		if mb == nil {
			return nil
		}
		b := mb.Bucket(bucketThreads)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(key))
		if v == nil {
			return nil
		}
		var t threadRecord
		if err := json.Unmarshal(v, &t); err != nil {
			return fmt.Errorf("decode thread %s: %w", key, err)
		}
		if now.Before(t.Expiry) {
			th.MessageIDs, th.RelayAddresses, th.ReplyTokens = t.MessageIDs, t.RelayAddresses, t.ReplyTokens
		}
		return nil
	})
	return th, err
}

func (s *boltStore) NoteCycled(ctx context.Context, mailbox string, spacing time.Duration) error {
	return s.update(ctx, "bolt note cycle", mailbox, func(mb *bolt.Bucket) error {
		v := binary.BigEndian.AppendUint64(nil, uint64(time.Now().Add(spacing).UnixNano()))
		return mb.Put(keyCycled, v)
	})
}

func (s *boltStore) Cycled(ctx context.Context, mailbox string) (bool, error) {
	var recent bool
	err := s.view(ctx, "bolt read cycle", mailbox, func(mb *bolt.Bucket) error {
		if mb == nil {
			return nil
		}
		if v := mb.Get(keyCycled); len(v) == 8 {
			recent = uint64(time.Now().UnixNano()) < binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return recent, err
}

func (s *boltStore) AcquireLease(ctx context.Context, mailbox string, ttl time.Duration) (Lease, error) {
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("bolt acquire lease %s: ttl %v is below 1ms", mailbox, ttl)
	}
	l := &boltLease{s: s, mailbox: mailbox, token: newToken(), ttl: ttl}
	err := s.update(ctx, "bolt acquire lease", mailbox, func(mb *bolt.Bucket) error {
		now := time.Now()
		if cur, ok, err := readLease(mb); err != nil {
			return err
		} else if ok && now.Before(cur.Expiry) {
			return ErrLeaseHeld
		}
		return writeLease(mb, leaseRecord{Token: l.token, Expiry: now.Add(ttl)})
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

func readLease(mb *bolt.Bucket) (leaseRecord, bool, error) {
	var r leaseRecord
	v := mb.Get(keyLease)
	if v == nil {
		return r, false, nil
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, false, fmt.Errorf("decode lease: %w", err)
	}
	return r, true, nil
}

func writeLease(mb *bolt.Bucket, r leaseRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return mb.Put(keyLease, v)
}

func (s *boltStore) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bolt ping %s: %w", s.db.Path(), err)
	}
	if err := s.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("bolt ping %s: %w", s.db.Path(), err)
	}
	return nil
}

func (s *boltStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state file %s: %w", s.db.Path(), err)
	}
	return nil
}

// boltLease is a lease kept in the state file.
type boltLease struct {
	s       *boltStore
	mailbox string
	token   string
	ttl     time.Duration
}

func (l *boltLease) Token() string { return l.token }

func (l *boltLease) Renew(ctx context.Context) error {
	return l.s.update(ctx, "bolt renew lease", l.mailbox, func(mb *bolt.Bucket) error {
		now := time.Now()
		cur, ok, err := readLease(mb)
		if err != nil {
			return err
		}
		if !ok || cur.Token != l.token || !now.Before(cur.Expiry) {
			return ErrLeaseLost
		}
		return writeLease(mb, leaseRecord{Token: l.token, Expiry: now.Add(l.ttl)})
	})
}

func (l *boltLease) Release(ctx context.Context) error {
	return l.s.update(ctx, "bolt release lease", l.mailbox, func(mb *bolt.Bucket) error {
		cur, ok, err := readLease(mb)
		if err != nil {
			return err
		}
		if !ok || cur.Token != l.token || !time.Now().Before(cur.Expiry) {
			// Expired: whoever acquires next overwrites it.
			return ErrLeaseLost
		}
		return mb.Delete(keyLease)
	})
}
