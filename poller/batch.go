package poller

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/store"
)

// The keywords the poller sets (DESIGN.md section 3), RFC 5550 for $Forwarded.
const (
	KeywordEncrypted     imap.Flag = "$Encrypted"
	KeywordUnparseable   imap.Flag = "$Unparseable"
	KeywordPrivateRelay  imap.Flag = "$PrivateRelay"
	KeywordForwardFailed imap.Flag = "$ForwardFailed"
	KeywordForwarded               = imap.FlagForwarded
)

// message is one message of a batch with its facts and verdict.
type message struct {
	Facts
	v      analyzer.Verdict
	notice analyzer.Header // the fields a sender notice reads (notify.go)

	recorded bool // its outcome is written already (flagged mail done before)
	copy     bool // a second copy of a message submitted in the same forward
}

// batch acts on the classified messages of one batch of the selected
// folder: it forwards what goes and queues the marking (cy.marks);
// awaitFacts is called before the bodies stream (see pipeline).
// An error means the session or the store is unusable; per-message trouble
// is reported in the entries instead.
func (cy *cycle) batch(msgs []*message, released bool, awaitFacts func()) error {
	p := cy.p
	if released {
		// Without UIDPLUS our moved-out originals stay, marked \Deleted:
		// they were handled and are not read again.
		msgs = slices.DeleteFunc(msgs, func(m *message) bool { return hasFlag(m.Flags, imap.FlagDeleted) })
	}
	cy.rep.Counts.Seen += len(msgs)

	fps := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if m.v.Fingerprint != "" {
			fps = append(fps, m.v.Fingerprint)
		}
	}
	outcomes, err := p.st.Outcomes(cy.ctx, p.mb.Name, fps)
	if err != nil {
		p.m.StoreError(p.mb.Name)
		return fmt.Errorf("look up %d outcomes in %s: %w", len(fps), p.mb.Name, err)
	}

	mk := cy.marks
	var forward []*message
	for _, m := range msgs {
		out, known := outcomes[m.v.Fingerprint]
		switch {
		case !known && hasFlag(m.Flags, KeywordForwarded):
			// The mailbox's own mark counts as the record: the store lost
			// it (flushed, evicted, restored, a record that could not be
			// written) or UIDVALIDITY changed under it. The record is
			// rebuilt before the marking is made sure of.
			cy.note(Entry{Folder: cy.folder, UID: uint32(m.UID), Released: released, Action: EntryDone, Verdict: m.v})
			if m.v.Fingerprint != "" {
				mk.unrecorded = append(mk.unrecorded, cy.outcome(m, analyzer.ActionForwarded, cy.forwardedFolder(released)))
			}
			mk.forwarded = append(mk.forwarded, m.queue())
		case !known && hasFlag(m.Flags, imap.FlagDeleted) && flaggedByUs(m.Flags):
			// Our original of mail flagged into the review folder by a
			// server without UIDPLUS, the store having lost its record:
			// the copy is there already.
			cy.note(Entry{Folder: cy.folder, UID: uint32(m.UID), Released: released, Action: EntryDone, Verdict: m.v})
			mk.done[m.UID] = true
		case known && hasFlag(m.Flags, imap.FlagDeleted):
			// Handled before and since marked deleted (our originals on a
			// server without UIDPLUS): nothing more to do.
			cy.note(Entry{Folder: cy.folder, UID: uint32(m.UID), Released: released, Action: EntryDone, Verdict: m.v})
			mk.done[m.UID] = true
		case known && out.Action == analyzer.ActionForwarded:
			// Mail done before only needs its marking made sure of.
			cy.note(Entry{Folder: cy.folder, UID: uint32(m.UID), Released: released, Action: EntryDone, Verdict: m.v})
			mk.forwarded = append(mk.forwarded, m.queue())
		case released:
			forward = append(forward, m)
		case known:
			cy.note(Entry{Folder: cy.folder, UID: uint32(m.UID), Action: EntryDone, Verdict: m.v})
			if out.Action == analyzer.ActionForwardFailed {
				m.Flags = append(m.Flags, KeywordForwardFailed)
			}
			m.recorded = true
			mk.flagged = append(mk.flagged, m.queue())
		case m.v.Action == analyzer.ActionFlag:
			mk.flagged = append(mk.flagged, m.queue())
		default:
			forward = append(forward, m)
		}
	}
	return cy.forward(forward, released, awaitFacts)
}

