package replication

import (
	"os"
	"runtime"
	"time"

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

// onOwnThread runs fn on a goroutine locked to an OS thread, at the
// process's priority, and waits for it: the thread's CPU time is then
// fn's (threadCPU), which the snapshot's pacing measures (cpuPacer).
func onOwnThread(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		done <- fn()
	}()
	return <-done
}

// threadCPU is the CPU time the calling thread has used (-1: unknown).
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return -1
	}
	return time.Duration(ts.Nano())
}
