package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
)

// opener opens a fresh, empty store for one subtest; it closes it on cleanup.
type opener func(t *testing.T, opt Options) Store

// testContract is the behaviour every engine must show.
func testContract(t *testing.T, open opener) {
	tests := []struct {
		name string
		run  func(t *testing.T, open opener)
	}{
		{"empty store knows nothing", contractEmpty},
		{"mailbox state is stored as given, backwards included", contractState},
		{"bad mailbox names are refused", contractBadMailbox},
		{"10,000 outcomes in one batch", contractOutcomesBatch},
		{"outcomes replace by fingerprint, per mailbox", contractOutcomesReplace},
		{"outcomes are kept for the retention after their time", contractOutcomesRetention},
		{"thread notes merge", contractThreadMerge},
		{"thread data expires after its TTL", contractThreadTTL},
		{"a note restarts the thread TTL", contractThreadTTLRefresh},
		{"lease acquire, held, renew, release", contractLease},
		{"lease lost after expiry", contractLeaseExpiry},
		{"20 concurrent acquirers, one winner", contractLeaseRace},
		{"a noted cycle counts for its spacing, per mailbox", contractCycled},
		{"ping", contractPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, open) })
	}
}

func contractEmpty(t *testing.T, open opener) {
	ctx := t.Context()
	s := open(t, Options{})
	st, err := s.MailboxState(ctx, "support")
	if err != nil || st != (MailboxState{}) {
		t.Errorf("MailboxState = %+v, %v; want zero, nil", st, err)
	}
	outs, err := s.Outcomes(ctx, "support", []string{"fp1", "fp2"})
	if err != nil || outs == nil || len(outs) != 0 {
		t.Errorf("Outcomes = %v, %v; want empty non-nil map, nil", outs, err)
	}
	key, err := s.ThreadKey(ctx, "support", []string{"<a@example.com>"})
	if err != nil || key != "" {
		t.Errorf("ThreadKey = %q, %v; want \"\", nil", key, err)
	}
	th, err := s.Thread(ctx, "support", "<a@example.com>")
	if err != nil || !reflect.DeepEqual(th, Thread{Key: "<a@example.com>"}) {
		t.Errorf("Thread = %+v, %v; want only the key", th, err)
	}
	if err := s.RecordOutcomes(ctx, "support", nil); err != nil {
		t.Errorf("RecordOutcomes(nil) = %v", err)
	}
	if err := s.NoteThreads(ctx, "support", nil); err != nil {
		t.Errorf("NoteThreads(nil) = %v", err)
	}
}

func contractState(t *testing.T, open opener) {
	ctx := t.Context()
	s := open(t, Options{})
	steps := []struct {
		mailbox string
		set     MailboxState
		reason  string
	}{
		{"support", MailboxState{UIDValidity: 1700000000, HighWater: 42}, "first record"},
		{"support", MailboxState{UIDValidity: 1700000000, HighWater: 4294967295}, "largest UID"},
		{"support", MailboxState{UIDValidity: 1800000000, HighWater: 3}, "UIDVALIDITY reset lowers the mark: stored as given"},
		{"sales", MailboxState{UIDValidity: 7, HighWater: 0}, "another mailbox, zero mark"},
	}
	want := map[string]MailboxState{}
	for _, step := range steps {
		if err := s.SetMailboxState(ctx, step.mailbox, step.set); err != nil {
			t.Fatalf("%s: SetMailboxState: %v", step.reason, err)
		}
		want[step.mailbox] = step.set
		for mb, w := range want {
			got, err := s.MailboxState(ctx, mb)
			if err != nil || got != w {
				t.Errorf("%s: MailboxState(%s) = %+v, %v; want %+v", step.reason, mb, got, err, w)
			}
		}
	}
}

func contractBadMailbox(t *testing.T, open opener) {
	ctx := t.Context()
	s := open(t, Options{})
	for _, mb := range []string{"", "sup{port", "sup}port"} {
		if _, err := s.MailboxState(ctx, mb); err == nil {
			t.Errorf("MailboxState(%q) succeeded; want an error", mb)
		}
		if err := s.SetMailboxState(ctx, mb, MailboxState{1, 1}); err == nil {
			t.Errorf("SetMailboxState(%q) succeeded; want an error", mb)
		}
		if _, err := s.AcquireLease(ctx, mb, time.Second); err == nil {
			t.Errorf("AcquireLease(%q) succeeded; want an error", mb)
		}
	}
}

