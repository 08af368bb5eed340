package replication

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication/logentry"
)

// FSM applies the Raft log to the node's live engine. It is a thin,
// deterministic dispatch from an entry's kind to its applier: no I/O
// besides the engine, no clocks, no randomness, no goroutines; every
// replica applying the same log holds the same index.
type FSM struct {
	live     *index.Live
	cfg      index.Config
	appliers map[logentry.Kind]func(Entry) error

	mu         sync.Mutex
	based      bool          // the serving engine holds a complete base
	staging    *index.Engine // a base being built, if any
	members    map[string]Member
	commitTime int64
	// applied is the Raft index of the last entry applied (0 outside
	// Raft). A snapshot records it, so the entries after the snapshot's
	// Raft index that its engine already holds are skipped on replay.
	applied uint64

	// OnApply, when set, is told of every applied entry (metrics); it is
	// called on the FSM's goroutine and must not block.
	OnApply func(kind byte, ops int, err error)
}

// NewFSM feeds live.
func NewFSM(live *index.Live, cfg index.Config) *FSM {
	f := &FSM{live: live, cfg: cfg, members: map[string]Member{}}
	f.appliers = map[logentry.Kind]func(Entry) error{
		logentry.KindChanges:   f.applyChanges,
		logentry.KindKeepalive: f.applyKeepalive,
		logentry.KindRepair:    f.applyRepair,
		logentry.KindBaseBegin: f.applyBaseBegin,
		logentry.KindBasePart:  f.applyBasePart,
		logentry.KindBaseEnd:   f.applyBaseEnd,
		logentry.KindMember:    f.applyMember,
	}
	return f
}

// State is what the FSM tells about itself.
type State struct {
	Based      bool
	Building   bool // a base is in progress
	Position   index.Position
	CommitTime int64
	Members    []Member
}

// State returns the FSM's state.
func (f *FSM) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return State{Based: f.based, Building: f.staging != nil, Position: f.live.Engine().Position(),
		CommitTime: f.commitTime, Members: f.memberList()}
}

// memberList lists the members by id; f.mu is held.
func (f *FSM) memberList() []Member {
	var out []Member
	for _, m := range f.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Apply implements raft.FSM. The answer is nil or an error.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	e, err := DecodeEntry(l.Data)
	if err != nil {
		return err
	}
	return f.ApplyAt(l.Index, e)
}

// ApplyEntry applies a decoded entry that is not in a Raft log (one
// process, no replication).
func (f *FSM) ApplyEntry(e Entry) error { return f.ApplyAt(0, e) }

// ApplyAt applies the entry at Raft index idx (0: none). An index the
// state already holds, restored from a snapshot persisted past it, is
// skipped.
func (f *FSM) ApplyAt(idx uint64, e Entry) error {
	err := f.apply(idx, e)
	if f.OnApply != nil {
		f.OnApply(byte(e.Kind), entryOps(e), err)
	}
	return err
}

func (f *FSM) apply(idx uint64, e Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if idx != 0 {
		if idx <= f.applied {
			return nil
		}
		f.applied = idx
	}
	apply, ok := f.appliers[e.Kind]
	if !ok {
		return fmt.Errorf("replication: apply: %w %d", logentry.ErrUnknownKind, byte(e.Kind))
	}
	return apply(e)
}

// The appliers: one per kind, each run with f.mu held.

func (f *FSM) applyChanges(e Entry) error {
	p, err := payloadOf[*logentry.Changes](e)
	if err != nil {
		return err
	}
	ops, err := opsOfChanges(p)
	if err != nil {
		return err
	}
	return f.applyAtPosition(ops, p.GetCommitTimeMs())
}

func (f *FSM) applyKeepalive(e Entry) error {
	p, err := payloadOf[*logentry.Keepalive](e)
	if err != nil {
		return err
	}
	return f.applyAtPosition(index.Ops{Position: index.Position{LSN: index.LSN(p.GetLsn())}}, p.GetCommitTimeMs())
}

// applyAtPosition applies a positioned batch to the serving engine and
// takes its commit time (also when the engine already held the position).
func (f *FSM) applyAtPosition(ops index.Ops, commitMs int64) error {
	if err := f.live.Engine().Apply(ops); err != nil {
		return err
	}
	if ops.Position.LSN != 0 && commitMs != 0 {
		f.commitTime = commitMs
	}
	return nil
}

func (f *FSM) applyRepair(e Entry) error {
	p, err := payloadOf[*logentry.Repair](e)
	if err != nil {
		return err
	}
	ops, err := opsOfRepair(p)
	if err != nil {
		return err
	}
	return f.live.Engine().Apply(ops) // no position: applied whatever the engine's
}

func (f *FSM) applyBaseBegin(Entry) error {
	fresh, err := index.New(f.cfg)
	if err != nil {
		return err
	}
	f.staging = fresh
	return nil
}

func (f *FSM) applyBasePart(e Entry) error {
	p, err := payloadOf[*logentry.BasePart](e)
	if err != nil {
		return err
	}
	if f.staging == nil {
		return errors.New("replication: base part without a base")
	}
	ops, err := opsOfBasePart(p)
	if err != nil {
		return err
	}
	return f.staging.Apply(ops)
}

func (f *FSM) applyBaseEnd(e Entry) error {
	p, err := payloadOf[*logentry.BaseEnd](e)
	if err != nil {
		return err
	}
	if f.staging == nil {
		return errors.New("replication: base end without a base")
	}
	if err := f.staging.Apply(index.Ops{Position: index.Position{LSN: index.LSN(p.GetLsn())}}); err != nil {
		return err
	}
	f.live.Swap(f.staging)
	f.staging, f.based = nil, true
	f.commitTime = p.GetCommitTimeMs()
	return nil
}

func (f *FSM) applyMember(e Entry) error {
	p, err := payloadOf[*logentry.Member](e)
	if err != nil {
		return err
	}
	m := memberIn(p)
	f.members[m.ID] = m
	return nil
}
