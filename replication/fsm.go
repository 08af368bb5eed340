package replication

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/sostenuto/sostenuto/index"
)

// Kinds of Raft log entries.
const (
	// KindOps is one committed PostgreSQL transaction (or, with no
	// operations, a keepalive that moves the applied position).
	KindOps byte = 1
	// KindBaseBegin starts a fresh base: later base parts build a new
	// engine beside the serving one.
	KindBaseBegin byte = 2
	// KindBasePart carries part of a base.
	KindBasePart byte = 3
	// KindBaseEnd completes a base at its position; the new engine
	// replaces the serving one.
	KindBaseEnd byte = 4
	// KindMember records a node's HTTP address.
	KindMember byte = 5
	// KindRepair carries anti-entropy repairs (no position).
	KindRepair byte = 6
)

// Entry is one Raft log entry.
type Entry struct {
	Kind byte
	Ops  index.Ops
	// CommitTime is the PostgreSQL commit time of the position (unix ms;
	// for keepalives the server's clock), so followers can tell their lag
	// in seconds without reading a clock in the FSM.
	CommitTime int64
	Member     Member
}

// Member is a node as the cluster knows it.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_address"`
	HTTPAddr string `json:"http_address"`
}

// Encode serializes an entry for raft.Apply.
func (e Entry) Encode() ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(e); err != nil {
		return nil, fmt.Errorf("replication: encode entry: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeEntry reads an entry written by Encode.
func DecodeEntry(b []byte) (Entry, error) {
	var e Entry
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&e); err != nil {
		return e, fmt.Errorf("replication: decode entry: %w", err)
	}
	return e, nil
}

// FSM applies the Raft log to the node's live engine. It is a thin,
// deterministic dispatch: no I/O besides the engine, no clocks, no
// randomness; every replica applying the same log holds the same index.
type FSM struct {
	live *index.Live
	cfg  index.Config

	mu         sync.Mutex
	based      bool          // the serving engine holds a complete base
	staging    *index.Engine // a base being built, if any
	members    map[string]Member
	commitTime int64

	// OnApply, when set, is told of every applied entry (metrics); it is
	// called on the FSM's goroutine and must not block.
	OnApply func(kind byte, ops int, err error)
}

// NewFSM feeds live.
func NewFSM(live *index.Live, cfg index.Config) *FSM {
	return &FSM{live: live, cfg: cfg, members: map[string]Member{}}
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
	s := State{Based: f.based, Building: f.staging != nil, Position: f.live.Engine().Position(), CommitTime: f.commitTime}
	for _, m := range f.members {
		s.Members = append(s.Members, m)
	}
	sort.Slice(s.Members, func(i, j int) bool { return s.Members[i].ID < s.Members[j].ID })
	return s
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
	return f.ApplyEntry(e)
}

// ApplyEntry applies a decoded entry.
func (f *FSM) ApplyEntry(e Entry) error {
	err := f.apply(e)
	if f.OnApply != nil {
		f.OnApply(e.Kind, e.Ops.Len(), err)
	}
	return err
}

func (f *FSM) apply(e Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch e.Kind {
	case KindOps, KindRepair:
		if e.Kind == KindRepair {
			e.Ops.Position = index.Position{}
		}
		if err := f.live.Engine().Apply(e.Ops); err != nil {
			return err
		}
		if e.Ops.Position.LSN != 0 && e.CommitTime != 0 {
			f.commitTime = e.CommitTime
		}
	case KindBaseBegin:
		fresh, err := index.New(f.cfg)
		if err != nil {
			return err
		}
		f.staging = fresh
	case KindBasePart:
		if f.staging == nil {
			return errors.New("replication: base part without a base")
		}
		e.Ops.Position = index.Position{}
		return f.staging.Apply(e.Ops)
	case KindBaseEnd:
		if f.staging == nil {
			return errors.New("replication: base end without a base")
		}
		if err := f.staging.Apply(index.Ops{Position: e.Ops.Position}); err != nil {
			return err
		}
		f.live.Swap(f.staging)
		f.staging, f.based = nil, true
		f.commitTime = e.CommitTime
	case KindMember:
		f.members[e.Member.ID] = e.Member
	default:
		return fmt.Errorf("replication: unknown entry kind %d", e.Kind)
	}
	return nil
}

// ErrBaseInProgress refuses a snapshot while a base is being built (the
// half-built engine is not worth carrying; Raft tries again later).
var ErrBaseInProgress = errors.New("replication: a base is being built")

// snapHeader travels before the engine in a Raft snapshot.
type snapHeader struct {
	Based      bool     `json:"based"`
	CommitTime int64    `json:"commit_time"`
	Members    []Member `json:"members"`
}

// Snapshot implements raft.FSM.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.staging != nil {
		return nil, ErrBaseInProgress
	}
	h := snapHeader{Based: f.based, CommitTime: f.commitTime}
	for _, m := range f.members {
		h.Members = append(h.Members, m)
	}
	return &fsmSnapshot{header: h, engine: f.live.Engine()}, nil
}

type fsmSnapshot struct {
	header snapHeader
	engine *index.Engine
}

// Persist writes the header (length-prefixed JSON) and the engine. The
// engine's writer lock is held meanwhile, so applies wait for it.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	err := func() error {
		hb, err := json.Marshal(s.header)
		if err != nil {
			return err
		}
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(hb)))
		if _, err := sink.Write(append(n[:], hb...)); err != nil {
			return err
		}
		return s.engine.WriteSnapshot(sink)
	}()
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("replication: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// Restore implements raft.FSM: a fresh engine from the snapshot replaces
// the serving one.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<20)
	var n [4]byte
	if _, err := io.ReadFull(br, n[:]); err != nil {
		return fmt.Errorf("replication: restore: %w", err)
	}
	size := binary.LittleEndian.Uint32(n[:])
	if size > 64<<20 {
		return fmt.Errorf("replication: restore: header of %d bytes", size)
	}
	hb := make([]byte, size)
	if _, err := io.ReadFull(br, hb); err != nil {
		return fmt.Errorf("replication: restore: %w", err)
	}
	var h snapHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return fmt.Errorf("replication: restore header: %w", err)
	}
	e, err := index.ReadSnapshot(f.cfg, br)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live.Swap(e)
	f.staging = nil
	f.based, f.commitTime = h.Based, h.CommitTime
	f.members = map[string]Member{}
	for _, m := range h.Members {
		f.members[m.ID] = m
	}
	return nil
}
