// Package replication turns PostgreSQL changes into index operations. The
// changefeed (this file) reads the publication sostenuto_changefeed through
// logical replication (pgoutput, protocol 1, so transactions arrive whole
// and in commit order) and hands each committed transaction to the caller
// as one batch of index operations positioned at its commit LSN. Its
// reading side is receive.go; assembler.go turns pgoutput messages into
// transactions; source.go reads documents and chunks from PostgreSQL.
//
// One reader, the Raft leader, holds the cluster's named slot. It resumes
// from the position the replicated state machine has applied; when the
// slot is missing, invalidated, or ahead of that state (a base was begun
// and not finished), it drops the slot, creates it again exporting a
// snapshot, loads everything from that snapshot (the base) and proposes it,
// then streams from the slot's consistent point. Each committed
// transaction is proposed as one Raft entry at its commit LSN, and the
// position is confirmed to the slot only after Raft committed it.
package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sostenuto/sostenuto/index"
)

// Publication is the one the changefeed reads (migrations/00001_schema.sql).
const Publication = "sostenuto_changefeed"

// Proposer is where the feed sends what it reads: in a cluster, the Raft
// leader, whose Propose returns once the entry is committed and applied.
type Proposer interface {
	// State is the applied state the feed resumes from.
	State() State
	// Propose commits an entry (and applies it locally) or fails.
	Propose(ctx context.Context, e Entry) error
}

// DirectProposer applies entries straight to an FSM: one process, no
// replication (tools and tests).
type DirectProposer struct{ FSM *FSM }

// State implements Proposer.
func (d DirectProposer) State() State { return d.FSM.State() }

// Propose implements Proposer.
func (d DirectProposer) Propose(_ context.Context, e Entry) error { return d.FSM.ApplyEntry(e) }

// Feed reads the changefeed of one database through one named, permanent
// replication slot. Only one reader may hold the slot: in a cluster, the
// Raft leader.
type Feed struct {
	URL    string // the database URL; a replication connection is derived
	Slot   string // the slot's name (SlotName of the database's if empty)
	Logger *slog.Logger
	// KeepaliveEvery bounds how long an idle stream stays silent (the
	// server's wal_sender_timeout is set to twice it for this connection),
	// so the applied position advances even when nothing is published.
	KeepaliveEvery time.Duration
	// BasePart is how many chunks one base entry carries (256 if zero).
	BasePart int
}

