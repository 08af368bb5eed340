package replication

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sostenuto/sostenuto/index"
)

// AntiEntropy periodically compares this node's (chunk id, version) set
// with PostgreSQL's and repairs what differs through the Raft log: the
// leader proposes the repair itself; a follower asks the leader (it reads
// the truth from PostgreSQL again and proposes it). Differences that are
// only changes in flight are ruled out by checking twice.
type AntiEntropy struct {
	URL      string // the owning role's database URL
	Node     *Node
	Every    time.Duration
	Logger   *slog.Logger
	Registry *prometheus.Registry
	// Secret authenticates a follower's repair request to the leader.
	Secret string

	divergent prometheus.Gauge
	repaired  prometheus.Counter
	checks    *prometheus.CounterVec
}

// Divergence is what one check found.
type Divergence struct {
	Missing []index.ID // in PostgreSQL, not in the index
	Stale   []index.ID // in both, at different versions
	Extra   []index.ID // in the index, not in PostgreSQL
	// Projects differ in owner, title or grantees, or exist on one side
	// only (the principals of annotation chunks).
	Projects []index.ID
}

// Len is how many chunks and projects differ.
func (d Divergence) Len() int { return len(d.Missing) + len(d.Stale) + len(d.Extra) + len(d.Projects) }

// IDs lists every differing chunk and project (a repair reads each id as
// either).
func (d Divergence) IDs() []index.ID {
	return append(append(append(append([]index.ID{}, d.Missing...), d.Stale...), d.Extra...), d.Projects...)
}

// Run checks every Every until ctx ends.
func (a *AntiEntropy) Run(ctx context.Context) error {
	a.divergent = prometheus.NewGauge(prometheus.GaugeOpts{Name: "sostenuto_antientropy_divergent_chunks",
		Help: "Chunks whose presence or version differed between this node's index and PostgreSQL at the last check."})
	a.repaired = prometheus.NewCounter(prometheus.CounterOpts{Name: "sostenuto_antientropy_repaired_chunks_total",
		Help: "Chunks repaired through the Raft log after an anti-entropy check."})
	a.checks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sostenuto_antientropy_checks_total",
		Help: "Anti-entropy checks, by outcome (clean, repaired, skipped, failed)."}, []string{"outcome"})
	if a.Registry != nil {
		a.Registry.MustRegister(a.divergent, a.repaired, a.checks)
	}
	t := time.NewTicker(a.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		outcome := "clean"
		d, err := a.Check(ctx)
		switch {
		case err != nil:
			outcome = "failed"
			a.Logger.Warn("anti-entropy check failed", "component", "replication", "error", err)
		case d == nil:
			outcome = "skipped"
		default:
			a.divergent.Set(float64(d.Len()))
			if d.Len() > 0 {
				outcome = "repaired"
				a.Logger.Warn("index differs from PostgreSQL; repairing through the log", "component", "replication",
					"missing", len(d.Missing), "stale", len(d.Stale), "extra", len(d.Extra))
				if err := a.Node.Repair(ctx, a.URL, d.IDs(), a.Secret); err != nil {
					outcome = "failed"
					a.Logger.Warn("anti-entropy repair failed", "component", "replication", "error", err)
				} else {
					a.repaired.Add(float64(d.Len()))
				}
			}
		}
		a.checks.WithLabelValues(outcome).Inc()
	}
}

// Check compares the index with PostgreSQL; nil (and no error) when the
// index is not ready or did not catch up in time to compare.
func (a *AntiEntropy) Check(ctx context.Context) (*Divergence, error) {
	if !a.Node.Ready() {
		return nil, nil
	}
	first, err := a.compare(ctx, nil)
	if err != nil || first == nil || first.Len() == 0 {
		return first, err
	}
	// Look again at the suspects only: what was merely in flight is gone.
	return a.compare(ctx, first.IDs())
}

// compare reads PostgreSQL's versions (of ids, or of every chunk), waits for
// the index to reach that read's position, and diffs; nil (and no error)
// when the index did not get there in time.
func (a *AntiEntropy) compare(ctx context.Context, ids []index.ID) (*Divergence, error) {
	pg, projects, lsn, err := a.readVersions(ctx, ids)
	if err != nil {
		return nil, err
	}
	if caught, err := a.waitFor(ctx, lsn); !caught || err != nil {
		return nil, err
	}
	e := a.Node.Live.Engine()
	d := diff(pg, e.ChunkVersions(), ids)
	d.Projects = diffProjects(projects, e.Projects(), ids)
	return d, nil
}

// readVersions reads the chunks' versions, the projects' principals and
// the WAL position they are current at, in one repeatable-read
// transaction.
func (a *AntiEntropy) readVersions(ctx context.Context, ids []index.ID) (map[index.ID]int64, map[index.ID]index.ProjectState, index.LSN, error) {
	conn, err := pgx.Connect(ctx, a.URL)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("replication: anti-entropy: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var pg map[index.ID]int64
	var projects map[index.ID]index.ProjectState
	var lsn index.LSN
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
			return err
		}
		if pg, err = NewSource(tx).Versions(ctx, ids); err != nil {
			return err
		}
		projects, err = NewSource(tx).Projects(ctx, ids)
		return err
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("replication: anti-entropy: %w", err)
	}
	return pg, projects, lsn, nil
}