// queue drops what marking does not need (the BODYSTRUCTURE), so that the
// marks of many batches stay small.
func (m *message) queue() *message {
	m.BodyStructure = nil
	return m
}

// headerFetch is how much of a header block the facts fetch asks for: one
// octet more than the analyzer's limit, so that a block over it shows as
// such (analyzer: "header block exceeds ... octets", unparseable) while a
// batch's headers stay bounded in memory whatever the mail
// (BODY.PEEK[HEADER]<0.262145>, RFC 9051 section 6.4.5).
var headerFetch = int64(analyzer.DefaultLimits().MaxHeaderBytes + 1)

// Facts is what the poller reads of one message to classify it, before
// any body is downloaded.
type Facts struct {
	UID           imap.UID
	Flags         []imap.Flag
	Size          int64 // RFC822.SIZE
	BodyStructure imap.BodyStructure
	Header        []byte            // BODY.PEEK[HEADER], at most headerFetch octets
	Samples       map[string][]byte // part path ("1.2") -> the first analyzer.SampleSize octets of its body
}

// Model is the analyzer's model of the message, built from its facts.
func (f Facts) Model() (*analyzer.Message, error) {
	return analyzer.FromIMAP(f.Header, f.BodyStructure, f.Samples, f.Size)
}

// fetchFunc runs one UID FETCH on the selected folder.
type fetchFunc func(ctx context.Context, uids []imap.UID, opts *imap.FetchOptions) ([]*imapclient.FetchMessageBuffer, error)

// FetchFacts fetches the facts of uids in c's selected folder, as a cycle
// does, in UID order; UIDs the server does not return are left out. It is
// the poller's own fetch, exported for the tests that check the analyzer's
// two constructors agree.
func FetchFacts(ctx context.Context, c *imapclient.Client, uids []imap.UID) ([]Facts, error) {
	return fetchFacts(ctx, func(_ context.Context, uids []imap.UID, opts *imap.FetchOptions) ([]*imapclient.FetchMessageBuffer, error) {
		return c.Fetch(imap.UIDSetNum(uids...), opts).Collect()
	}, uids)
}

