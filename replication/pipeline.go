package replication

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// maxInFlight bounds the entries the feed has handed to Raft and not yet
// seen committed and applied.
const maxInFlight = 8

// Pipeliner is a Proposer that can hand an entry over without waiting for
// it: the feed keeps several in flight while a bulk load streams, so Raft
// commits them together and the FSM applies them as one run.
type Pipeliner interface {
	Proposer
	// Enqueue hands e to replication; wait returns once it is committed
	// and applied locally, or failed. Entries are committed in the order
	// they were enqueued.
	Enqueue(ctx context.Context, e Entry) (wait func() error)
}

// Enqueue implements Pipeliner.
func (n *Node) Enqueue(ctx context.Context, e Entry) func() error {
	if n.raft.State() != raft.Leader {
		return func() error { return ErrNotLeader }
	}
	data, err := e.Encode()
	if err != nil {
		return func() error { return err }
	}
	f := n.raft.Apply(data, n.cfg.ApplyTimeout)
	return func() error {
		if err := f.Error(); err != nil {
			return fmt.Errorf("replication: propose: %w", err)
		}
		if err, ok := f.Response().(error); ok && err != nil {
			return err
		}
		return ctx.Err()
	}
}

// inFlight is an entry handed over and not yet settled.
type inFlight struct {
	e        Entry
	wait     func() error
	received time.Time
}

// propose sends the entries read to p in order and stores in committed the
// position of the last one settled. With a Pipeliner, up to maxInFlight
// entries are in flight while more wait in proposals; when none wait, all
// are settled, so a lone transaction is confirmed as soon as it applies.
// Any other Proposer gets one entry at a time. A candidateShipper (the
// Raft node) fills in each entry's candidate neighbours first.
func (f *Feed) propose(ctx context.Context, proposals <-chan Entry, p Proposer, committed *atomic.Uint64) error {
	pl, ok := p.(Pipeliner)
	cs, ships := p.(candidateShipper)
	var q []inFlight
	for e := range proposals {
		it := inFlight{e: e, received: time.Now()}
		if ships {
			cs.shipCandidates(e, q)
		}
		if ok {
			it.wait = pl.Enqueue(ctx, e)
		} else {
			it.wait = func() error { return p.Propose(ctx, e) }
		}
		q = append(q, it)
		for len(q) > 0 && (!ok || len(q) >= maxInFlight || len(proposals) == 0) {
			if err := f.settle(q[0], committed); err != nil {
				return err
			}
			q = q[1:]
		}
	}
	return nil
}

// settle waits for an entry handed over and records its position.
func (f *Feed) settle(it inFlight, committed *atomic.Uint64) error {
	if err := it.wait(); err != nil {
		return err
	}
	lsn, commitMs := entryPosition(it.e)
	if lsn != 0 {
		committed.Store(uint64(lsn))
	}
	if n := entryOps(it.e); n > 0 {
		f.Logger.Debug("transaction replicated", "component", "replication", "lsn", lsn,
			"operations", n, "commit_to_receive_ms", it.received.UnixMilli()-commitMs, "propose_ms", time.Since(it.received).Milliseconds())
	}
	return nil
}