// testOutcome returns a distinct outcome for i, done within the last hour
// (well inside the default retention).
func testOutcome(i int) Outcome {
	actions := []analyzer.Action{analyzer.ActionForwarded, analyzer.ActionFlagged, analyzer.ActionForwardFailed}
	return Outcome{
		Fingerprint: fmt.Sprintf("<m%d@example.com>/%016x", i, i*2654435761),
		MessageID:   fmt.Sprintf("<m%d@example.com>", i),
		Action:      actions[i%len(actions)],
		Folder:      "Triage/Review",
		ThreadKey:   fmt.Sprintf("<root%d@example.com>", i%17),
		UIDValidity: 1700000000,
		UID:         uint32(i + 1),
		At:          time.Now().UTC().Truncate(time.Hour).Add(time.Duration(i)),
	}
}

func sameOutcome(a, b Outcome) bool {
	if !a.At.Equal(b.At) {
		return false
	}
	a.At, b.At = time.Time{}, time.Time{}
	return a == b
}

func contractOutcomesBatch(t *testing.T, open opener) {
	ctx := t.Context()
	s := open(t, Options{})
	const n = 10000
	outs := make([]Outcome, n)
	fps := make([]string, 0, n+2)
	for i := range outs {
		outs[i] = testOutcome(i)
		fps = append(fps, outs[i].Fingerprint)
	}
	if err := s.RecordOutcomes(ctx, "support", outs); err != nil {
		t.Fatalf("RecordOutcomes(%d): %v", n, err)
	}
	fps = append(fps, "unknown-1", "")
	got, err := s.Outcomes(ctx, "support", fps)
	if err != nil {
		t.Fatalf("Outcomes(%d): %v", len(fps), err)
	}
	if len(got) != n {
		t.Fatalf("Outcomes found %d; want %d", len(got), n)
	}
	for _, o := range outs {
		if g, ok := got[o.Fingerprint]; !ok || !sameOutcome(g, o) {
			t.Fatalf("Outcomes[%s] = %+v, %v; want %+v", o.Fingerprint, g, ok, o)
		}
	}
	other, err := s.Outcomes(ctx, "sales", fps[:10])
	if err != nil || len(other) != 0 {
		t.Errorf("Outcomes in another mailbox = %v, %v; want none", other, err)
	}
}

func contractOutcomesReplace(t *testing.T, open opener) {
	ctx := t.Context()
	s := open(t, Options{})
	first := Outcome{Fingerprint: "fp:{odd} ä", MessageID: "<x@y>", Action: analyzer.ActionForwardFailed,
		Folder: "INBOX", UIDValidity: 9, UID: 5, At: time.Now().Add(-time.Hour).In(time.FixedZone("X", 3600))}
	second := first
	second.Action, second.Folder, second.UID = analyzer.ActionForwarded, "INBOX", 6
	for _, o := range []Outcome{first, second} {
		if err := s.RecordOutcomes(ctx, "support", []Outcome{o}); err != nil {
			t.Fatalf("RecordOutcomes: %v", err)
		}
	}
	if err := s.RecordOutcomes(ctx, "sales", []Outcome{first}); err != nil {
		t.Fatalf("RecordOutcomes(sales): %v", err)
	}
	got, err := s.Outcomes(ctx, "support", []string{first.Fingerprint})
	if err != nil || !sameOutcome(got[first.Fingerprint], second) {
		t.Errorf("support: Outcomes = %+v, %v; want the second record %+v", got, err, second)
	}
	got, err = s.Outcomes(ctx, "sales", []string{first.Fingerprint})
	if err != nil || !sameOutcome(got[first.Fingerprint], first) {
		t.Errorf("sales: Outcomes = %+v, %v; want the first record %+v", got, err, first)
	}
	if err := s.RecordOutcomes(ctx, "support", []Outcome{{Action: analyzer.ActionFlagged}}); err == nil {
		t.Errorf("RecordOutcomes without a fingerprint succeeded; want an error")
	}
}

