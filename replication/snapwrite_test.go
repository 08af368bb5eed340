package replication

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/sys/unix"

	"github.com/sostenuto/sostenuto/index"
)

// A snapshot written through the node's sink is written back while it
// streams: at no point are more than a few windows of it dirty in the
// page cache, so the Raft log's fsync never waits for hundreds of MiB
// (before: the whole snapshot stayed dirty until the sink's closing
// fsync; with the kernel's defaults, 64 MiB here).
func TestSnapshotSinkWritesBackWhileStreaming(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sync_file_range and cachestat are Linux's")
	}
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil || fs.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is not on a disk")
	}
	store, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := store.Create(raft.SnapshotVersionMax, 10, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	state, err := os.Open(filepath.Join(dir, "snapshots", sink.ID()+".tmp", "state.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	paced := newPacedSink(sink, dir)
	block := make([]byte, 256<<10)
	const total = 64 << 20
	var most uint64
	for written := 0; written < total; written += len(block) {
		if _, err := paced.Write(block); err != nil {
			t.Fatal(err)
		}
		var st unix.Cachestat_t
		if err := unix.Cachestat(uint(state.Fd()), &unix.CachestatRange{}, &st, 0); err != nil {
			t.Skipf("cachestat: %v", err)
		}
		most = max(most, st.Dirty)
	}
	if err := paced.Close(); err != nil {
		t.Fatal(err)
	}
	page := uint64(os.Getpagesize())
	if limit := uint64(3*writebackWindow) / page; most > limit {
		t.Fatalf("%d KiB of the snapshot dirty at once; want at most %d KiB (three windows)", most*page>>10, limit*page>>10)
	}
	t.Logf("at most %d KiB dirty while writing %d MiB", most*page>>10, total>>20)
}

// The node streams a snapshot on a thread of its own at the process's
// priority. It used to lower that thread to nice 10: on a busy machine
// the kernel then kept the thread off the CPU for up to hundreds of
// milliseconds at a time, while it held one of the runtime's Ps, and
// every stop-the-world of the garbage collector waited for it — the
// whole node stalled (bench/RESULTS.md, session 9).
func TestSnapshotStreamsAtTheProcessPriority(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("per-thread nice is Linux's")
	}
	stream := nodeStream(t)
	process, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	var inside int
	if err := stream(func() error {
		var err error
		inside, err = unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// getpriority answers 20 - nice.
	if inside != process {
		t.Fatalf("the snapshot's thread runs at nice %d, the process at nice %d", 20-inside, 20-process)
	}
}

// The stream rests three times the CPU time its thread spends, a window
// at a time, so it takes at most a quarter of a CPU from the applies.
func TestSnapshotStreamRestsForItsCPU(t *testing.T) {
	if threadCPU() < 0 {
		t.Skip("no per-thread CPU clock here")
	}
	var rested, used time.Duration
	err := onOwnThread(func() error {
		p := &pacedSink{SnapshotSink: discardSink{}, cpu: &cpuPacer{sleep: func(d time.Duration) { rested += d }}}
		block := make([]byte, 256<<10)
		start := threadCPU()
		for range 64 * writebackWindow / len(block) { // 64 windows, each ending on a write
			for i := range block { // some CPU per block, as encoding takes
				block[i] += byte(i)
			}
			if _, err := p.Write(block); err != nil {
				return err
			}
		}
		used = threadCPU() - start
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if used <= 0 {
		t.Fatal("the stream's thread used no CPU")
	}
	if ratio := float64(rested) / float64(used); ratio < 0.9*streamRest || ratio > streamRest {
		t.Fatalf("rested %v for %v of CPU (%.2f×); want about %d×", rested, used, ratio, streamRest)
	}
	t.Logf("rested %v for %v of CPU", rested, used)
}

type discardSink struct{}

func (discardSink) Write(p []byte) (int, error) { return len(p), nil }
func (discardSink) Close() error                { return nil }
func (discardSink) ID() string                  { return "discard" }
func (discardSink) Cancel() error               { return nil }

// A garbage collection stops every goroutine of the process twice a
// cycle, and each stop waits for every P to reach a safe point — also
// the P of a thread running Go code that the kernel keeps off the CPU.
// On a machine with more runnable threads than CPUs (here: more Ps than
// CPUs, all spinning), the node's snapshot stream must not make the
// collections slower than the spinning alone does; at nice 10 it made
// them 2.5–3× slower (bench/RESULTS.md, session 9).
func TestSnapshotStreamDoesNotHoldUpTheCollector(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("per-thread nice is Linux's")
	}
	stream := nodeStream(t)
	procs := 3*runtime.NumCPU() + 1
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	stop := make(chan struct{})
	var spinners sync.WaitGroup
	for range procs - 2 {
		spinners.Go(func() { spinUntil(stop) })
	}
	defer func() { close(stop); spinners.Wait() }()
	var without, with time.Duration
	for range 4 { // interleaved, so the machine's other load weighs on both
		without += collections(2)
		streaming, done := make(chan struct{}), make(chan error)
		go func() { done <- stream(func() error { spinUntil(streaming); return nil }) }()
		time.Sleep(20 * time.Millisecond)
		with += collections(2)
		close(streaming)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("8 collections: %v with a snapshot streaming, %v without", with, without)
	if with > 2*without {
		t.Fatalf("collections took %v with a snapshot streaming, %v without", with, without)
	}
}

// nodeStream is how the node streams a snapshot (timedFSM.Snapshot).
func nodeStream(t *testing.T) func(func() error) error {
	t.Helper()
	tf := &timedFSM{n: &Node{FSM: NewFSM(index.NewLive(mustEngine(t)), index.DefaultConfig())}}
	s, err := tf.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	fs := s.(*timedSnapshot).FSMSnapshot.(*fsmSnapshot)
	if fs.stream == nil {
		t.Fatal("the node's snapshot streams on the calling goroutine")
	}
	return fs.stream
}

// collections runs n garbage collections and answers how long they took.
func collections(n int) time.Duration {
	start := time.Now()
	for range n {
		runtime.GC()
	}
	return time.Since(start)
}

// spinUntil keeps a CPU busy until stop is closed.
func spinUntil(stop <-chan struct{}) {
	x := 0
	for {
		select {
		case <-stop:
			return
		default:
		}
		for i := range 100_000 {
			x += i
		}
	}
}
