package poller

import "time"

// backoff is the per-mailbox pause of forwarding after a temporary SMTP
// failure: it doubles from minBackoff up to the mailbox's MaxBackoff and is
// cleared by the next successful send. Flagging never waits for it.
type backoff struct {
	delay time.Duration // zero when forwarding is healthy
	until time.Time
	since time.Time // when forwarding went from healthy to paused
}

// forwardingAllowed reports whether this cycle may forward, and until when
// it may not.
func (p *Poller) forwardingAllowed(now time.Time) (bool, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !now.Before(p.backoff.until), p.backoff.until
}

// forwardFailedTemporarily extends the backoff; it logs only when forwarding
// goes from healthy to paused.
func (p *Poller) forwardFailedTemporarily(now time.Time, err error) {
	p.mu.Lock()
	first := p.backoff.delay == 0
	if first {
		p.backoff.delay = min(minBackoff, p.mb.MaxBackoff)
		p.backoff.since = now
	} else {
		p.backoff.delay = min(2*p.backoff.delay, p.mb.MaxBackoff)
	}
	p.backoff.until = now.Add(p.backoff.delay)
	delay := p.backoff.delay
	p.mu.Unlock()
	if first {
		p.m.ForwardingPaused(p.mb.Name, now)
		p.log.Warn("forwarding paused after a temporary SMTP failure", "retry_in", delay, "error", err)
	} else {
		p.log.Debug("forwarding still failing", "retry_in", delay, "error", err)
	}
}

// forwardSucceeded clears the backoff; it logs only when forwarding resumes.
func (p *Poller) forwardSucceeded() {
	p.mu.Lock()
	was := p.backoff.delay != 0
	p.backoff = backoff{}
	p.mu.Unlock()
	if was {
		p.m.ForwardingPaused(p.mb.Name, time.Time{})
		p.log.Info("forwarding resumed")
	}
}

// forwardingPaused reports whether forwarding is paused by SMTP trouble.
func (p *Poller) forwardingPaused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.backoff.delay != 0
}
