package replication

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/index"
)

// countingPipeliner is a real Node that counts the entries handed to Raft
// and not yet waited for.
type countingPipeliner struct {
	*Node
	mu               sync.Mutex
	open, most, sent int
	versions         []byte // of the entries handed over, in order
}

func (c *countingPipeliner) Enqueue(ctx context.Context, e Entry) func() error {
	c.mu.Lock()
	c.open++
	c.sent++
	c.most = max(c.most, c.open)
	c.versions = append(c.versions, e.Version())
	c.mu.Unlock()
	wait := c.Node.Enqueue(ctx, e)
	return func() error {
		err := wait()
		c.mu.Lock()
		c.open--
		c.mu.Unlock()
		return err
	}
}

// The feed hands a backlog of transactions to the Raft leader several at
// a time (never more than maxInFlight), settles them in order, and
// confirms the last position once it is applied. With ShipCandidates the
// entries carry candidate neighbours (version 5); without, none does.
func TestFeedPipelinesProposals(t *testing.T) {
	for _, ship := range []bool{false, true} {
		t.Run(fmt.Sprintf("ship=%v", ship), func(t *testing.T) { feedPipelines(t, ship) })
	}
}

func feedPipelines(t *testing.T, ship bool) {
	ca := newTestCA(t)
	n, err := StartNode(NodeConfig{ID: "n1", RaftBind: "127.0.0.1:0", Dir: t.TempDir(), Bootstrap: true, Fast: true,
		TLS: ca.node("n1", "127.0.0.1"), Index: testEngineConfig(), ApplyTimeout: 10 * time.Second, ShipCandidates: ship,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "n1 leads", n.IsLeader)
	for _, e := range []Entry{BaseBeginEntry(), BaseEndEntry(100, 1)} {
		if err := n.Propose(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	d := newRaftTestData(rand.New(rand.NewPCG(2, 2)), 40, 1)
	proposals := make(chan Entry, 40)
	for i := range 40 {
		c := d.chunks[i]
		c.Vector = make([]float32, testEngineConfig().Vector.Dim)
		c.Vector[i%len(c.Vector)] = 1
		ops := index.Ops{Documents: d.docs[i : i+1], Upserts: []index.Chunk{c}, Position: index.Position{LSN: index.LSN(110 + i)}}
		proposals <- ChangesEntry(ops, int64(i))
	}
	close(proposals)
	p := &countingPipeliner{Node: n}
	var committed atomic.Uint64
	feed := &Feed{Logger: slog.New(slog.DiscardHandler)}
	if err := feed.propose(ctx, proposals, p, &committed); err != nil {
		t.Fatal(err)
	}
	if committed.Load() != 149 || n.Live.Engine().Position().LSN != 149 || n.Live.Engine().Len() != 40 {
		t.Fatalf("committed %d, engine at %v holding %d chunks", committed.Load(), n.Live.Engine().Position().LSN, n.Live.Engine().Len())
	}
	if p.sent != 40 || p.most < 2 || p.most > maxInFlight || p.open != 0 {
		t.Fatalf("%d sent, at most %d in flight (want 2..%d), %d left open", p.sent, p.most, maxInFlight, p.open)
	}
	// The leader shipped candidates with every transaction after the
	// first (whose lone chunk had none: the graph was empty and nothing
	// else was in flight): version 5.
	for i, v := range p.versions[1:] {
		if !ship && v == 5 {
			t.Fatalf("transaction %d proposed at version 5 with ShipCandidates off", i+1)
		}
		if ship && v != 5 {
			t.Fatalf("transaction %d proposed at version %d, want 5 (candidates shipped)", i+1, v)
		}
	}
}