// diffProjects lists the projects whose principals differ between
// PostgreSQL and the index: among every project (ids nil) or ids.
func diffProjects(pg, local map[index.ID]index.ProjectState, ids []index.ID) []index.ID {
	var out []index.ID
	differs := func(id index.ID) bool {
		p, inPG := pg[id]
		l, inLocal := local[id]
		return inPG != inLocal || (inPG && !sameProject(p, l))
	}
	if ids != nil {
		for _, id := range ids {
			if differs(id) {
				out = append(out, id)
			}
		}
		return out
	}
	for id := range pg {
		if differs(id) {
			out = append(out, id)
		}
	}
	for id := range local {
		if _, ok := pg[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

// waitFor waits (30 s at most) until the local index reached lsn; false
// when it lags (readiness reports it).
func (a *AntiEntropy) waitFor(ctx context.Context, lsn index.LSN) (bool, error) {
	deadline := time.Now().Add(30 * time.Second)
	for a.Node.Live.Engine().Position().LSN < lsn {
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return true, nil
}

// diff compares PostgreSQL's versions with the index's. Extra chunks are
// looked for among every local one (ids nil) or among ids only.
func diff(pg, local map[index.ID]int64, ids []index.ID) *Divergence {
	d := &Divergence{}
	for id, v := range pg {
		lv, ok := local[id]
		switch {
		case !ok:
			d.Missing = append(d.Missing, id)
		case lv != v:
			d.Stale = append(d.Stale, id)
		}
	}
	if ids == nil {
		for id := range local {
			if _, ok := pg[id]; !ok {
				d.Extra = append(d.Extra, id)
			}
		}
		return d
	}
	for _, id := range ids {
		_, inPG := pg[id]
		_, inLocal := local[id]
		if !inPG && inLocal {
			d.Extra = append(d.Extra, id)
		}
	}
	return d
}

// Repair proposes PostgreSQL's current state of the given chunks (an
// upsert for each that exists, a delete for each that does not) through the
// log. On a follower, the leader is asked to do it.
func (n *Node) Repair(ctx context.Context, url string, ids []index.ID, secret string) error {
	if !n.IsLeader() {
		return n.askLeaderToRepair(ctx, ids, secret)
	}
	return n.RepairFrom(ctx, url, ids)
}

// RepairFrom (leader) reads the chunks from PostgreSQL and proposes them.
func (n *Node) RepairFrom(ctx context.Context, url string, ids []index.ID) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("replication: repair: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var ops index.Ops
	src := NewSource(conn)
	if ops.Upserts, ops.Documents, err = src.Chunks(ctx, ids); err != nil {
		return fmt.Errorf("replication: repair: %w", err)
	}
	// The chunks' vectors by the models held apart from the column.
	if m, err := src.ModelState(ctx); err != nil {
		return fmt.Errorf("replication: repair: %w", err)
	} else if m != nil {
		if ops.Embeddings, err = src.Embeddings(ctx, modelsHeld(*m), ids); err != nil {
			return fmt.Errorf("replication: repair: %w", err)
		}
	}
	found := map[index.ID]bool{}
	for _, c := range ops.Upserts {
		found[c.ID] = true
	}
	for _, id := range ids {
		if !found[id] {
			ops.Deletes = append(ops.Deletes, id) // a project's id here deletes no chunk
		}
	}
	projects, err := NewSource(conn).Projects(ctx, ids)
	if err != nil {
		return fmt.Errorf("replication: repair: %w", err)
	}
	repairProjects(&ops, projects, n.Live.Engine().Projects(), ids)
	return n.Propose(ctx, RepairEntry(ops))
}

// repairProjects adds to ops what makes the index's projects among ids
// PostgreSQL's: each project as it is there, with its grants; grantees
// the index holds beyond them revoked; projects gone from PostgreSQL
// deleted.
func repairProjects(ops *index.Ops, pg, local map[index.ID]index.ProjectState, ids []index.ID) {
	ops.Projects, ops.Grants = principalOps(pg)
	for _, id := range ids {
		l, inLocal := local[id]
		p, inPG := pg[id]
		switch {
		case inLocal && !inPG:
			ops.DeleteProjects = append(ops.DeleteProjects, id)
		case inLocal:
			for _, u := range l.Grantees {
				if !slices.Contains(p.Grantees, u) {
					ops.Revokes = append(ops.Revokes, index.Grant{ProjectID: id, UserID: u})
				}
			}
		}
	}
}

// RepairChunks (leader) repairs the chunks from the changefeed's database.
func (n *Node) RepairChunks(ctx context.Context, ids []index.ID) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if n.cfg.Feed == nil {
		return fmt.Errorf("replication: no database to repair from")
	}
	return n.RepairFrom(ctx, n.cfg.Feed.URL, ids)
}
