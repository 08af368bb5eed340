package replication

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/index/vector"
)

// The FSM, its snapshots and its restores under real Raft, in one process:
// in-memory transports and log stores, file snapshot stores in t.TempDir.

const raftTestDim = 8

func raftTestIndexConfig() index.Config {
	// ExactBelow covers every chunk: a scoped vector search is an exact
	// scan, the same on every node whether its graph is compacted or not.
	return index.Config{Vector: vector.Config{Dim: raftTestDim, M: 8, EfConstruction: 32, EfSearch: 32}, ExactBelow: 1 << 20}
}

// restoreCounter counts the snapshots a node installs.
type restoreCounter struct {
	*FSM
	n *atomic.Int32
}

func (r restoreCounter) Restore(rc io.ReadCloser) error {
	r.n.Add(1)
	return r.FSM.Restore(rc)
}

// countingHandler counts the log records with one message.
type countingHandler struct {
	n   *atomic.Int32
	msg string
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h countingHandler) WithGroup(string) slog.Handler            { return h }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}

type raftTestNode struct {
	id          raft.ServerID
	addr        raft.ServerAddress
	trans       *raft.InmemTransport
	logs        *raft.InmemStore
	snaps       *raft.FileSnapshotStore
	fsm         *FSM
	raft        *raft.Raft
	restores    atomic.Int32
	compactions atomic.Int32 // by its Compactor
	stop        func()       // the node's Compactor
}

type raftTestCluster struct {
	t     *testing.T
	nodes []*raftTestNode
}

func newRaftTestNode(t *testing.T, id string) *raftTestNode {
	t.Helper()
	snaps, err := raft.NewFileSnapshotStore(t.TempDir(), 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	n := &raftTestNode{id: raft.ServerID(id), logs: raft.NewInmemStore(), snaps: snaps}
	n.addr, n.trans = raft.NewInmemTransport(raft.ServerAddress(id))
	return n
}

// start gives n a fresh FSM (and Compactor) over its stores and starts Raft.
func (c *raftTestCluster) start(n *raftTestNode) {
	c.t.Helper()
	empty, err := index.New(raftTestIndexConfig())
	if err != nil {
		c.t.Fatal(err)
	}
	live := index.NewLive(empty)
	n.fsm = NewFSM(live, raftTestIndexConfig())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	logger := slog.New(countingHandler{n: &n.compactions, msg: "graph compacted"})
	go func() { defer close(done); index.NewCompactor(live, 50*time.Millisecond, logger).Run(ctx) }()
	n.stop = func() { cancel(); <-done }
	rc := raft.DefaultConfig()
	rc.LocalID = n.id
	rc.Logger = hclog.New(&hclog.LoggerOptions{Output: io.Discard})
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
	rc.CommitTimeout = 5 * time.Millisecond
	rc.SnapshotThreshold, rc.SnapshotInterval, rc.TrailingLogs = 1<<30, time.Hour, 4 // snapshots only when asked
	r, err := raft.NewRaft(rc, restoreCounter{n.fsm, &n.restores}, n.logs, n.logs, n.snaps, n.trans)
	if err != nil {
		c.t.Fatal(err)
	}
	n.raft = r
}

// connect wires every pair of transports.
func (c *raftTestCluster) connect() {
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
}

// shutdown stops a node's Raft and Compactor and cuts it off.
func (c *raftTestCluster) shutdown(n *raftTestNode) {
	c.t.Helper()
	if err := n.raft.Shutdown().Error(); err != nil {
		c.t.Fatal(err)
	}
	n.stop()
	for _, o := range c.nodes {
		o.trans.Disconnect(n.addr)
	}
	n.trans.DisconnectAll()
	c.nodes = slices.DeleteFunc(c.nodes, func(o *raftTestNode) bool { return o == n })
}

func newRaftTestCluster(t *testing.T, size int) *raftTestCluster {
	c := &raftTestCluster{t: t}
	var servers []raft.Server
	for i := range size {
		n := newRaftTestNode(t, fmt.Sprintf("n%d", i+1))
		c.nodes = append(c.nodes, n)
		servers = append(servers, raft.Server{ID: n.id, Address: n.addr})
	}
	c.connect()
	for _, n := range c.nodes {
		c.start(n)
		if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, n := range slices.Clone(c.nodes) {
			n.raft.Shutdown().Error() //nolint:errcheck // cleanup
			n.stop()
		}
	})
	return c
}