func contractOutcomesRetention(t *testing.T, open opener) {
	ctx := t.Context()
	const retention = time.Second
	s := open(t, Options{Retention: retention})
	now := time.Now()
	fresh, old, unstamped, aged := testOutcome(1), testOutcome(2), testOutcome(3), testOutcome(4)
	fresh.At = now
	old.At = now.Add(-retention - time.Second)
	unstamped.At = time.Time{}
	if err := s.RecordOutcomes(ctx, "support", []Outcome{fresh, old, unstamped, aged}); err != nil {
		t.Fatalf("RecordOutcomes: %v", err)
	}
	// aged is replaced by a record older than the retention: it is gone.
	aged.At = old.At
	if err := s.RecordOutcomes(ctx, "support", []Outcome{aged}); err != nil {
		t.Fatalf("RecordOutcomes: %v", err)
	}
	fps := []string{fresh.Fingerprint, old.Fingerprint, unstamped.Fingerprint, aged.Fingerprint}
	got, err := s.Outcomes(ctx, "support", fps)
	if err != nil {
		t.Fatalf("Outcomes: %v", err)
	}
	if len(got) != 2 || !sameOutcome(got[fresh.Fingerprint], fresh) {
		t.Errorf("Outcomes = %+v; want only the fresh and the unstamped record", got)
	}
	if u, ok := got[unstamped.Fingerprint]; !ok || u.At.Before(now) || u.At.After(time.Now()) {
		t.Errorf("unstamped record = %+v, %v; want it stamped with the time of recording", u, ok)
	}
	time.Sleep(retention + 300*time.Millisecond)
	if got, err := s.Outcomes(ctx, "support", fps); err != nil || len(got) != 0 {
		t.Errorf("Outcomes after the retention = %+v, %v; want none", got, err)
	}
}

func contractThreadMerge(t *testing.T, open opener) {
	ctx := t.Context()
	s := open(t, Options{})
	const root = "<root@helpdesk.example>"
	notes := []ThreadNote{
		{MessageID: root, ThreadKey: root},
		{MessageID: "<r1@mozmail.com>", ThreadKey: root, RelayAddresses: []string{"x7k2q9@mozmail.com"}},
		{MessageID: "<r2@duck.com>", ThreadKey: root, RelayAddresses: []string{"w11tzqdr@duck.com", "x7k2q9@mozmail.com"},
			ReplyTokens: []string{"bob_at_example.com_abc@duck.com", ""}},
		{ThreadKey: root, ReplyTokens: []string{"ra+tok@simplelogin.co"}},
		{MessageID: "<other@example.com>", ThreadKey: "<other@example.com>"},
		{MessageID: "<ignored@example.com>", ThreadKey: ""},
	}
	// Two calls: merging happens across calls, not only within one.
	if err := s.NoteThreads(ctx, "support", notes[:2]); err != nil {
		t.Fatalf("NoteThreads: %v", err)
	}
	if err := s.NoteThreads(ctx, "support", notes[2:]); err != nil {
		t.Fatalf("NoteThreads: %v", err)
	}
	lookups := []struct {
		ids    []string
		want   string
		reason string
	}{
		{[]string{"<r2@duck.com>"}, root, "a reply's own Message-ID"},
		{[]string{"<unknown@x>", "<r1@mozmail.com>", "<other@example.com>"}, root, "first known wins"},
		{[]string{"<other@example.com>", root}, "<other@example.com>", "order of the argument decides"},
		{[]string{"<ignored@example.com>"}, "", "note without thread key is ignored"},
		{nil, "", "no IDs"},
	}
	for _, l := range lookups {
		got, err := s.ThreadKey(ctx, "support", l.ids)
		if err != nil || got != l.want {
			t.Errorf("%s: ThreadKey(%q) = %q, %v; want %q", l.reason, l.ids, got, err, l.want)
		}
	}
	if got, err := s.ThreadKey(ctx, "sales", []string{root}); err != nil || got != "" {
		t.Errorf("ThreadKey in another mailbox = %q, %v; want none", got, err)
	}
	want := Thread{
		Key:            root,
		MessageIDs:     []string{"<r1@mozmail.com>", "<r2@duck.com>", root},
		RelayAddresses: []string{"w11tzqdr@duck.com", "x7k2q9@mozmail.com"},
		ReplyTokens:    []string{"bob_at_example.com_abc@duck.com", "ra+tok@simplelogin.co"},
	}
	got, err := s.Thread(ctx, "support", root)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Thread = %+v, %v;\nwant %+v", got, err, want)
	}
}

