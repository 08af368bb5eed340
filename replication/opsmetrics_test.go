package replication

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// gathered returns the value of the series name{slot?} in reg, and
// whether it was there.
func gathered(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.Metric) == 0 {
			continue
		}
		m := mf.Metric[0]
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		default:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// The slot's retained WAL is read from pg_replication_slots: absent
// without a slot, then growing with the WAL written while nobody reads.
func TestSlotMetrics(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	m, err := NewSlotMetrics(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	if _, ok := gathered(t, reg, "sostenuto_replication_slot_retained_wal_bytes"); ok {
		t.Fatal("a series without a slot")
	}
	if _, err := db.Pool.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, SlotName(db.Name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Pool.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, SlotName(db.Name)) }) //nolint:errcheck // teardown
	before, ok := gathered(t, reg, "sostenuto_replication_slot_retained_wal_bytes")
	if !ok {
		t.Fatal("no retained-WAL series with a slot")
	}
	if active, ok := gathered(t, reg, "sostenuto_replication_slot_active"); !ok || active != 0 {
		t.Errorf("active = %v (%v), want 0: nobody reads the slot", active, ok)
	}
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE wal_filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g`); err != nil {
		t.Fatal(err)
	}
	after, _ := gathered(t, reg, "sostenuto_replication_slot_retained_wal_bytes")
	if after < before+1<<20 {
		t.Errorf("retained WAL went from %.0f to %.0f bytes after writing ~4 MB", before, after)
	}
}

// A node exports its Raft directory's free space and counts the leaders
// it sees: itself when it founds the cluster, then the node it hands
// leadership to.
func TestRaftDirAndLeaderMetrics(t *testing.T) {
	ca := newTestCA(t)
	start := func(id string, bootstrap bool) (*Node, *prometheus.Registry) {
		reg := prometheus.NewRegistry()
		n, err := StartNode(NodeConfig{ID: id, RaftBind: "127.0.0.1:0", Dir: t.TempDir(), Bootstrap: bootstrap, Fast: true,
			TLS: ca.node(id, "127.0.0.1"), Index: testEngineConfig(), ApplyTimeout: 3 * time.Second, Registry: reg,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), LogOutput: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return n, reg
	}
	n1, reg1 := start("n1", true)
	waitFor(t, "n1 leads", n1.IsLeader)
	if free, ok := gathered(t, reg1, "sostenuto_raft_dir_free_bytes"); !ok || free <= 0 {
		t.Errorf("raft dir free bytes = %v (%v)", free, ok)
	}
	if ready, ok := gathered(t, reg1, "sostenuto_index_ready"); !ok || ready != 0 {
		t.Errorf("index ready = %v (%v), want 0: no base was loaded", ready, ok)
	}
	if size, _ := gathered(t, reg1, "sostenuto_raft_dir_size_bytes"); size <= 0 {
		t.Errorf("raft dir size = %v", size)
	}
	changes := func(reg *prometheus.Registry) float64 {
		v, _ := gathered(t, reg, "sostenuto_raft_leader_changes_total")
		return v
	}
	waitFor(t, "n1 counted itself", func() bool { return changes(reg1) == 1 })
	n2, reg2 := start("n2", false)
	if err := n1.Join(context.Background(), Member{ID: "n2", RaftAddr: n2.cfg.RaftAdvertise}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2 saw n1 lead", func() bool { return changes(reg2) == 1 })
	if err := n1.raft.LeadershipTransfer().Error(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2 leads", n2.IsLeader)
	waitFor(t, "both counted the change", func() bool { return changes(reg1) == 2 && changes(reg2) == 2 })
}
