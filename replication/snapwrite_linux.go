package replication

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// syncRange waits for the writeback of [waited, started) of f (the window
// started last time) to reach the disk and starts the writeback of
// [started, written) (sync_file_range: data only, no journal commit, no
// wait for other files).
func syncRange(f *os.File, waited, started, written int64) error {
	fd := int(f.Fd())
	if started > waited {
		err := unix.SyncFileRange(fd, waited, started-waited, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		if err != nil {
			return err
		}
	}
	return unix.SyncFileRange(fd, started, written-started, unix.SYNC_FILE_RANGE_WRITE)
}

// backgroundNice is the nice value of the thread a snapshot is written
// on: it gets a tenth of a CPU the applies want (CFS weights 110 and
// 1,024), all of one they leave idle.
const backgroundNice = 10

// inBackground runs fn on an OS thread of its own at backgroundNice and
// waits for it. The thread is never unlocked, so the runtime discards it
// when fn returns (a process may lower its threads' priority, not raise
// it back).
func inBackground(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), backgroundNice) //nolint:errcheck // best effort: fn runs either way
		done <- fn()
	}()
	return <-done
}
