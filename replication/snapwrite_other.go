//go:build !linux

package replication

import (
	"os"
	"time"
)

// syncRange does nothing where sync_file_range does not exist: the
// snapshot's writeback is left to the closing fsync.
func syncRange(*os.File, int64, int64, int64) error { return nil }

// onOwnThread runs fn on the calling goroutine (no per-thread CPU clock
// here: the stream is not paced).
func onOwnThread(fn func() error) error { return fn() }

// threadCPU is unknown here: the snapshot's stream is not paced.
func threadCPU() time.Duration { return -1 }