// Run streams until ctx ends, resuming from the proposer's state after any
// failure, with backoff.
func (f *Feed) Run(ctx context.Context, p Proposer) error {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := f.runOnce(ctx, p)
		if ctx.Err() != nil {
			return nil
		}
		f.Logger.Warn("changefeed interrupted; resuming", "component", "replication", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (f *Feed) replConfig() (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(f.URL)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["replication"] = "database"
	every := f.KeepaliveEvery
	if every <= 0 {
		every = time.Second
	}
	cfg.RuntimeParams["wal_sender_timeout"] = strconv.Itoa(int((2 * every).Milliseconds()))
	cfg.RuntimeParams["application_name"] = "sostenuto-changefeed"
	return cfg, nil
}

// slotInfo is the slot as PostgreSQL reports it.
type slotInfo struct {
	exists    bool
	confirmed index.LSN
	lost      bool
	activePID *int32
}

func (f *Feed) slot(ctx context.Context, conn *pgx.Conn) (slotInfo, error) {
	var s slotInfo
	var confirmed *string
	var walStatus *string
	err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text, wal_status, active_pid FROM pg_replication_slots
		WHERE slot_name = $1`, f.Slot).Scan(&confirmed, &walStatus, &s.activePID)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("replication: slot: %w", err)
	}
	s.exists = true
	s.lost = walStatus != nil && *walStatus == "lost"
	if confirmed != nil {
		lsn, err := pglogrepl.ParseLSN(*confirmed)
		if err != nil {
			return s, err
		}
		s.confirmed = index.LSN(lsn)
	}
	return s, nil
}

// ErrSlotBusy means another reader holds the slot.
var ErrSlotBusy = errors.New("replication: the slot is held by another reader")

func (f *Feed) runOnce(ctx context.Context, p Proposer) error {
	admin, err := pgx.Connect(ctx, f.URL)
	if err != nil {
		return fmt.Errorf("replication: connect: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	slot, err := f.freeSlot(ctx, admin)
	if err != nil {
		return err
	}
	cfg, err := f.replConfig()
	if err != nil {
		return err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("replication: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	start, err := f.startAt(ctx, admin, conn, slot, p)
	if err != nil {
		return err
	}
	err = pglogrepl.StartReplication(ctx, conn, f.Slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + Publication + "'"}})
	if err != nil {
		return fmt.Errorf("replication: start: %w", err)
	}
	return f.stream(ctx, conn, start, p)
}

// freeSlot names the slot if needed and reads it; ErrSlotBusy when another
// session held it (that session is ended).
func (f *Feed) freeSlot(ctx context.Context, admin *pgx.Conn) (slotInfo, error) {
	if f.Slot == "" {
		var db string
		if err := admin.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
			return slotInfo{}, fmt.Errorf("replication: %w", err)
		}
		f.Slot = SlotName(db)
	}
	slot, err := f.slot(ctx, admin)
	if err != nil || slot.activePID == nil {
		return slot, err
	}
	// Only the leader reads, and Raft no longer lets the old reader commit
	// anything: end its session rather than wait for its timeout (a
	// deposed or frozen leader).
	f.Logger.Warn("changefeed slot held by another session; ending it", "component", "replication", "slot", f.Slot, "pid", *slot.activePID)
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, *slot.activePID); err != nil {
		return slot, fmt.Errorf("replication: end the slot's old reader: %w", err)
	}
	return slot, ErrSlotBusy
}

// startAt is where streaming starts: the applied position when the slot
// can resume it, else the consistent point of a new slot, after a base
// loaded from its snapshot.
func (f *Feed) startAt(ctx context.Context, admin *pgx.Conn, conn *pgconn.PgConn, slot slotInfo, p Proposer) (pglogrepl.LSN, error) {
	st := p.State()
	if slot.exists && !slot.lost && st.Based && !st.Building && st.Position.LSN >= slot.confirmed {
		start := pglogrepl.LSN(st.Position.LSN)
		f.Logger.Info("changefeed resuming", "component", "replication", "slot", f.Slot, "lsn", start)
		return start, nil
	}
	if slot.exists {
		f.Logger.Warn("changefeed slot unusable for this index; rebuilding from a fresh base", "component", "replication",
			"slot", f.Slot, "lost", slot.lost, "index_based", st.Based, "index_lsn", st.Position.LSN, "slot_lsn", slot.confirmed)
		if _, err := admin.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, f.Slot); err != nil {
			return 0, fmt.Errorf("replication: drop slot: %w", err)
		}
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, f.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication})
	if err != nil {
		return 0, fmt.Errorf("replication: create slot: %w", err)
	}
	start, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, err
	}
	return start, f.base(ctx, p, res.SnapshotName, start)
}

// base loads everything as of the slot's snapshot and proposes it in
// parts; the serving index is replaced only when the last part commits.
func (f *Feed) base(ctx context.Context, p Proposer, snapshot string, at pglogrepl.LSN) error {
	started := time.Now()
	ops, err := loadBase(ctx, f.URL, snapshot)
	if err != nil {
		return err
	}
	if err := p.Propose(ctx, BaseBeginEntry()); err != nil {
		return err
	}
	// The models first, so every vector after finds its graph.
	if err := p.Propose(ctx, BasePartEntry(index.Ops{Documents: ops.Documents, Projects: ops.Projects, Grants: ops.Grants, Model: ops.Model})); err != nil {
		return err
	}
	part := f.BasePart
	if part <= 0 {
		part = 256
	}
	for i := 0; i < len(ops.Upserts); i += part {
		chunk := ops.Upserts[i:min(i+part, len(ops.Upserts))]
		if err := p.Propose(ctx, BasePartEntry(index.Ops{Upserts: chunk})); err != nil {
			return err
		}
	}
	// Vectors by model after their chunks.
	for i := 0; i < len(ops.Embeddings); i += part {
		es := ops.Embeddings[i:min(i+part, len(ops.Embeddings))]
		if err := p.Propose(ctx, BasePartEntry(index.Ops{Embeddings: es})); err != nil {
			return err
		}
	}
	if err := p.Propose(ctx, BaseEndEntry(index.LSN(at), time.Now().UnixMilli())); err != nil {
		return err
	}
	f.Logger.Info("changefeed base loaded", "component", "replication", "slot", f.Slot, "lsn", at,
		"documents", len(ops.Documents), "chunks", len(ops.Upserts), "elapsed", time.Since(started).Round(time.Millisecond))
	return nil
}

// stream reads committed transactions and keepalives until an error. One
// goroutine receives and answers the server (status updates every
// KeepaliveEvery, whatever Raft is doing, so a slow apply never trips
// wal_sender_timeout); another proposes, in order. The position confirmed
// to the slot is the last one Raft committed.
func (f *Feed) stream(ctx context.Context, conn *pgconn.PgConn, start pglogrepl.LSN, p Proposer) error {
	every := f.KeepaliveEvery
	if every <= 0 {
		every = time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var committed atomic.Uint64
	committed.Store(uint64(start))
	proposals := make(chan Entry, 64)
	proposeErr := make(chan error, 1)
	go func() {
		if err := f.propose(ctx, proposals, p, &committed); err != nil {
			proposeErr <- err
			cancel()
			for range proposals { // drain until the reader stops
			}
			return
		}
		close(proposeErr)
	}()
	r := &receiver{f: f, conn: conn, every: every, committed: &committed, proposals: proposals,
		asm: NewAssembler(), seen: start, lastQueued: time.Now(), nextStatus: time.Now().Add(every)}
	err := r.run(ctx)
	close(proposals)
	if perr, ok := <-proposeErr; ok && perr != nil {
		return perr
	}
	return err
}

// status confirms the committed position to the server.
func (f *Feed) status(ctx context.Context, conn *pgconn.PgConn, committed *atomic.Uint64) error {
	pos := pglogrepl.LSN(committed.Load())
	err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos})
	if err != nil {
		return fmt.Errorf("replication: status: %w", err)
	}
	return nil
}

// SlotName is the default slot of a database: slots are per PostgreSQL
// instance, so the name carries the database's.
func SlotName(database string) string {
	var b strings.Builder
	b.WriteString("sostenuto_")
	for _, r := range strings.ToLower(database) {
		if b.Len() >= 63 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