func contractThreadTTL(t *testing.T, open opener) {
	ctx := t.Context()
	const ttl = 300 * time.Millisecond
	s := open(t, Options{ThreadTTL: ttl})
	note := ThreadNote{MessageID: "<a@x>", ThreadKey: "<a@x>", RelayAddresses: []string{"m@mozmail.com"}}
	if err := s.NoteThreads(ctx, "support", []ThreadNote{note}); err != nil {
		t.Fatalf("NoteThreads: %v", err)
	}
	if got, err := s.ThreadKey(ctx, "support", []string{"<a@x>"}); err != nil || got != "<a@x>" {
		t.Fatalf("ThreadKey before expiry = %q, %v", got, err)
	}
	time.Sleep(ttl + 200*time.Millisecond)
	if got, err := s.ThreadKey(ctx, "support", []string{"<a@x>"}); err != nil || got != "" {
		t.Errorf("ThreadKey after expiry = %q, %v; want \"\"", got, err)
	}
	if got, err := s.Thread(ctx, "support", "<a@x>"); err != nil || !reflect.DeepEqual(got, Thread{Key: "<a@x>"}) {
		t.Errorf("Thread after expiry = %+v, %v; want only the key", got, err)
	}
	// A new note after expiry starts afresh, without the old members.
	note2 := ThreadNote{MessageID: "<b@x>", ThreadKey: "<a@x>"}
	if err := s.NoteThreads(ctx, "support", []ThreadNote{note2}); err != nil {
		t.Fatalf("NoteThreads: %v", err)
	}
	want := Thread{Key: "<a@x>", MessageIDs: []string{"<b@x>"}}
	if got, err := s.Thread(ctx, "support", "<a@x>"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Thread after a new note = %+v, %v; want %+v", got, err, want)
	}
}

func contractThreadTTLRefresh(t *testing.T, open opener) {
	ctx := t.Context()
	// Wide enough that a loaded machine running the race detector (and a
	// cluster client's extra hop) notes in time.
	const ttl = 1500 * time.Millisecond
	s := open(t, Options{ThreadTTL: ttl})
	first := ThreadNote{MessageID: "<a@x>", ThreadKey: "<a@x>", ReplyTokens: []string{"tok"}}
	if err := s.NoteThreads(ctx, "support", []ThreadNote{first}); err != nil {
		t.Fatalf("NoteThreads: %v", err)
	}
	time.Sleep(ttl / 2)
	// A note without a Message-ID or tokens still keeps the thread alive.
	if err := s.NoteThreads(ctx, "support", []ThreadNote{{ThreadKey: "<a@x>"}}); err != nil {
		t.Fatalf("NoteThreads: %v", err)
	}
	time.Sleep(ttl/2 + 150*time.Millisecond)
	want := Thread{Key: "<a@x>", MessageIDs: []string{"<a@x>"}, ReplyTokens: []string{"tok"}}
	if got, err := s.Thread(ctx, "support", "<a@x>"); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Thread after refresh = %+v, %v; want %+v", got, err, want)
	}
}

func contractLease(t *testing.T, open opener) {
	ctx := t.Context()
	s := open(t, Options{})
	a, err := s.AcquireLease(ctx, "support", time.Minute)
	if err != nil {
		t.Fatalf("AcquireLease: %v", err)
	}
	if len(a.Token()) < 16 {
		t.Errorf("Token %q is too short to be random", a.Token())
	}
	if _, err := s.AcquireLease(ctx, "support", time.Minute); !errors.Is(err, ErrLeaseHeld) {
		t.Errorf("second AcquireLease = %v; want ErrLeaseHeld", err)
	}
	other, err := s.AcquireLease(ctx, "sales", time.Minute)
	if err != nil {
		t.Fatalf("AcquireLease(sales) while support is held: %v", err)
	}
	if other.Token() == a.Token() {
		t.Errorf("two leases share token %q", a.Token())
	}
	if err := a.Renew(ctx); err != nil {
		t.Errorf("Renew: %v", err)
	}
	if err := a.Release(ctx); err != nil {
		t.Errorf("Release: %v", err)
	}
	if err := a.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Renew after Release = %v; want ErrLeaseLost", err)
	}
	if err := a.Release(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("second Release = %v; want ErrLeaseLost", err)
	}
	b, err := s.AcquireLease(ctx, "support", time.Minute)
	if err != nil {
		t.Fatalf("AcquireLease after Release: %v", err)
	}
	if err := other.Release(ctx); err != nil {
		t.Errorf("Release(sales): %v", err)
	}
	if err := b.Release(ctx); err != nil {
		t.Errorf("Release(b): %v", err)
	}
	if _, err := s.AcquireLease(ctx, "support", 0); err == nil {
		t.Errorf("AcquireLease with ttl 0 succeeded; want an error")
	}
}

