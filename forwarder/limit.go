package forwarder

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mailtriage/mailtriage/forwarder/smtpclient"
)

// limits paces the messages of one Forwarder, all its sessions together:
// the configured limits (max_per_minute, max_per_day), and a pace of its
// own that a server's "too many" reply sets (slowDown) and each message
// taken afterwards raises again (speedUp).
//
// Each configured limit of n messages per period is a token bucket
// (golang.org/x/time/rate) with a burst b of a tenth of n (at least 1)
// that fills at (n-b) per period: b + (n-b) = n, so no window of one period,
// wherever it starts, holds more than n messages. Exchange Online counts
// its 30 a minute so, Google its 2,000 a day over a rolling 24 hours.
type limits struct {
	fixed []fixedLimit

	mu     sync.Mutex
	pace   *rate.Limiter // rate.Inf until a server asked us to slow down
	sends  []time.Time   // the last paceWindow sends, for the rate seen when a server refuses
	slowed time.Time     // the last slowDown
}

type fixedLimit struct {
	name string // the configuration key
	l    *rate.Limiter
}

// paceWindow is how many recent sends the pace is measured over.
const paceWindow = 32

// Bounds of the pace a server's refusals set.
const (
	minPace = rate.Limit(1.0 / 60) // a message a minute
	maxPace = rate.Limit(50)       // past it, no pace of our own
)

// maxLimitWait is the longest a message waits for a configured limit
// within a cycle; past it, it is deferred to a later cycle (a daily limit
// reached) rather than holding the cycle for hours.
const maxLimitWait = time.Minute

func newLimits(perMinute, perDay int) *limits {
	l := &limits{pace: rate.NewLimiter(rate.Inf, 1)}
	if perMinute > 0 {
		l.fixed = append(l.fixed, newFixedLimit("max_per_minute", perMinute, time.Minute))
	}
	if perDay > 0 {
		l.fixed = append(l.fixed, newFixedLimit("max_per_day", perDay, 24*time.Hour))
	}
	return l
}

// newFixedLimit allows n messages in any window of period.
func newFixedLimit(name string, n int, period time.Duration) fixedLimit {
	burst := max(1, n/10)
	refill := rate.Limit(float64(n-burst) / period.Seconds())
	if n == burst {
		refill = rate.Limit(float64(n) / period.Seconds() / 2) // n of 1: one at most every other period
	}
	return fixedLimit{name: name, l: rate.NewLimiter(refill, burst)}
}

// wait blocks until one more message may go; flush is called first when it
// has to wait, so that what is sent already leaves meanwhile. An error is a
// temporary *Error: a configured limit reached for longer than
// maxLimitWait, or ctx ended.
func (l *limits) wait(ctx context.Context, flush func()) error {
	now := time.Now()
	var delay time.Duration
	var reservations []*rate.Reservation
	cancel := func() {
		for _, r := range reservations {
			r.CancelAt(now)
		}
	}
	for _, f := range l.fixed {
		r := f.l.ReserveN(now, 1)
		reservations = append(reservations, r)
		d := r.DelayFrom(now)
		if d > maxLimitWait {
			cancel()
			return &Error{Op: "rate limit " + f.name, Kind: KindTemporary,
				Err: fmt.Errorf("reached: the next message may go at %s", now.Add(d).UTC().Format(time.RFC3339))}
		}
		delay = max(delay, d)
	}
	l.mu.Lock()
	r := l.pace.ReserveN(now, 1)
	l.mu.Unlock()
	reservations = append(reservations, r)
	delay = max(delay, r.DelayFrom(now))
	if delay > 0 {
		flush()
		pause(ctx, delay)
		if ctx.Err() != nil {
			cancel()
			return fail("wait for the rate limit", phaseConnect, context.Cause(ctx))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sends = append(l.sends, time.Now())
	if len(l.sends) > paceWindow {
		l.sends = l.sends[len(l.sends)-paceWindow:]
	}
	return nil
}

// slowDown halves the pace after a server refused a message sent at sent
// as too many: the rate of the recent sends when there was no pace yet. A
// refusal of a message sent before the last slowDown does not halve it
// again: the messages in flight then, refused together, are one signal.
func (l *limits) slowDown(sent time.Time) rate.Limit {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.pace.Limit()
	if sent.Before(l.slowed) {
		return cur
	}
	l.slowed = time.Now()
	if cur == rate.Inf {
		cur = maxPace
		if n := len(l.sends); n > 1 {
			if d := l.sends[n-1].Sub(l.sends[0]).Seconds(); d > 0 {
				cur = min(cur, rate.Limit(float64(n-1)/d))
			}
		}
	}
	next := max(minPace, cur/2)
	l.pace.SetLimit(next)
	return next
}

// speedUp raises the pace by a twentieth after a message was taken, until
// it is past maxPace and no pace is kept.
func (l *limits) speedUp() {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.pace.Limit()
	if cur == rate.Inf {
		return
	}
	if next := cur * 1.05; next < maxPace {
		l.pace.SetLimit(next)
	} else {
		l.pace.SetLimit(rate.Inf)
	}
}

// tooMany matches what servers say when they refuse for the rate, not for
// the message: Exchange Online's "4.7.0 ... submission rate ... exceeded",
// "4.3.2 ... thread limit exceeded" and "4.7.500 Server busy", Gmail's
// "4.7.0 Try again later, closing connection" and "4.2.1 ... receiving
// mail at a rate that prevents additional messages", Postfix's "4.7.1
// Error: too many ..." (anvil) and "too much mail".
var tooMany = regexp.MustCompile(`(?i)\brate\b|too many (messages|mails?|connections|sessions|transactions|requests|errors)|too much mail|throttl|limit exceeded|exceeded (the )?(\w+ )?limit|try again later|server busy|slow down`)

// throttled reports whether err is a 4xx reply that asks us to send less.
func throttled(err error) bool {
	var e *smtpclient.Error
	return errors.As(err, &e) && e.Code/100 == 4 && tooMany.MatchString(e.Line)
}
