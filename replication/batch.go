package replication

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.opentelemetry.io/otel/trace"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication/logentry"
)

// maxRunUpserts bounds the chunks applied under one engine lock: a run of
// committed entries is cut once it holds this many, so the position (and
// what waits on it) moves at least every few hundred chunks when a node
// works through a backlog (every entry of a run becomes searchable when
// the run ends).
const maxRunUpserts = 512

// Logged is a decoded entry at its Raft index (0: not from a Raft log).
type Logged struct {
	Index uint64
	Entry Entry
}

// pending is an entry turned into a batch for an engine: the serving one
// (changes, keepalives, repairs) or the base being built (base parts).
type pending struct {
	engine   *index.Engine
	ops      index.Ops
	commitMs int64 // taken as the FSM's commit time once applied (0: none)
}

// ApplyBatch implements raft.BatchingFSM: Raft hands over every entry
// committed since the last call (up to MaxAppendEntries), and runs of
// engine entries are applied under one engine lock (Engine.ApplyBatch).
// The answers are one per log, as Apply's.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	run, at := decodeRun(logs, out)
	for i, err := range f.ApplyRun(run) {
		out[at[i]] = err
	}
	return out
}

// decodeRun decodes the command logs; a log that does not decode gets its
// error in out and is left out of the run (as Apply does). at maps the
// run back to logs.
func decodeRun(logs []*raft.Log, out []any) (run []Logged, at []int) {
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		e, err := DecodeEntry(l.Data)
		if err != nil {
			out[i] = err
			continue
		}
		run = append(run, Logged{Index: l.Index, Entry: e})
		at = append(at, i)
	}
	return run, at
}

// ApplyRun applies decoded entries in order, one error per entry; entries
// at or before the applied Raft index are skipped.
func (f *FSM) ApplyRun(run []Logged) []error {
	errs := f.applyRun(run)
	if f.OnApply != nil {
		for i, l := range run {
			f.OnApply(byte(l.Entry.Kind), entryOps(l.Entry), errs[i])
		}
	}
	return errs
}

// applyRun applies run under f.mu: consecutive engine entries for the
// same engine are gathered and applied together; any other kind first
// applies what was gathered, then itself.
func (f *FSM) applyRun(run []Logged) []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := make([]error, len(run))
	var g runBatches
	for i, l := range run {
		if l.Index != 0 {
			if l.Index <= f.applied {
				continue
			}
			f.applied = l.Index
		}
		if batch, ok := f.batchers[l.Entry.Kind]; ok {
			p, err := batch(l.Entry)
			if errs[i] = err; err == nil {
				f.gather(&g, i, p, errs)
			}
			continue
		}
		f.flush(&g, errs)
		errs[i] = f.applyOne(l.Entry)
	}
	f.flush(&g, errs)
	return errs
}

// applyOne applies an entry of a kind that is not batched.
func (f *FSM) applyOne(e Entry) error {
	apply, ok := f.appliers[e.Kind]
	if !ok {
		return fmt.Errorf("replication: apply: %w %d", logentry.ErrUnknownKind, byte(e.Kind))
	}
	return apply(e)
}

// runBatches is a run of pending batches for one engine, with the positions
// of their entries in the run.
type runBatches struct {
	items   []pending
	at      []int
	upserts int
}

// gather adds p (entry i) to g, applying g first when p is for another
// engine or g is full.
func (f *FSM) gather(g *runBatches, i int, p pending, errs []error) {
	if len(g.items) > 0 && (g.items[0].engine != p.engine || g.upserts >= maxRunUpserts) {
		f.flush(g, errs)
	}
	g.items = append(g.items, p)
	g.at = append(g.at, i)
	g.upserts += len(p.ops.Upserts)
}

// flush applies what g gathered and takes the commit time of the last
// positioned entry applied (also when the engine already held its
// position).
func (f *FSM) flush(g *runBatches, errs []error) {
	if len(g.items) == 0 {
		return
	}
	batch := make([]index.Ops, len(g.items))
	for j, p := range g.items {
		batch[j] = p.ops
	}
	for j, err := range g.items[0].engine.ApplyBatch(batch) {
		errs[g.at[j]] = err
		if p := g.items[j]; err == nil && p.ops.Position.LSN != 0 && p.commitMs != 0 {
			f.commitTime = p.commitMs
		}
	}
	*g = runBatches{}
}

// The batchers: one per batched kind, each run with f.mu held.

func (f *FSM) batchChanges(e Entry) (pending, error) {
	p, err := payloadOf[*logentry.Changes](e)
	if err != nil {
		return pending{}, err
	}
	ops, err := opsOfChanges(p)
	return pending{engine: f.live.Engine(), ops: ops, commitMs: p.GetCommitTimeMs()}, err
}

func (f *FSM) batchKeepalive(e Entry) (pending, error) {
	p, err := payloadOf[*logentry.Keepalive](e)
	if err != nil {
		return pending{}, err
	}
	ops := index.Ops{Position: index.Position{LSN: index.LSN(p.GetLsn())}}
	return pending{engine: f.live.Engine(), ops: ops, commitMs: p.GetCommitTimeMs()}, nil
}

func (f *FSM) batchRepair(e Entry) (pending, error) {
	p, err := payloadOf[*logentry.Repair](e)
	if err != nil {
		return pending{}, err
	}
	// No position: applied whatever the engine's.
	ops, err := opsOfRepair(p)
	return pending{engine: f.live.Engine(), ops: ops}, err
}

func (f *FSM) batchBasePart(e Entry) (pending, error) {
	p, err := payloadOf[*logentry.BasePart](e)
	if err != nil {
		return pending{}, err
	}
	if f.staging == nil {
		return pending{}, errors.New("replication: base part without a base")
	}
	ops, err := opsOfBasePart(p)
	return pending{engine: f.staging, ops: ops}, err
}

// ApplyBatch measures a run as Apply measures one entry: each entry's
// span ends, and its apply time (its share of the run's) and its
// commit-to-searchable lag are observed, once the whole run is applied —
// when its changes become searchable.
func (t *timedFSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	run, at := decodeRun(logs, out)
	spans := make([]trace.Span, len(run))
	for i, l := range run {
		spans[i] = t.n.applySpan(logs[at[i]], l.Entry)
	}
	start := time.Now()
	errs := t.n.FSM.ApplyRun(run)
	applied := time.Since(start)
	t.n.logRun(run, start, applied)
	share := applied.Seconds() / float64(max(len(run), 1))
	for i, l := range run {
		out[at[i]] = errs[i]
		endApply(spans[i], errs[i])
		t.n.m.apply.WithLabelValues(kindName(l.Entry.Kind)).Observe(share)
		if ms := dataCommitTime(l.Entry); ms > 0 {
			t.n.m.commitToApply.Observe(max(0, time.Since(time.UnixMilli(ms)).Seconds()))
		}
	}
	return out
}