func contractLeaseExpiry(t *testing.T, open opener) {
	ctx := t.Context()
	s := open(t, Options{})
	// Wide enough that a loaded machine running the race detector (and a
	// cluster client's extra hop) renews in time.
	const ttl = 1500 * time.Millisecond
	a, err := s.AcquireLease(ctx, "support", ttl)
	if err != nil {
		t.Fatalf("AcquireLease: %v", err)
	}
	// Renewal keeps it past its first expiry.
	time.Sleep(ttl / 2)
	if err := a.Renew(ctx); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	time.Sleep(ttl / 2)
	if _, err := s.AcquireLease(ctx, "support", ttl); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("AcquireLease after renewal = %v; want ErrLeaseHeld", err)
	}
	time.Sleep(ttl + 100*time.Millisecond)
	if err := a.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Renew after expiry = %v; want ErrLeaseLost", err)
	}
	b, err := s.AcquireLease(ctx, "support", time.Minute)
	if err != nil {
		t.Fatalf("AcquireLease after expiry: %v", err)
	}
	// The old owner can neither release nor extend the new lease.
	if err := a.Release(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("old owner's Release = %v; want ErrLeaseLost", err)
	}
	if err := a.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("old owner's Renew = %v; want ErrLeaseLost", err)
	}
	if _, err := s.AcquireLease(ctx, "support", time.Minute); !errors.Is(err, ErrLeaseHeld) {
		t.Errorf("AcquireLease after old owner's Release = %v; want ErrLeaseHeld", err)
	}
	if err := b.Release(ctx); err != nil {
		t.Errorf("new owner's Release: %v", err)
	}
}

func contractLeaseRace(t *testing.T, open opener) {
	ctx := t.Context()
	s := open(t, Options{})
	const n = 20
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		leases = make([]Lease, n)
		errs   = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			leases[i], errs[i] = s.AcquireLease(ctx, "support", time.Minute)
		})
	}
	close(start)
	wg.Wait()
	winners := 0
	for i := range n {
		switch {
		case errs[i] == nil:
			winners++
		case !errors.Is(errs[i], ErrLeaseHeld):
			t.Errorf("acquirer %d: %v; want nil or ErrLeaseHeld", i, errs[i])
		}
	}
	if winners != 1 {
		t.Errorf("%d acquirers won; want exactly 1", winners)
	}
}

func contractPing(t *testing.T, open opener) {
	s := open(t, Options{})
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Ping(ctx); err == nil {
		t.Errorf("Ping with a cancelled context succeeded; want an error")
	}
}

func contractCycled(t *testing.T, open opener) {
	ctx := t.Context()
	s := open(t, Options{})
	cycled := func(mailbox string) bool {
		t.Helper()
		ok, err := s.Cycled(ctx, mailbox)
		if err != nil {
			t.Fatalf("Cycled(%s): %v", mailbox, err)
		}
		return ok
	}
	if cycled("support") {
		t.Fatal("a mailbox never cycled counts as cycled")
	}
	if err := s.NoteCycled(ctx, "support", 300*time.Millisecond); err != nil {
		t.Fatalf("NoteCycled: %v", err)
	}
	if !cycled("support") || cycled("sales") {
		t.Fatalf("after a cycle of support: support %v, sales %v; want true, false", cycled("support"), cycled("sales"))
	}
	time.Sleep(400 * time.Millisecond)
	if cycled("support") {
		t.Error("the cycle still counts after its spacing")
	}
	if err := s.NoteCycled(ctx, "bad{name}", time.Second); err == nil {
		t.Error("NoteCycled took a bad mailbox name")
	}
}
