//go:build !linux

package replication

import "os"

// syncRange does nothing where sync_file_range does not exist: the
// snapshot's writeback is left to the closing fsync.
func syncRange(*os.File, int64, int64, int64) error { return nil }

// inBackground runs fn (at the same priority: no per-thread nice here).
func inBackground(fn func() error) error { return fn() }
