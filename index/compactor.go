package index

import (
	"context"
	"log/slog"
	"time"

	"github.com/sostenuto/sostenuto/index/vector"
)

// Compaction rebuilds the HNSW graph without its tombstones once they pass
// a quarter of the live vectors (and 1000). Apply only notices that it is
// due (maybeCompact); a Compactor, started and stopped by its owner, does
// it outside Apply:
//
//  1. begin (writer lock held, briefly): copy the live vectors out and start
//     logging the graph writes that follow;
//  2. build the fresh graph from that copy, holding no lock: searches and
//     writes go on against the old graph; ending the context abandons it;
//  3. finish (writer lock held): replay the logged writes onto the fresh
//     graph and swap it in, so nothing written meanwhile is lost.
//
// A snapshot writes from a read view captured under the writer lock, so a
// swap never lands inside one and never waits for one: a snapshot holds
// the graph current when its view was captured — the compacted one if
// step 3 ran before, else the old one with its tombstones (the same live
// vectors), frozen while the swap goes ahead.

// compactionDue reports whether vec's tombstones warrant a rebuild.
func compactionDue(vec *vector.Index) bool {
	dead, live := vec.Tombstones(), vec.Len()
	return dead >= 1000 && dead >= live/4
}

// compactSignal is the channel Apply signals when compaction is due.
func (e *Engine) compactSignal() chan struct{} {
	e.compactWantedOnce.Do(func() { e.compactWanted = make(chan struct{}, 1) })
	return e.compactWanted
}

// maybeCompact tells the Compactor, without waiting, that the graph is due
// for compaction. The writer lock is held on entry.
func (e *Engine) maybeCompact(vec *vector.Index) {
	if e.compacting != nil || !compactionDue(vec) {
		return
	}
	select {
	case e.compactSignal() <- struct{}{}:
	default: // already signalled
	}
}

// compaction is one rebuild in progress.
type compaction struct {
	items []vector.Item
	log   *[]graphOp
	src   *vector.Index // the graph compacted
}

// Compact rebuilds the graph without tombstones when they pass the
// threshold, and reports whether it did. It runs on the caller's goroutine
// (a Compactor's, or a test's); ending ctx abandons the rebuild and leaves
// the engine as it was.
func (e *Engine) Compact(ctx context.Context) (bool, error) {
	c, ok := e.beginCompaction()
	if !ok {
		return false, nil
	}
	fresh, err := vector.BuildContext(ctx, c.src.Config(), c.items)
	return e.finishCompaction(c, fresh, err)
}

// beginCompaction copies the live vectors out and starts logging graph
// writes; ok is false when no compaction is due or one is running.
func (e *Engine) beginCompaction() (*compaction, bool) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	vec := e.graph()
	if e.compacting != nil || !compactionDue(vec) {
		return nil, false
	}
	c := &compaction{items: vec.LiveItems(), log: &[]graphOp{}, src: vec}
	e.compacting = c.log
	return c, true
}

// finishCompaction replays the writes logged since begin onto fresh and
// swaps it in; after a failed build (err) it only stops the logging.
func (e *Engine) finishCompaction(c *compaction, fresh *vector.Index, err error) (bool, error) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.compacting = nil
	if err != nil {
		return false, err
	}
	if e.graph() != c.src {
		// The embedding model switched meanwhile: the compacted graph
		// is of a model no longer searched.
		return false, nil
	}
	for _, op := range *c.log {
		if op.vec == nil {
			fresh.Delete(op.id)
		} else if err := fresh.Add(op.id, op.vec); err != nil {
			return false, err
		}
	}
	e.mu.Lock()
	e.vec = fresh
	e.mu.Unlock()
	return true, nil
}

// Compactor compacts the graph of whichever engine Live serves (a restore
// or a base swaps engines), when Apply signals that it is due and, to
// notice a swapped-in engine that needs it, every Every.
type Compactor struct {
	live   *Live
	every  time.Duration
	logger *slog.Logger
}

// NewCompactor compacts live's engines; every is how often it looks
// without a signal (1 s if zero).
func NewCompactor(live *Live, every time.Duration, logger *slog.Logger) *Compactor {
	if every <= 0 {
		every = time.Second
	}
	return &Compactor{live: live, every: every, logger: logger}
}

// Run compacts until ctx ends; a rebuild in progress is abandoned then.
func (c *Compactor) Run(ctx context.Context) error {
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.live.Engine().compactSignal():
		case <-tick.C:
		}
		start := time.Now()
		done, err := c.live.Engine().Compact(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			c.logger.Warn("graph compaction failed", "component", "index", "error", err)
		case done:
			c.logger.Info("graph compacted", "component", "index", "elapsed", time.Since(start).Round(time.Millisecond))
		}
	}
}
