package replication

import (
	"context"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// timedLogStore measures how long the Raft log takes to store entries
// (BoltDB: a write transaction and an fsync), the stage of a commit a
// disk stalled by other writes slows down.
type timedLogStore struct {
	raft.LogStore
	n *Node
}

// StoreLog implements raft.LogStore.
func (s *timedLogStore) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs implements raft.LogStore.
func (s *timedLogStore) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	err := s.LogStore.StoreLogs(logs)
	d := time.Since(start)
	s.n.m.logStore.Observe(d.Seconds())
	if d >= slowStage {
		s.n.cfg.Logger.Debug("slow raft log store", "component", "replication", "node", s.n.cfg.ID,
			"entries", len(logs), "ms", d.Milliseconds())
	}
	return err
}

// slowStage is how long a stage takes before it is logged (debug).
const slowStage = 50 * time.Millisecond

// logRun tells (debug) how a run of entries went: how long it waited
// between its oldest commit and the start of its apply, and how long the
// apply took.
func (n *Node) logRun(run []Logged, start time.Time, applied time.Duration) {
	if !n.cfg.Logger.Enabled(context.Background(), slog.LevelDebug) {
		return // nothing to count on the apply path
	}
	var oldest int64
	upserts := 0
	for _, l := range run {
		if ms := dataCommitTime(l.Entry); ms > 0 && (oldest == 0 || ms < oldest) {
			oldest = ms
		}
		upserts += entryOps(l.Entry)
	}
	if oldest == 0 {
		return
	}
	n.cfg.Logger.Debug("applied run", "component", "replication", "node", n.cfg.ID, "entries", len(run), "ops", upserts,
		"wait_ms", start.Sub(time.UnixMilli(oldest)).Milliseconds(), "apply_ms", applied.Milliseconds())
	n.logSearchable(run, start, applied)
}

// logSearchable tells (debug), for each transaction of a run, when it
// became searchable here: its position, its commit time and its lag, the
// run's start (unix ms) and apply time. The cluster benchmark reads these
// lines for exact per-transaction lags (the histogram only has buckets).
func (n *Node) logSearchable(run []Logged, start time.Time, applied time.Duration) {
	done := start.Add(applied)
	for _, l := range run {
		ms := dataCommitTime(l.Entry)
		if ms == 0 {
			continue
		}
		lsn, _ := entryPosition(l.Entry)
		n.cfg.Logger.Debug("searchable", "component", "replication", "node", n.cfg.ID, "index", l.Index, "lsn", lsn,
			"commit_ms", ms, "lag_ms", done.Sub(time.UnixMilli(ms)).Milliseconds(), "run_start_ms", start.UnixMilli(),
			"run_entries", len(run), "apply_ms", applied.Milliseconds())
	}
}
