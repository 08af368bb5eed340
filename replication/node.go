package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication/logentry"
)

// NodeConfig configures one node of the cluster.
type NodeConfig struct {
	ID            string // unique and stable: the Raft server id
	RaftBind      string // host:port the Raft transport listens on
	RaftAdvertise string // host:port peers dial (RaftBind if empty)
	HTTPAddr      string // base URL of this node's API, for forwarding
	Dir           string // Raft log, stable store and snapshots
	// TLS secures the Raft transport (mutual TLS, cluster CA). Without it
	// the node starts only with Insecure, on loopback addresses.
	TLS      *TLS
	Insecure bool
	// Bootstrap makes a node without Raft state found a new cluster of
	// itself; without it, the node waits to be added by a leader.
	Bootstrap bool
	Index     index.Config
	// Feed is the changefeed; the node runs it while it leads.
	Feed *Feed
	// Stale is how long without an applied entry makes the node not ready
	// (the leader proposes a keepalive every second).
	Stale time.Duration
	// ApplyTimeout bounds one proposal (10 s if zero).
	ApplyTimeout time.Duration
	// SnapshotThreshold is how many log entries trigger a Raft snapshot
	// (8192 if zero); SnapshotInterval how often that is checked.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// ShipCandidates makes the node, while it leads, ship each new
	// chunk's candidate neighbours in its changes entries (version 5;
	// DESIGN.md, "Candidates"). Off, it writes version 4 as before: a node
	// of an older release refuses version 5, so it is turned on only once
	// every node reads it.
	ShipCandidates bool
	// Fast shortens Raft's timeouts (tests on loopback).
	Fast      bool
	Logger    *slog.Logger
	LogOutput io.Writer // where Raft's own log goes (warnings and up)
	Registry  *prometheus.Registry
	// Tracer records a span per applied entry (raft.apply); nil: off.
	Tracer trace.TracerProvider
}

// Node is one replica: a Raft member whose FSM feeds the live engine, and
// the changefeed reader while it leads.
type Node struct {
	cfg       NodeConfig
	Live      *index.Live
	FSM       *FSM
	raft      *raft.Raft
	store     *raftboltdb.BoltStore
	transport *raft.NetworkTransport
	stream    *tlsStream // nil on plain TCP
	notify    chan bool
	lastApply atomic.Int64 // unix nanoseconds of the last applied entry
	m         nodeMetrics
	leaders   *leaderWatch
	tracer    trace.Tracer // nil: tracing is off

	mu         sync.Mutex
	feedCancel context.CancelFunc
	feedDone   chan struct{}
}

type nodeMetrics struct {
	apply         *prometheus.HistogramVec
	commitToApply prometheus.Histogram
	snapBytes     prometheus.Gauge
	snapSeconds   prometheus.Gauge
	snapshots     prometheus.Counter
	restore       prometheus.Gauge
	logStore      prometheus.Histogram
}

// ErrNotLeader marks a request only the leader can serve.
var ErrNotLeader = errors.New("replication: this node is not the leader")

// StartNode opens the node's Raft state (or founds a cluster) and starts
// Raft. Run drives the rest.
func StartNode(cfg NodeConfig) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: cfg.LogOutput, JSONFormat: true})
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("replication: raft store in %s: %w", cfg.Dir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("replication: snapshot store: %w", err)
	}
	transport, stream, err := newTransport(cfg, hl)
	if err != nil {
		store.Close()
		return nil, err
	}
	cfg.RaftAdvertise = string(transport.LocalAddr())
	empty, err := index.New(cfg.Index)
	if err != nil {
		transport.Close()
		store.Close()
		return nil, err
	}
	n := &Node{cfg: cfg, Live: index.NewLive(empty), store: store, transport: transport, stream: stream, notify: make(chan bool, 64), leaders: newLeaderWatch()}
	n.FSM = NewFSM(n.Live, cfg.Index)
	if cfg.Tracer != nil {
		n.tracer = cfg.Tracer.Tracer("github.com/sostenuto/sostenuto/replication")
	}
	n.registerMetrics()
	n.FSM.OnApply = func(kind byte, ops int, err error) { n.lastApply.Store(time.Now().UnixNano()) }
	if err := n.startRaft(hl, snaps); err != nil {
		n.closeStores()
		return nil, err
	}
	return n, nil
}

