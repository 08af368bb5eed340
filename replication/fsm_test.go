package replication

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication/logentry"
)

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func smallChunk(version int64, text string) index.Chunk {
	return index.Chunk{ID: gid(4), DocumentID: gid(1), OwnerID: gid(2), Text: text, Version: version,
		Vector: []float32{1, float32(version), 0, 0, 0, 0, 0, 0}}
}

func mustApplyAt(t *testing.T, f *FSM, idx uint64, e Entry) {
	t.Helper()
	if err := f.ApplyAt(idx, e); err != nil {
		t.Fatalf("apply %s at %d: %v", e.Kind, idx, err)
	}
}

// Raft labels a snapshot with the index applied when it asked for it, but
// Persist runs later, beside further applies: the snapshot's engine may
// hold entries past its label, which Raft replays after a restore. Those
// must not apply twice — here a repair (no position) replayed over the
// newer transaction that followed it would bring back an old version, and
// the transaction itself, at or before the engine's position, would then
// be skipped.
func TestSnapshotPersistedPastItsIndexAppliesNothingTwice(t *testing.T) {
	cfg := raftTestIndexConfig()
	f := newTestFSMWith(t, cfg)
	mustApplyAt(t, f, 1, BaseBeginEntry())
	mustApplyAt(t, f, 2, BaseEndEntry(100, 1))
	mustApplyAt(t, f, 3, ChangesEntry(index.Ops{Position: index.Position{LSN: 110}, Upserts: []index.Chunk{smallChunk(1, "one")}}, 2))
	snap, err := f.Snapshot() // Raft labels it 3
	if err != nil {
		t.Fatal(err)
	}
	later := []Entry{
		RepairEntry(index.Ops{Upserts: []index.Chunk{smallChunk(2, "repaired")}}),
		ChangesEntry(index.Ops{Position: index.Position{LSN: 120}, Upserts: []index.Chunk{smallChunk(3, "three")}}, 3),
	}
	mustApplyAt(t, f, 4, later[0])
	mustApplyAt(t, f, 5, later[1])
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	restored := newTestFSMWith(t, cfg)
	if err := restored.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	mustApplyAt(t, restored, 4, later[0]) // Raft replays the log after index 3
	mustApplyAt(t, restored, 5, later[1])
	if got := restored.live.Engine().ChunkVersions()[gid(4)]; got != 3 {
		t.Fatalf("after restore and replay the chunk is at version %d, want 3", got)
	}
	if digest(restored, nil) != digest(f, nil) {
		t.Fatalf("restored\n%s\noriginal\n%s", digest(restored, nil), digest(f, nil))
	}
	mustApplyAt(t, restored, 6, KeepaliveEntry(130, 4)) // and goes on
	if restored.State().Position.LSN != 130 {
		t.Fatal("an entry past the snapshot was skipped")
	}
}

// No snapshot while a base is half built, neither when Raft asks nor when
// a base begins before Persist runs.
func TestSnapshotRefusedDuringABase(t *testing.T) {
	f := newTestFSMWith(t, raftTestIndexConfig())
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	mustApplyAt(t, f, 1, BaseBeginEntry())
	var sink memSink
	if err := snap.Persist(&sink); !errors.Is(err, ErrBaseInProgress) || !sink.cancelled {
		t.Fatalf("persist during a base: %v (cancelled %v)", err, sink.cancelled)
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrBaseInProgress) {
		t.Fatalf("snapshot during a base: %v", err)
	}
}

// Each kind goes to its applier; an unknown kind, or a payload of another
// kind's type, is an error that changes nothing.
func TestFSMDispatch(t *testing.T) {
	f := newTestFSMWith(t, raftTestIndexConfig())
	for _, e := range []Entry{
		{Kind: 99, Payload: &logentry.Keepalive{Lsn: 5}},
		{Kind: logentry.KindKeepalive, Payload: &logentry.Member{Id: "x"}},
		{Kind: logentry.KindBasePart, Payload: &logentry.BasePart{}}, // no base begun
	} {
		if err := f.ApplyEntry(e); err == nil {
			t.Errorf("%s entry carrying %T applied", e.Kind, e.Payload)
		}
	}
	if st := f.State(); st.Position.LSN != 0 || len(st.Members) != 0 {
		t.Fatalf("refused entries changed the state: %+v", st)
	}
	mustApplyAt(t, f, 0, MemberEntry(Member{ID: "n1", HTTPAddr: "http://n1"}))
	mustApplyAt(t, f, 0, KeepaliveEntry(7, 70))
	if st := f.State(); st.Position.LSN != 7 || st.CommitTime != 70 || len(st.Members) != 1 {
		t.Fatalf("state %+v", st)
	}
	if _, err := (Entry{Kind: 99, Payload: &logentry.Keepalive{}}).Encode(); !errors.Is(err, logentry.ErrUnknownKind) {
		t.Fatalf("encode of an unknown kind: %v", err)
	}
	if _, err := (Entry{Kind: logentry.KindChanges, Payload: &logentry.Member{}}).Encode(); err == nil {
		t.Fatal("a changes entry carrying a member encoded")
	}
}

var _ raft.SnapshotSink = (*memSink)(nil)