// leader waits for one.
func (c *raftTestCluster) leader() *raftTestNode {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.nodes {
			if n.raft.State() == raft.Leader {
				return n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no leader")
	return nil
}

// apply commits entries through the leader, in order.
func (c *raftTestCluster) apply(entries ...Entry) {
	c.t.Helper()
	for _, e := range entries {
		b, err := e.Encode()
		if err != nil {
			c.t.Fatal(err)
		}
		for attempt := 0; ; attempt++ {
			f := c.leader().raft.Apply(b, 10*time.Second)
			err := f.Error()
			if (errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost)) && attempt < 5 {
				continue
			}
			if err != nil {
				c.t.Fatalf("apply %s: %v", e.Kind, err)
			}
			if rerr, _ := f.Response().(error); rerr != nil {
				c.t.Fatalf("apply %s: the FSM answered %v", e.Kind, rerr)
			}
			break
		}
	}
}

// digest describes a node's index and FSM: positions, chunk versions,
// members, and the answers to a few searches.
func digest(f *FSM, queries []index.Query) string {
	st := f.State()
	e := f.live.Engine()
	var b strings.Builder
	fmt.Fprintf(&b, "based %v lsn %d commit %d members %v chunks %d\n", st.Based, st.Position.LSN, st.CommitTime, st.Members, e.Len())
	versions := e.ChunkVersions()
	ids := make([]index.ID, 0, len(versions))
	for id := range versions {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b index.ID) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	for _, id := range ids {
		fmt.Fprintf(h, "%x:%d ", id, versions[id])
	}
	fmt.Fprintf(&b, "versions %x", h.Sum(nil)[:8])
	for _, q := range queries {
		hits, err := e.Search(q)
		fmt.Fprintf(&b, "\n%s %v:", q.Mode, err)
		for _, h := range hits {
			fmt.Fprintf(&b, " %x/%d/%d", h.Chunk.ID[:4], h.VectorRank, h.BM25Rank)
		}
	}
	return b.String()
}

// waitSame waits until every node applied lsn and all hold the same index.
func (c *raftTestCluster) waitSame(lsn index.LSN, queries []index.Query) string {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ds []string
		for _, n := range c.nodes {
			if n.fsm.State().Position.LSN == lsn {
				ds = append(ds, digest(n.fsm, queries))
			}
		}
		if len(ds) == len(c.nodes) && !slices.ContainsFunc(ds, func(d string) bool { return d != ds[0] }) {
			return ds[0]
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nodes differ or lag (want lsn %d):\n%s", lsn, strings.Join(ds, "\n---\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rid(prefix byte, i int) index.ID {
	return index.ID{prefix, byte(i >> 16), byte(i >> 8), byte(i), 15: 0x42}
}

// raftTestData is owners, documents and chunks with random vectors.
type raftTestData struct {
	owners []index.ID
	docs   []index.Document
	chunks []index.Chunk
	r      *rand.Rand
}

func newRaftTestData(r *rand.Rand, nDocs, perDoc int) *raftTestData {
	d := &raftTestData{r: r, owners: []index.ID{rid('u', 0), rid('u', 1), rid('u', 2)}}
	words := strings.Fields("legato staccato pedal scale arpeggio chord tempo rubato phrase fingering")
	for i := range nDocs {
		doc := index.Document{ID: rid('d', i), OwnerID: d.owners[i%3], IsPublic: i%4 == 0, Title: fmt.Sprintf("Doc %d", i)}
		d.docs = append(d.docs, doc)
		for j := range perDoc {
			d.chunks = append(d.chunks, index.Chunk{ID: rid('c', i*1000+j), DocumentID: doc.ID, OwnerID: doc.OwnerID,
				Text: words[r.IntN(len(words))] + " " + words[r.IntN(len(words))], PageStart: j, PageEnd: j, Version: 1, Vector: d.vector()})
		}
	}
	return d
}

func (d *raftTestData) vector() []float32 {
	v := make([]float32, raftTestDim)
	for i := range v {
		v[i] = float32(d.r.NormFloat64())
	}
	return v
}

func (d *raftTestData) queries() []index.Query {
	return []index.Query{
		{K: 10, Mode: index.ModeBM25, Text: "pedal rubato", Scope: index.Scope{User: d.owners[0]}},
		{K: 10, Mode: index.ModeVector, Vector: d.vector(), Scope: index.Scope{User: d.owners[1]}},
		{K: 10, Mode: index.ModeHybrid, Text: "legato", Vector: d.vector(), Scope: index.Scope{User: d.owners[2], Teachers: d.owners[:1]}},
	}
}

// rewrite is chunk i at a new version, text and vector.
func (d *raftTestData) rewrite(i int, version int64) index.Chunk {
	c := d.chunks[i]
	c.Version, c.Text, c.Vector = version, fmt.Sprintf("rewritten pedal %d", version), d.vector()
	return c
}

// Three nodes apply the log alike and like one process would; a snapshot
// brings a fourth node up; a restarted follower restores its own; the
// leader dies and a new one goes on. Every node runs a Compactor
// meanwhile (the deletes make one due), so snapshots meet compactions.
func TestRaftThreeNodesApplySnapshotRestoreFailover(t *testing.T) {
	d := newRaftTestData(rand.New(rand.NewPCG(11, 11)), 30, 50) // 1500 chunks
	queries := d.queries()
	c := newRaftTestCluster(t, 3)
	ref := newTestFSMWith(t, raftTestIndexConfig()) // one process, the same entries
	step := func(lsn index.LSN, entries ...Entry) {
		t.Helper()
		c.apply(entries...)
		for _, e := range entries {
			if err := ref.ApplyEntry(e); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := c.waitSame(lsn, queries), digest(ref, queries); got != want {
			t.Fatalf("the cluster holds\n%s\none process holds\n%s", got, want)
		}
	}
	var dels []index.ID
	for i := range 1000 {
		dels = append(dels, d.chunks[i].ID)
	}
	public := d.docs[5]
	public.IsPublic = true
	step(120, BaseBeginEntry(), BasePartEntry(index.Ops{Documents: d.docs}), BasePartEntry(index.Ops{Upserts: d.chunks[:750]}),
		BasePartEntry(index.Ops{Upserts: d.chunks[750:]}), BaseEndEntry(100, 1000),
		MemberEntry(Member{ID: "n1", RaftAddr: "n1", HTTPAddr: "http://n1"}),
		ChangesEntry(index.Ops{Position: index.Position{LSN: 110}, Documents: []index.Document{public}, Deletes: dels,
			Upserts: []index.Chunk{d.rewrite(1100, 2)}}, 1100),
		KeepaliveEntry(120, 1200),
		RepairEntry(index.Ops{Upserts: []index.Chunk{d.rewrite(1200, 9)}, Deletes: []index.ID{d.chunks[1300].ID}}))

	for _, n := range c.nodes {
		waitFor(t, "node "+string(n.id)+" to compact its graph", func() bool { return n.compactions.Load() > 0 })
	}

	// A snapshot on the leader, then more log: a new node can only catch
	// up by installing the snapshot (the log before it is gone).
	if err := c.leader().raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	step(130, ChangesEntry(index.Ops{Position: index.Position{LSN: 130}, DeleteDocs: []index.ID{d.docs[29].ID}}, 1300))
	n4 := newRaftTestNode(t, "n4")
	c.nodes = append(c.nodes, n4)
	c.connect()
	c.start(n4)
	if err := c.leader().raft.AddVoter(n4.id, n4.addr, 0, 10*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	step(135, KeepaliveEntry(135, 1350)) // an entry after the configuration change, so snapshots can follow it
	if n4.restores.Load() == 0 {
		t.Fatal("the fourth node caught up without installing a snapshot")
	}

	// A follower snapshots, restarts on its stores, restores that
	// snapshot and replays the log after it.
	f := c.follower()
	if err := f.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	step(140, ChangesEntry(index.Ops{Position: index.Position{LSN: 140}, Upserts: []index.Chunk{d.rewrite(1400, 3)}}, 1400))
	c.restart(f)
	step(140)

	// The leader dies; the other three elect one that goes on.
	old := c.leader()
	c.shutdown(old)
	step(150, ChangesEntry(index.Ops{Position: index.Position{LSN: 150}, Upserts: []index.Chunk{d.rewrite(1401, 4)}}, 1500))
	if c.leader() == old {
		t.Fatal("the dead leader still leads")
	}
	if n := ref.live.Engine().Len(); n != 1500-1000-1-50 {
		t.Fatalf("%d chunks at the end", n)
	}
}

// follower returns a node that does not lead.
func (c *raftTestCluster) follower() *raftTestNode {
	c.t.Helper()
	lead := c.leader()
	for _, n := range c.nodes {
		if n != lead {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// restart shuts n down and starts it again on its log and snapshot stores,
// with an empty FSM.
func (c *raftTestCluster) restart(n *raftTestNode) {
	c.t.Helper()
	c.shutdown(n)
	again := &raftTestNode{id: n.id, logs: n.logs, snaps: n.snaps}
	again.addr, again.trans = raft.NewInmemTransport(n.addr)
	c.nodes = append(c.nodes, again)
	c.connect()
	c.start(again)
	if again.restores.Load() == 0 {
		c.t.Fatal("the restarted node did not restore its snapshot")
	}
}

func newTestFSMWith(t testing.TB, cfg index.Config) *FSM {
	t.Helper()
	empty, err := index.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return NewFSM(index.NewLive(empty), cfg)
}