// withDefaults checks the configuration, fills in its defaults and makes
// the data directory.
func (cfg NodeConfig) withDefaults() (NodeConfig, error) {
	if cfg.ID == "" || cfg.RaftBind == "" || cfg.Dir == "" {
		return cfg, errors.New("replication: a node needs an id, a Raft address and a data directory")
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	if cfg.Stale <= 0 {
		cfg.Stale = 5 * time.Second
	}
	if cfg.LogOutput == nil {
		cfg.LogOutput = os.Stderr
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return cfg, fmt.Errorf("replication: data directory: %w", err)
	}
	return cfg, nil
}

// startRaft starts Raft over the node's stores and, when the node has no
// Raft state and is to found a cluster, bootstraps one with itself.
func (n *Node) startRaft(hl hclog.Logger, snaps raft.SnapshotStore) error {
	rc := raftConfig(n.cfg, hl, n.notify)
	has, err := raft.HasExistingState(n.store, n.store, snaps)
	if err != nil {
		return err
	}
	r, err := raft.NewRaft(rc, &timedFSM{n}, &timedLogStore{LogStore: n.store, n: n}, n.store, snaps, n.transport)
	if err != nil {
		return fmt.Errorf("replication: raft: %w", err)
	}
	n.raft = r
	n.leaders.observe(r)
	if has || !n.cfg.Bootstrap {
		return nil
	}
	f := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: n.transport.LocalAddr()}}})
	if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		r.Shutdown()
		return fmt.Errorf("replication: bootstrap: %w", err)
	}
	n.cfg.Logger.Info("founded a new cluster", "component", "replication", "node", n.cfg.ID, "raft", n.cfg.RaftAdvertise)
	return nil
}

// raftConfig is Raft's configuration for the node.
func raftConfig(cfg NodeConfig, hl hclog.Logger, notify chan bool) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hl
	rc.NotifyCh = notify
	// Followers learn the commit index from the next AppendEntries; with
	// Raft's default 50 ms they applied ~70 ms after the leader (measured).
	rc.CommitTimeout = 10 * time.Millisecond
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
		rc.TrailingLogs = min(rc.TrailingLogs, cfg.SnapshotThreshold)
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.Fast {
		rc.HeartbeatTimeout = 300 * time.Millisecond
		rc.ElectionTimeout = 300 * time.Millisecond
		rc.LeaderLeaseTimeout = 200 * time.Millisecond
	}
	return rc
}

func (n *Node) closeStores() {
	n.transport.Close()
	n.store.Close()
}

// Run follows leadership until ctx ends: while this node leads, it runs the
// changefeed; all along, the index's Compactor. Then it leaves Raft cleanly.
func (n *Node) Run(ctx context.Context) error {
	stopCompactor := n.startCompactor(ctx)
	defer stopCompactor()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			n.stopFeed()
			err := n.raft.Shutdown().Error()
			n.closeStores()
			return err
		case <-n.notify:
		case o := <-n.leaders.ch:
			n.leaders.seen(o)
		case <-check.C:
		}
		if n.raft.State() == raft.Leader {
			n.startFeed(ctx)
		} else {
			n.stopFeed()
		}
	}
}

func (n *Node) startFeed(ctx context.Context) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.feedCancel != nil {
		select {
		case <-n.feedDone:
		default:
			return // running
		}
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	n.feedCancel, n.feedDone = cancel, done
	go func() {
		defer close(done)
		// Everything committed before this term is applied here first, so
		// the feed resumes from the cluster's true position.
		if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
			n.cfg.Logger.Warn("leader barrier failed", "component", "replication", "error", err)
			return
		}
		me := Member{ID: n.cfg.ID, RaftAddr: n.cfg.RaftAdvertise, HTTPAddr: n.cfg.HTTPAddr}
		if err := n.Propose(fctx, MemberEntry(me)); err != nil {
			n.cfg.Logger.Warn("recording this node failed", "component", "replication", "error", err)
		}
		n.cfg.Logger.Info("leading: changefeed starts", "component", "replication", "node", n.cfg.ID, "term", n.raft.CurrentTerm())
		if n.cfg.Feed != nil {
			n.cfg.Feed.Run(fctx, n) //nolint:errcheck // Run ends only with its context
		}
	}()
}

func (n *Node) stopFeed() {
	n.mu.Lock()
	cancel, done := n.feedCancel, n.feedDone
	n.feedCancel, n.feedDone = nil, nil
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
		n.cfg.Logger.Info("not leading: changefeed stopped", "component", "replication", "node", n.cfg.ID)
	}
}

