package replication

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication/logentry"
)

// A Raft snapshot is
//
//	u32 little-endian length | snapshot header (logentry.EncodeSnapshotHeader)
//	the engine's snapshot (index.WriteSnapshot: versioned, CRC-checked)
//
// Both are taken together in Persist, under the FSM's lock (the engine's
// read view is captured inside it, briefly holding the engine's writer
// lock), so the header's applied index, members and commit time describe
// exactly the engine that follows. The stream is then written from the
// view with no lock held: applies go on while it streams.

// ErrBaseInProgress refuses a snapshot while a base is being built (the
// half-built engine is not worth carrying; Raft tries again later).
var ErrBaseInProgress = errors.New("replication: a base is being built")

// Snapshot implements raft.FSM. The state is read when Persist runs (see
// fsmSnapshot), not here.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.staging != nil {
		return nil, ErrBaseInProgress
	}
	return &fsmSnapshot{fsm: f}, nil
}

// fsmSnapshot writes the FSM as it is when Persist takes its read view:
// at or past the Raft index the snapshot is labelled with (Raft applies
// entries meanwhile). The header carries the index of the last entry the
// engine holds, and the FSM skips entries up to it after a restore, so
// nothing is applied twice.
type fsmSnapshot struct {
	fsm *FSM
	// stream runs the writing of the captured view (nil: on the calling
	// goroutine). The node writes on a thread of its own (onOwnThread),
	// whose CPU time paces the stream; the capture, which holds the FSM's
	// and the engine's locks the applies wait for, runs on the caller's.
	stream func(func() error) error
}

// Persist writes the header and the engine. Applies wait only while the
// view is captured, not while it streams; searches go on.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	view, header, err := s.fsm.readView()
	if err == nil {
		write := func() error { return writeSnapshot(sink, header, view) }
		if s.stream != nil {
			err = s.stream(write)
		} else {
			err = write()
		}
		view.Release()
	}
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("replication: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot (Persist released everything).
func (s *fsmSnapshot) Release() {}

// readView captures the serving engine and returns the header that
// describes it.
func (f *FSM) readView() (*index.ReadView, *logentry.SnapshotHeader, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.staging != nil {
		return nil, nil, ErrBaseInProgress
	}
	h := &logentry.SnapshotHeader{Based: f.based, CommitTimeMs: f.commitTime, AppliedIndex: f.applied}
	for _, m := range f.memberList() {
		h.Members = append(h.Members, memberOut(m))
	}
	// Lock order as in apply: the FSM's, then the engine's writer lock
	// (held by ReadView only while it captures).
	return f.live.Engine().ReadView(), h, nil
}

func writeSnapshot(w io.Writer, h *logentry.SnapshotHeader, view *index.ReadView) error {
	hb, err := logentry.EncodeSnapshotHeader(h)
	if err != nil {
		return err
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(hb)))
	if _, err := w.Write(append(n[:], hb...)); err != nil {
		return err
	}
	return view.WriteSnapshot(w)
}

// Restore implements raft.FSM: a fresh engine from the snapshot replaces
// the serving one.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<20)
	h, err := readSnapshotHeader(br)
	if err != nil {
		return fmt.Errorf("replication: restore: %w", err)
	}
	e, err := index.ReadSnapshot(f.cfg, br)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live.Swap(e)
	f.staging = nil
	f.based, f.commitTime, f.applied = h.GetBased(), h.GetCommitTimeMs(), h.GetAppliedIndex()
	f.members = map[string]Member{}
	for _, m := range h.GetMembers() {
		f.members[m.GetId()] = memberIn(m)
	}
	return nil
}

// readSnapshotHeader reads the length-prefixed header.
func readSnapshotHeader(r io.Reader) (*logentry.SnapshotHeader, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.LittleEndian.Uint32(n[:])
	if size > 64<<20 {
		return nil, fmt.Errorf("header of %d bytes", size)
	}
	hb := make([]byte, size)
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, err
	}
	return logentry.DecodeSnapshotHeader(hb)
}
