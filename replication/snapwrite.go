package replication

import (
	"os"
	"path/filepath"
	"time"

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
	started int64     // bytes whose writeback has been started
	waited  int64     // bytes known to be on disk
	err     error     // the first writeback error: pacing stops, the sink goes on
	cpu     *cpuPacer // nil: the stream's CPU is not paced
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
	if p.written == 0 && p.cpu != nil {
		p.cpu.pace() // the first reading of the stream thread's clock
	}
	n, err := p.SnapshotSink.Write(b)
	p.written += int64(n)
	if p.written-p.started >= writebackWindow {
		p.window()
	}
	return n, err
}

// window ends a window of the stream: its writeback starts (and the
// previous one's is waited for), and the stream rests for its CPU share.
func (p *pacedSink) window() {
	if p.f != nil && p.err == nil {
		p.err = syncRange(p.f, p.waited, p.started, p.written)
	}
	p.waited, p.started = p.started, p.written
	if p.cpu != nil {
		p.cpu.pace()
	}
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

// streamRest is how long a snapshot's stream rests for each unit of CPU
// it used: 3, so it takes at most a quarter of one CPU (the applies keep
// the rest) and stays at the process's priority. The stream used to run
// on a thread at nice 10 instead: a Go thread holds one of the process's
// GOMAXPROCS Ps while it runs Go code, and on a busy machine the kernel
// left that thread off the CPU for tens to hundreds of milliseconds at a
// time, with its P. Every stop-the-world of the garbage collector (and
// the collector's handshakes with each P) waited for it, and the whole
// node with them: the steady-phase stalls of the cluster benchmark
// (replication/DESIGN.md, "Writing a snapshot beside the applies").
const streamRest = 3

// maxRest bounds one rest (a thread clock read across threads would
// otherwise be able to put the stream to sleep for long).
const maxRest = 250 * time.Millisecond

// cpuPacer makes a stream running on a thread of its own (onOwnThread)
// rest streamRest times the CPU time its thread used since the last
// rest.
type cpuPacer struct {
	last  time.Duration // the thread's CPU time after the last rest (0: none yet)
	sleep func(time.Duration)
}

// pace rests for the CPU used since the last call (the first call only
// reads the clock, on the stream's thread).
func (c *cpuPacer) pace() {
	now := threadCPU()
	if now < 0 {
		return
	}
	if c.last > 0 && now > c.last {
		c.sleep(min(streamRest*(now-c.last), maxRest))
	}
	c.last = threadCPU()
}
