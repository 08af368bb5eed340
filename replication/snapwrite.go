package replication

import (
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// writebackWindow is how much of a snapshot may be written and not yet on
// disk: past it, the writer starts the window's writeback and waits for
// the one before (syncRange).
const writebackWindow = 2 << 20

// pacedSink writes a snapshot back to disk while it streams, a window at
// a time, instead of leaving hundreds of MiB dirty for the sink's closing
// fsync. On ext4 (data=ordered) an fsync of the Raft log commits the
// journal, which first writes every newly allocated dirty block of the
// file system — the whole snapshot, if it is still in the page cache — so
// the log's fsync (every commit) stalled for as long as the snapshot took
// to reach the disk. Paced, at most two windows are dirty at any time.
// As RocksDB's bytes_per_sync, with sync_file_range.
type pacedSink struct {
	raft.SnapshotSink
	f       *os.File // a second descriptor of the state file; nil: not paced
	written int64
	started int64 // bytes whose writeback has been started
	waited  int64 // bytes known to be on disk
	err     error // the first writeback error: pacing stops, the sink goes on
}

// newPacedSink paces sink when it is a file sink of dir whose state file
// it can open; otherwise it only passes the writes through.
func newPacedSink(sink raft.SnapshotSink, dir string) *pacedSink {
	p := &pacedSink{SnapshotSink: sink}
	if _, ok := sink.(*raft.FileSnapshotSink); ok {
		// raft.FileSnapshotStore writes <dir>/snapshots/<id>.tmp/state.bin.
		p.f, _ = os.Open(filepath.Join(dir, "snapshots", sink.ID()+".tmp", "state.bin"))
	}
	return p
}

// Write implements io.Writer.
func (p *pacedSink) Write(b []byte) (int, error) {
	n, err := p.SnapshotSink.Write(b)
	p.written += int64(n)
	if p.f != nil && p.err == nil && p.written-p.started >= writebackWindow {
		p.err = syncRange(p.f, p.waited, p.started, p.written)
		p.waited, p.started = p.started, p.written
	}
	return n, err
}

// Close implements raft.SnapshotSink.
func (p *pacedSink) Close() error {
	p.release()
	return p.SnapshotSink.Close()
}

// Cancel implements raft.SnapshotSink.
func (p *pacedSink) Cancel() error {
	p.release()
	return p.SnapshotSink.Cancel()
}

func (p *pacedSink) release() {
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
}