// State implements Proposer.
func (n *Node) State() State { return n.FSM.State() }

// Propose implements Proposer: it returns once the entry is committed and
// applied here.
func (n *Node) Propose(ctx context.Context, e Entry) error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	data, err := e.Encode()
	if err != nil {
		return err
	}
	f := n.raft.Apply(data, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		return fmt.Errorf("replication: propose: %w", err)
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return err
	}
	return ctx.Err()
}

// Join adds a voter (leader only) and records its HTTP address. On a TLS
// transport the node must first answer at its Raft address with a node
// certificate of this cluster naming that address.
func (n *Node) Join(ctx context.Context, m Member) error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if n.stream != nil {
		if err := n.stream.verifyPeer(m.RaftAddr); err != nil {
			return fmt.Errorf("replication: %s at %s shows no node certificate of this cluster: %w", m.ID, m.RaftAddr, err)
		}
	}
	if err := n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("replication: add %s: %w", m.ID, err)
	}
	return n.Propose(ctx, MemberEntry(m))
}

// Remove takes a node out of the cluster (leader only).
func (n *Node) Remove(id string) error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("replication: remove %s: %w", id, err)
	}
	return nil
}

// Ready reports whether the node serves a complete index that is being kept
// current (an entry applied within the stale bound).
func (n *Node) Ready() bool {
	return n.FSM.State().Based && time.Since(time.Unix(0, n.lastApply.Load())) < n.cfg.Stale
}

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// IsLeader reports whether this node leads.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// ClusterNode is one server of the Raft configuration.
type ClusterNode struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_address"`
	HTTPAddr string `json:"http_address,omitempty"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// Status is what /api/cluster/status reports of Raft.
type Status struct {
	Role       string
	Leader     string
	LeaderHTTP string
	Term       uint64
	Applied    index.Position
	CommitTime time.Time
	Nodes      []ClusterNode
}

// Status reports the node's view of the cluster.
func (n *Node) Status() Status {
	st := n.FSM.State()
	_, leaderID := n.raft.LeaderWithID()
	s := Status{Role: roleName(n.raft.State()), Leader: string(leaderID), Term: n.raft.CurrentTerm(), Applied: st.Position}
	if st.CommitTime > 0 {
		s.CommitTime = time.UnixMilli(st.CommitTime)
	}
	http := map[string]string{}
	for _, m := range st.Members {
		http[m.ID] = m.HTTPAddr
	}
	s.LeaderHTTP = http[s.Leader]
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			s.Nodes = append(s.Nodes, ClusterNode{ID: string(srv.ID), RaftAddr: string(srv.Address), HTTPAddr: http[string(srv.ID)],
				Suffrage: map[raft.ServerSuffrage]string{raft.Voter: "voter", raft.Nonvoter: "nonvoter", raft.Staging: "staging"}[srv.Suffrage],
				Leader:   srv.ID == leaderID})
		}
	}
	return s
}

func roleName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	default:
		return "shutdown"
	}
}

// Snapshot asks Raft for a snapshot now (tests, operators).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

func (n *Node) registerMetrics() {
	n.m = nodeMetrics{
		apply: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sostenuto_raft_apply_seconds",
			Help:    "Time to apply one Raft entry to the index, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10)}, []string{"kind"}),
		commitToApply: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sostenuto_index_commit_to_apply_seconds",
			Help:    "From a PostgreSQL commit to its changes being searchable on this node.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		snapBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sostenuto_raft_snapshot_bytes",
			Help: "Size of the last Raft snapshot this node wrote."}),
		snapSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sostenuto_raft_snapshot_seconds",
			Help: "Duration of the last Raft snapshot this node wrote."}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{Name: "sostenuto_raft_snapshots_total",
			Help: "Raft snapshots this node wrote."}),
		restore: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sostenuto_raft_restore_seconds",
			Help: "Duration of the last snapshot this node installed."}),
		logStore: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sostenuto_raft_log_store_seconds",
			Help:    "Time to store a batch of entries in the Raft log (a write and an fsync).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
	if n.cfg.Registry == nil {
		return
	}
	n.cfg.Registry.MustRegister(diskGauges(n.cfg.Dir)...)
	n.cfg.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sostenuto_index_ready",
		Help: "1 while this node's index is complete and current (applied an entry within the lag bound): the index half of /api/ready."},
		func() float64 {
			if n.Ready() {
				return 1
			}
			return 0
		}))
	n.cfg.Registry.MustRegister(n.m.apply, n.m.commitToApply, n.m.logStore, n.m.snapBytes, n.m.snapSeconds, n.m.snapshots, n.m.restore, n.leaders.changes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sostenuto_index_applied_lsn",
			Help: "The changefeed position this node's index has applied."},
			func() float64 { return float64(n.Live.Engine().Position().LSN) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sostenuto_raft_term", Help: "Current Raft term."},
			func() float64 { return float64(n.raft.CurrentTerm()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sostenuto_raft_leader", Help: "1 while this node leads."},
			func() float64 {
				if n.IsLeader() {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sostenuto_raft_state",
			Help: "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown."},
			func() float64 { return float64(n.raft.State()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sostenuto_index_lag_seconds",
			Help: "Seconds since the commit (or keepalive) at this node's applied position."},
			func() float64 {
				st := n.FSM.State()
				if st.CommitTime == 0 {
					return 0
				}
				return max(0, time.Since(time.UnixMilli(st.CommitTime)).Seconds())
			}),
	)
}

// timedFSM measures the FSM for metrics, keeping clocks out of it.
type timedFSM struct{ n *Node }

func (t *timedFSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	e, err := DecodeEntry(l.Data)
	if err != nil {
		return err
	}
	span := t.n.applySpan(l, e)
	start := time.Now()
	err = t.n.FSM.ApplyAt(l.Index, e)
	endApply(span, err)
	t.n.m.apply.WithLabelValues(kindName(e.Kind)).Observe(time.Since(start).Seconds())
	if ms := dataCommitTime(e); ms > 0 {
		t.n.m.commitToApply.Observe(max(0, time.Since(time.UnixMilli(ms)).Seconds()))
	}
	return err
}

func (t *timedFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := t.n.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	if fs, ok := s.(*fsmSnapshot); ok {
		fs.stream = onOwnThread
	}
	return &timedSnapshot{FSMSnapshot: s, n: t.n}, nil
}

func (t *timedFSM) Restore(rc io.ReadCloser) error {
	start := time.Now()
	err := t.n.FSM.Restore(rc)
	t.n.m.restore.Set(time.Since(start).Seconds())
	if err == nil {
		t.n.lastApply.Store(time.Now().UnixNano())
		t.n.cfg.Logger.Info("installed an index snapshot", "component", "replication", "chunks", t.n.Live.Engine().Len(),
			"lsn", t.n.Live.Engine().Position().LSN, "elapsed", time.Since(start).Round(time.Millisecond))
	}
	return err
}

type timedSnapshot struct {
	raft.FSMSnapshot
	n *Node
}

// Persist writes the snapshot (streamed on a thread of its own:
// timedFSM.Snapshot, resting three times the CPU it uses, and written
// back to disk as it streams: snapwrite.go): the applies that go on
// meanwhile keep most of the CPU, and the Raft log its short fsyncs.
func (s *timedSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	paced := newPacedSink(sink, s.n.cfg.Dir)
	paced.cpu = &cpuPacer{sleep: time.Sleep}
	cs := &countingSink{SnapshotSink: paced}
	err := s.FSMSnapshot.Persist(cs)
	if err == nil {
		s.n.m.snapBytes.Set(float64(cs.n))
		s.n.m.snapSeconds.Set(time.Since(start).Seconds())
		s.n.m.snapshots.Inc()
		s.n.cfg.Logger.Info("snapshot written", "component", "replication", "node", s.n.cfg.ID, "id", sink.ID(),
			"bytes", cs.n, "started", start.UnixMilli(), "ms", time.Since(start).Milliseconds())
	}
	return err
}

type countingSink struct {
	raft.SnapshotSink
	n int64
}

func (c *countingSink) Write(p []byte) (int, error) {
	n, err := c.SnapshotSink.Write(p)
	c.n += int64(n)
	return n, err
}

// kindName labels the apply metric: keepalives count with the changes
// (ops), as before they had a kind of their own.
func kindName(k logentry.Kind) string {
	switch k {
	case logentry.KindChanges, logentry.KindKeepalive:
		return "ops"
	case logentry.KindBaseBegin, logentry.KindBasePart, logentry.KindBaseEnd:
		return "base"
	case logentry.KindMember:
		return "member"
	case logentry.KindRepair:
		return "repair"
	}
	return "unknown"
}
