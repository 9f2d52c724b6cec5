package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Notices is the per-sender limit of the sender notices (package notify):
// a claim per mailbox and key (a sender's hash, never the address; or
// "digest" for the review digest) until it expires. Both engines
// implement it.
//
//	bbolt: bucket "notices" of the mailbox's bucket: key → 8-byte big-endian expiry (Unix ns)
//	Redis: P:{M}:notice:<key>  string "1"; SET NX PX period
type Notices interface {
	// ClaimNotice records a notice to key for period unless an unexpired
	// claim exists; it reports whether it made the claim.
	ClaimNotice(ctx context.Context, mailbox, key string, period time.Duration) (bool, error)
	// ReleaseNotice drops the claim on key.
	ReleaseNotice(ctx context.Context, mailbox, key string) error
}

// bucketNotices holds the claims inside a mailbox's bucket.
var bucketNotices = []byte("notices")

func checkNotice(mailbox, key string, period time.Duration) error {
	if err := checkMailbox(mailbox); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("empty notice key in %s", mailbox)
	}
	if period < time.Millisecond {
		return fmt.Errorf("notice period %v is below 1ms", period)
	}
	return nil
}

func (s *boltStore) ClaimNotice(ctx context.Context, mailbox, key string, period time.Duration) (bool, error) {
	if err := checkNotice(mailbox, key, period); err != nil {
		return false, fmt.Errorf("bolt claim notice: %w", err)
	}
	// A claim held is read in a read transaction: most calls find one
	// (a sender's second message), and a write transaction costs a sync.
	var held bool
	err := s.view(ctx, "bolt read notice", mailbox, func(mb *bolt.Bucket) error {
		held = noticeHeld(mb, key, time.Now())
		return nil
	})
	if err != nil || held {
		return false, err
	}
	var claimed bool
	err = s.update(ctx, "bolt claim notice", mailbox, func(mb *bolt.Bucket) error {
		b, err := mb.CreateBucketIfNotExists(bucketNotices)
		if err != nil {
			return err
		}
		now := time.Now()
		if noticeHeld(mb, key, now) {
			return nil
		}
		claimed = true
		return b.Put([]byte(key), binary.BigEndian.AppendUint64(nil, uint64(now.Add(period).UnixNano())))
	})
	return claimed, err
}

// noticeHeld reports whether mb holds an unexpired claim on key.
func noticeHeld(mb *bolt.Bucket, key string, now time.Time) bool {
	if mb == nil {
		return false
	}
	b := mb.Bucket(bucketNotices)
	if b == nil {
		return false
	}
	v := b.Get([]byte(key))
	return len(v) == 8 && now.UnixNano() < int64(binary.BigEndian.Uint64(v))
}

func (s *boltStore) ReleaseNotice(ctx context.Context, mailbox, key string) error {
	if err := checkMailbox(mailbox); err != nil {
		return fmt.Errorf("bolt release notice: %w", err)
	}
	return s.update(ctx, "bolt release notice", mailbox, func(mb *bolt.Bucket) error {
		if b := mb.Bucket(bucketNotices); b != nil {
			return b.Delete([]byte(key))
		}
		return nil
	})
}

func (s *redisStore) ClaimNotice(ctx context.Context, mailbox, key string, period time.Duration) (bool, error) {
	if err := checkNotice(mailbox, key, period); err != nil {
		return false, fmt.Errorf("redis claim notice: %w", err)
	}
	ok, err := s.c.SetNX(ctx, s.key(mailbox, "notice:"+key), "1", period).Result()
	if err != nil {
		return false, s.fail("set nx notice", mailbox, err)
	}
	return ok, nil
}

func (s *redisStore) ReleaseNotice(ctx context.Context, mailbox, key string) error {
	if err := checkMailbox(mailbox); err != nil {
		return fmt.Errorf("redis release notice: %w", err)
	}
	if err := s.c.Del(ctx, s.key(mailbox, "notice:"+key)).Err(); err != nil {
		return s.fail("del notice", mailbox, err)
	}
	return nil
}