// fetchFacts fetches UID, FLAGS, RFC822.SIZE, BODYSTRUCTURE and the header
// of uids (at most headerFetch octets of it), then the samples the analyzer
// asks for: one FETCH per distinct set of part paths (most messages of a
// batch share one).
func fetchFacts(ctx context.Context, fetch fetchFunc, uids []imap.UID) ([]Facts, error) {
	bufs, err := fetch(ctx, uids, &imap.FetchOptions{
		UID:           true,
		Flags:         true,
		RFC822Size:    true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection: []*imap.FetchItemBodySection{{
			Specifier: imap.PartSpecifierHeader, Peek: true,
			Partial: &imap.SectionPartial{Offset: 0, Size: headerFetch},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("fetch facts of uids %v: %w", imap.UIDSetNum(uids...), err)
	}
	facts := make([]Facts, 0, len(bufs))
	index := make(map[imap.UID]int, len(bufs))
	groups := make(map[string][]imap.UID)
	for _, b := range bufs {
		if _, dup := index[b.UID]; b.UID == 0 || b.BodyStructure == nil || dup {
			continue
		}
		f := Facts{UID: b.UID, Flags: b.Flags, Size: b.RFC822Size, BodyStructure: b.BodyStructure, Samples: make(map[string][]byte)}
		for _, s := range b.BodySection {
			if s.Section.Specifier == imap.PartSpecifierHeader && len(s.Section.Part) == 0 {
				f.Header = s.Bytes
			}
		}
		if paths := analyzer.SamplePaths(b.BodyStructure); len(paths) > 0 {
			key := strings.Join(paths, " ")
			groups[key] = append(groups[key], b.UID)
		}
		index[b.UID] = len(facts)
		facts = append(facts, f)
	}

	for key, group := range groups {
		var sections []*imap.FetchItemBodySection
		for _, path := range strings.Split(key, " ") {
			part, err := partPath(path)
			if err != nil {
				return nil, fmt.Errorf("samples: %w", err)
			}
			sections = append(sections, &imap.FetchItemBodySection{
				Part: part, Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: analyzer.SampleSize},
			})
		}
		bufs, err := fetch(ctx, group, &imap.FetchOptions{UID: true, BodySection: sections})
		if err != nil {
			return nil, fmt.Errorf("fetch samples of uids %v: %w", imap.UIDSetNum(group...), err)
		}
		for _, b := range bufs {
			i, ok := index[b.UID]
			if !ok {
				continue
			}
			for _, s := range b.BodySection {
				if s.Section.Specifier == imap.PartSpecifierNone && len(s.Section.Part) > 0 {
					facts[i].Samples[joinPath(s.Section.Part)] = s.Bytes
				}
			}
		}
	}
	slices.SortFunc(facts, func(a, b Facts) int { return int(a.UID) - int(b.UID) })
	return facts, nil
}

// facts fetches the facts of uids in the selected folder (fetchFacts).
func (cy *cycle) facts(uids []imap.UID) ([]*message, error) {
	facts, err := fetchFacts(cy.ctx, cy.c.fetch, uids)
	if err != nil {
		return nil, fmt.Errorf("facts in %s: %w", cy.folder, err)
	}
	msgs := make([]*message, len(facts))
	for i, f := range facts {
		msgs[i] = &message{Facts: f}
	}
	return msgs, nil
}

// classify gives each message its verdict and drops the header and
// samples, which are no longer needed (the BODYSTRUCTURE stays for the
// close-delimiter check). It runs with the facts fetch, ahead of the batch
// being forwarded.
func (cy *cycle) classify(msgs []*message) error {
	for _, m := range msgs {
		model, err := m.Model()
		if err != nil {
			return fmt.Errorf("model of uid %d in %s: %w", m.UID, cy.folder, err)
		}
		m.v = cy.p.an.Classify(model, cy.p.mb.Policy)
		cy.keepNotice(m, model.Header)
		m.Header, m.Samples = nil, nil
	}
	return nil
}

// threads refines each verdict's thread key from the store (a reply whose
// root is known keeps that root's key) and notes the batch's threads. It
// runs in the goroutine that fetched the facts (pipeline).
func (cy *cycle) threads(msgs []*message) {
	p := cy.p
	local := make(map[string]string) // thread keys set earlier in this batch
	var notes []store.ThreadNote
	for _, m := range msgs {
		v := &m.v
		refs := append(slices.Clone(v.InReplyTo), v.References...)
		if len(refs) > 0 {
			key := ""
			for _, id := range refs {
				if k := local[id]; k != "" {
					key = k
					break
				}
			}
			if key == "" {
				k, err := p.st.ThreadKey(cy.ctx, p.mb.Name, refs)
				if err != nil {
					p.m.StoreError(p.mb.Name)
					p.log.Warn("thread lookup failed; keeping the header's thread key", "uid", m.UID, "error", err)
				}
				key = k
			}
			if key != "" {
				v.ThreadKey = key
			}
		}
		if v.MessageID != "" && v.ThreadKey != "" {
			local[v.MessageID] = v.ThreadKey
		}
		if v.ThreadKey != "" {
			note := store.ThreadNote{MessageID: v.MessageID, ThreadKey: v.ThreadKey}
			if v.Relay == analyzer.RelayPrivate || v.ReplyToTokenized {
				note.RelayAddresses = v.RelayAddresses
			}
			notes = append(notes, note)
		}
	}
	if len(notes) == 0 || cy.dryRun {
		return
	}
	if err := p.st.NoteThreads(cy.ctx, p.mb.Name, notes); err != nil {
		p.m.StoreError(p.mb.Name)
		p.log.Warn("noting threads failed", "error", err)
	}
}

// flagKeywords are the flags a flagged message gets, as far as the
// folder's PERMANENTFLAGS allow.
func (cy *cycle) flagKeywords(m *message) []imap.Flag {
	v := m.v
	var want []imap.Flag
	if v.Encryption.Encrypted() {
		want = append(want, KeywordEncrypted)
	}
	if v.Encryption == analyzer.EncryptionUnparseable {
		want = append(want, KeywordUnparseable)
	}
	if v.Relay == analyzer.RelayPrivate && cy.p.mb.Policy[analyzer.ClassPrivateRelay] == analyzer.ActionFlag {
		want = append(want, KeywordPrivateRelay)
	}
	if hasFlag(m.Flags, KeywordForwardFailed) {
		want = append(want, KeywordForwardFailed)
	}
	flags := cy.allowed(want)
	return append(flags, cy.allowed([]imap.Flag{imap.FlagFlagged})...)
}

// allowed filters flags by PERMANENTFLAGS: a flag listed there, or any flag
// when "\*" is listed or PERMANENTFLAGS was not sent (RFC 9051 7.1).
func (cy *cycle) allowed(flags []imap.Flag) []imap.Flag {
	perm := cy.sel.PermanentFlags
	if perm == nil || slices.Contains(perm, imap.FlagWildcard) {
		return flags
	}
	var out []imap.Flag
	for _, f := range flags {
		if hasFlag(perm, f) {
			out = append(out, f)
		} else if !strings.HasPrefix(string(f), `\`) {
			cy.p.warnOnce("keywords:"+cy.folder, "server takes no keywords here: folders alone carry the state", "folder", cy.folder)
		}
	}
	return out
}

// flag stores the keywords of msgs (one STORE per distinct flag set) and
// moves them to the review folder, then records the outcomes not recorded
// before. Flagged messages are done.
func (cy *cycle) flag(msgs []*message, done map[imap.UID]bool) error {
	if len(msgs) == 0 {
		return nil
	}
	p := cy.p
	sets := make(map[string]imap.UIDSet)
	flagsOf := make(map[string][]imap.Flag)
	var all imap.UIDSet
	for _, m := range msgs {
		flags := cy.flagKeywords(m)
		key := fmt.Sprint(flags)
		set := sets[key]
		set.AddNum(m.UID)
		sets[key], flagsOf[key] = set, flags
		all.AddNum(m.UID)
	}
	for key, set := range sets {
		if err := cy.c.store(cy.ctx, set, flagsOf[key]); err != nil {
			return fmt.Errorf("store flags on uids %v in %s: %w", set, cy.folder, err)
		}
	}
	moved, err := cy.moveOut(all, cy.f.Review)
	if err != nil {
		return err
	}
	var outs []store.Outcome
	for _, m := range msgs {
		action := EntryFlagged
		if hasFlag(m.Flags, KeywordForwardFailed) {
			action = EntryForwardFailed
		}
		if !m.recorded {
			outs = append(outs, cy.outcome(m, action, cy.f.Review))
			p.m.Message(p.mb.Name, m.v.Class, action)
			p.log.Info("flagged", cy.attrs(m, action, nil)...)
			e := Entry{Folder: cy.folder, UID: uint32(m.UID), Action: action, Verdict: m.v, Released: cy.folder == cy.f.Release}
			if moved {
				e.MovedTo = cy.f.Review
			}
			cy.note(e)
		}
		done[m.UID] = true
	}
	if err := cy.record(outs); err != nil {
		return err
	}
	cy.notify(msgs) // the flag is final: moved and recorded
	return nil
}

// forwardedFolder is where forwarded mail ends per after_forward.
func (cy *cycle) forwardedFolder(released bool) string {
	switch cy.p.mb.AfterForward {
	case AfterForwardMove:
		return cy.f.Forwarded
	case AfterForwardDelete:
		return ""
	}
	if released {
		return cy.f.Watched
	}
	return cy.folder
}

// markForwarded marks forwarded msgs per after_forward, by UID set; mail
// from the release folder goes back to the watched folder. They are done.
func (cy *cycle) markForwarded(msgs []*message, released bool, done map[imap.UID]bool) error {
	if len(msgs) == 0 {
		return nil
	}
	p := cy.p
	var set imap.UIDSet
	for _, m := range msgs {
		set.AddNum(m.UID)
	}
	flags := cy.allowed([]imap.Flag{KeywordForwarded, imap.FlagSeen})
	if p.mb.AfterForward == AfterForwardDelete {
		flags = append(flags, imap.FlagDeleted)
	}
	if err := cy.c.store(cy.ctx, set, flags); err != nil {
		return fmt.Errorf("mark forwarded uids %v in %s: %w", set, cy.folder, err)
	}
	switch dest := cy.forwardedFolder(released); {
	case p.mb.AfterForward == AfterForwardDelete:
		if err := cy.expunge(set); err != nil {
			return err
		}
	case dest != cy.folder:
		if _, err := cy.moveOut(set, dest); err != nil {
			return err
		}
	}
	for _, m := range msgs {
		done[m.UID] = true
	}
	return nil
}

// moveOut moves uids of the selected folder to dest, creating dest once per
// cycle. Without MOVE: UID COPY, STORE \Deleted, UID EXPUNGE of those UIDs
// only; without UIDPLUS the originals stay, marked \Deleted (never a plain
// EXPUNGE, which would also remove what a person marked deleted). It
// reports whether the originals left the folder.
func (cy *cycle) moveOut(uids imap.UIDSet, dest string) (bool, error) {
	if !cy.ensured[dest] {
		created, err := cy.c.ensure(cy.ctx, dest)
		if err != nil {
			return false, err
		}
		if created {
			cy.p.log.Info("created folder", "folder", dest)
		}
		cy.ensured[dest] = true
	}
	if cy.c.caps.Has(imap.CapMove) {
		if err := cy.c.move(cy.ctx, uids, dest); err != nil {
			return false, fmt.Errorf("move uids %v from %s to %s: %w", uids, cy.folder, dest, err)
		}
		return true, nil
	}
	if err := cy.c.copy(cy.ctx, uids, dest); err != nil {
		return false, fmt.Errorf("copy uids %v from %s to %s: %w", uids, cy.folder, dest, err)
	}
	if err := cy.c.store(cy.ctx, uids, []imap.Flag{imap.FlagDeleted}); err != nil {
		return false, fmt.Errorf("mark copied uids %v in %s deleted: %w", uids, cy.folder, err)
	}
	if err := cy.expunge(uids); err != nil {
		return false, err
	}
	return cy.c.caps.Has(imap.CapUIDPlus), nil
}

// expunge removes uids (marked \Deleted) with UID EXPUNGE; without UIDPLUS
// it leaves them and says so once.
func (cy *cycle) expunge(uids imap.UIDSet) error {
	if !cy.c.caps.Has(imap.CapUIDPlus) {
		cy.p.warnOnce("uidplus", "server lacks UIDPLUS: our messages stay marked \\Deleted; never expunging what others marked")
		return nil
	}
	if err := cy.c.expunge(cy.ctx, uids); err != nil {
		return fmt.Errorf("uid expunge %v in %s: %w", uids, cy.folder, err)
	}
	return nil
}

// outcome is the store record of what was done with m.
func (cy *cycle) outcome(m *message, action analyzer.Action, folder string) store.Outcome {
	return store.Outcome{
		Fingerprint: m.v.Fingerprint,
		MessageID:   m.v.MessageID,
		Action:      action,
		Folder:      folder,
		ThreadKey:   m.v.ThreadKey,
		UIDValidity: cy.sel.UIDValidity,
		UID:         uint32(m.UID),
		At:          time.Now().UTC(),
	}
}

// attrs are the log attributes of a decision.
func (cy *cycle) attrs(m *message, action analyzer.Action, err error) []any {
	a := []any{
		slog.String("folder", cy.folder),
		slog.Uint64("uid", uint64(m.UID)),
		slog.String("message_id", m.v.MessageID),
		slog.String("encryption", string(m.v.Encryption)),
		slog.String("relay", string(m.v.Relay)),
		slog.String("action", string(action)),
	}
	if action == EntryFlagged && m.v.Encryption == analyzer.EncryptionUnparseable {
		// What a reviewer needs to know of a message that could not be read.
		a = append(a, slog.Any("reasons", m.v.Reasons))
	}
	if err != nil {
		a = append(a, slog.Any("error", err))
	}
	return a
}

// flaggedByUs reports whether flags hold one of the keywords flagging sets.
func flaggedByUs(flags []imap.Flag) bool {
	for _, k := range []imap.Flag{KeywordEncrypted, KeywordUnparseable, KeywordPrivateRelay, KeywordForwardFailed} {
		if hasFlag(flags, k) {
			return true
		}
	}
	return false
}

// hasFlag reports whether flags holds f; flags and keywords are
// case-insensitive (RFC 9051 2.3.2).
func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	return slices.ContainsFunc(flags, func(g imap.Flag) bool { return strings.EqualFold(string(g), string(f)) })
}
