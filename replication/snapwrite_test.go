package replication

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/hashicorp/raft"
	"golang.org/x/sys/unix"
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

// A snapshot is written on a thread of its own at a lower priority
// (nice 10), and the thread never runs anything else afterwards: the
// runtime ends it (or, if it was the main thread, parks it for good), so
// goroutines locking every thread the runtime hands out all run at the
// normal priority.
func TestInBackgroundRunsOnALowPriorityThread(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("per-thread nice is Linux's")
	}
	var inside int
	err := inBackground(func() error {
		var err error
		inside, err = unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// getpriority answers 20 - nice.
	if nice := 20 - inside; nice != backgroundNice {
		t.Fatalf("the snapshot's thread runs at nice %d, want %d", nice, backgroundNice)
	}
	// Locked goroutines that block take every idle thread first.
	const threads = 64
	release := make(chan struct{})
	nices := make(chan int, threads)
	for range threads {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			p, _ := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
			nices <- 20 - p
			<-release
		}()
	}
	for range threads {
		if nice := <-nices; nice != 0 {
			close(release)
			t.Fatalf("a goroutine ran at nice %d after the snapshot's thread was done", nice)
		}
	}
	close(release)
}
