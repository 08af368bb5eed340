package replication

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics for operators' alerts (deploy/prometheus): the Raft directory's
// free space, leader changes as this node saw them, and the WAL the
// changefeed's slot holds in PostgreSQL.

// leaderWatch counts leader changes this node observes. Only Run reads
// its channel and touches last.
type leaderWatch struct {
	ch      chan raft.Observation
	changes prometheus.Counter
	last    raft.ServerID
}

func newLeaderWatch() *leaderWatch {
	return &leaderWatch{ch: make(chan raft.Observation, 16),
		changes: prometheus.NewCounter(prometheus.CounterOpts{Name: "sostenuto_raft_leader_changes_total",
			Help: "Times this node saw a new Raft leader (itself included); a rising rate means elections are flapping."})}
}

// observe registers the watch on r; observations are dropped, not
// blocked on, when Run is slow.
func (w *leaderWatch) observe(r *raft.Raft) {
	r.RegisterObserver(raft.NewObserver(w.ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	}))
}

// seen counts o when it names a leader other than the last one seen.
func (w *leaderWatch) seen(o raft.Observation) {
	lo, ok := o.Data.(raft.LeaderObservation)
	if !ok || lo.LeaderID == "" || lo.LeaderID == w.last {
		return
	}
	w.last = lo.LeaderID
	w.changes.Inc()
}

// diskGauges report the free and total bytes of the file system holding
// dir, read with statfs at each scrape.
func diskGauges(dir string) []prometheus.Collector {
	stat := func(free bool) float64 {
		var s syscall.Statfs_t
		if err := syscall.Statfs(dir, &s); err != nil {
			return -1
		}
		if free {
			return float64(s.Bavail) * float64(s.Bsize)
		}
		return float64(s.Blocks) * float64(s.Bsize)
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sostenuto_raft_dir_free_bytes",
			Help: "Bytes available to the node on the file system of its Raft directory (-1 when unreadable)."},
			func() float64 { return stat(true) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sostenuto_raft_dir_size_bytes",
			Help: "Size of the file system of the node's Raft directory (-1 when unreadable)."},
			func() float64 { return stat(false) }),
	}
}

// SlotMetrics is a collector of the changefeed slot's state, read from
// pg_replication_slots at each scrape (bounded by 2 s; a failed read or a
// missing slot leaves the series out of that scrape):
// sostenuto_replication_slot_retained_wal_bytes (WAL PostgreSQL keeps for
// the slot: its current position minus the slot's restart_lsn) and
// sostenuto_replication_slot_active.
type SlotMetrics struct {
	pool             *pgxpool.Pool
	slot             string
	retained, active *prometheus.Desc
}

// NewSlotMetrics connects (one connection at most) to the database of url,
// whose slot is SlotName of its database.
func NewSlotMetrics(ctx context.Context, url string) (*SlotMetrics, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("replication: slot metrics: %w", err)
	}
	cfg.MaxConns = 1
	cfg.ConnConfig.RuntimeParams["application_name"] = "sostenuto-metrics"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replication: slot metrics: %w", err)
	}
	return &SlotMetrics{pool: pool, slot: SlotName(cfg.ConnConfig.Database),
		retained: prometheus.NewDesc("sostenuto_replication_slot_retained_wal_bytes",
			"WAL bytes PostgreSQL retains for the changefeed's replication slot (current WAL position minus the slot's restart_lsn).", []string{"slot"}, nil),
		active: prometheus.NewDesc("sostenuto_replication_slot_active",
			"1 while a reader (the Raft leader's changefeed) holds the slot.", []string{"slot"}, nil)}, nil
}

// Close releases the connection.
func (m *SlotMetrics) Close() { m.pool.Close() }

// Describe implements prometheus.Collector.
func (m *SlotMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.retained
	ch <- m.active
}

// Collect implements prometheus.Collector.
func (m *SlotMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var retained *float64
	var active bool
	err := m.pool.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - restart_lsn)::float8, active
		FROM pg_replication_slots WHERE slot_name = $1`, m.slot).Scan(&retained, &active)
	if err != nil {
		return
	}
	if retained != nil {
		ch <- prometheus.MustNewConstMetric(m.retained, prometheus.GaugeValue, *retained, m.slot)
	}
	a := 0.0
	if active {
		a = 1
	}
	ch <- prometheus.MustNewConstMetric(m.active, prometheus.GaugeValue, a, m.slot)
}
