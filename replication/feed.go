// Package replication turns PostgreSQL changes into index operations. The
// changefeed (this file) reads the publication sostenuto_changefeed through
// logical replication (pgoutput, protocol 1, so transactions arrive whole
// and in commit order) and hands each committed transaction to the caller
// as one batch of index operations positioned at its commit LSN.
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

	"github.com/google/uuid"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

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
	confirmed uint64
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
		s.confirmed = uint64(lsn)
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
	if f.Slot == "" {
		var db string
		if err := admin.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
			return fmt.Errorf("replication: %w", err)
		}
		f.Slot = SlotName(db)
	}
	slot, err := f.slot(ctx, admin)
	if err != nil {
		return err
	}
	if slot.activePID != nil {
		// Only the leader reads, and Raft no longer lets the old reader
		// commit anything: end its session rather than wait for its
		// timeout (a deposed or frozen leader).
		f.Logger.Warn("changefeed slot held by another session; ending it", "component", "replication", "slot", f.Slot, "pid", *slot.activePID)
		if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, *slot.activePID); err != nil {
			return fmt.Errorf("replication: end the slot's old reader: %w", err)
		}
		return ErrSlotBusy
	}
	st := p.State()
	resume := slot.exists && !slot.lost && st.Based && !st.Building && st.Position.LSN >= slot.confirmed
	cfg, err := f.replConfig()
	if err != nil {
		return err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("replication: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var start pglogrepl.LSN
	if resume {
		start = pglogrepl.LSN(st.Position.LSN)
		f.Logger.Info("changefeed resuming", "component", "replication", "slot", f.Slot, "lsn", start)
	} else {
		if slot.exists {
			f.Logger.Warn("changefeed slot unusable for this index; rebuilding from a fresh base", "component", "replication",
				"slot", f.Slot, "lost", slot.lost, "index_based", st.Based, "index_lsn", pglogrepl.LSN(st.Position.LSN), "slot_lsn", pglogrepl.LSN(slot.confirmed))
			if _, err := admin.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, f.Slot); err != nil {
				return fmt.Errorf("replication: drop slot: %w", err)
			}
		}
		res, err := pglogrepl.CreateReplicationSlot(ctx, conn, f.Slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication})
		if err != nil {
			return fmt.Errorf("replication: create slot: %w", err)
		}
		if start, err = pglogrepl.ParseLSN(res.ConsistentPoint); err != nil {
			return err
		}
		if err := f.base(ctx, p, res.SnapshotName, start); err != nil {
			return err
		}
	}
	err = pglogrepl.StartReplication(ctx, conn, f.Slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + Publication + "'"}})
	if err != nil {
		return fmt.Errorf("replication: start: %w", err)
	}
	return f.stream(ctx, conn, start, p)
}

// base loads everything as of the slot's snapshot and proposes it in
// parts; the serving index is replaced only when the last part commits.
func (f *Feed) base(ctx context.Context, p Proposer, snapshot string, at pglogrepl.LSN) error {
	started := time.Now()
	ops, err := f.loadBase(ctx, snapshot)
	if err != nil {
		return err
	}
	if err := p.Propose(ctx, BaseBeginEntry()); err != nil {
		return err
	}
	if err := p.Propose(ctx, BasePartEntry(index.Ops{Documents: ops.Documents})); err != nil {
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
	if err := p.Propose(ctx, BaseEndEntry(uint64(at), time.Now().UnixMilli())); err != nil {
		return err
	}
	f.Logger.Info("changefeed base loaded", "component", "replication", "slot", f.Slot, "lsn", at,
		"documents", len(ops.Documents), "chunks", len(ops.Upserts), "elapsed", time.Since(started).Round(time.Millisecond))
	return nil
}

// loadBase reads every document and chunk as of the slot's snapshot.
func (f *Feed) loadBase(ctx context.Context, snapshot string) (index.Ops, error) {
	var ops index.Ops
	conn, err := pgx.Connect(ctx, f.URL)
	if err != nil {
		return ops, fmt.Errorf("replication: base: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snapshot+"'"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, owner_id, is_public, title FROM documents`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var d index.Document
			var id, owner uuid.UUID
			if err := rows.Scan(&id, &owner, &d.IsPublic, &d.Title); err != nil {
				return err
			}
			d.ID, d.OwnerID = index.ID(id), index.ID(owner)
			ops.Documents = append(ops.Documents, d)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT id, document_id, owner_id, text, page_start, page_end, version, embedding::text FROM chunks`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c index.Chunk
			var id, doc, owner uuid.UUID
			var emb string
			if err := rows.Scan(&id, &doc, &owner, &c.Text, &c.PageStart, &c.PageEnd, &c.Version, &emb); err != nil {
				return err
			}
			c.ID, c.DocumentID, c.OwnerID = index.ID(id), index.ID(doc), index.ID(owner)
			if c.Vector, err = parseVector(emb); err != nil {
				return err
			}
			ops.Upserts = append(ops.Upserts, c)
		}
		return rows.Err()
	})
	if err != nil {
		return ops, fmt.Errorf("replication: base: %w", err)
	}
	return ops, nil
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
		for e := range proposals {
			received := time.Now()
			if err := p.Propose(ctx, e); err != nil {
				proposeErr <- err
				cancel()
				for range proposals { // drain until the reader stops
				}
				return
			}
			lsn, commitMs := entryPosition(e)
			committed.Store(lsn)
			if n := entryOps(e); n > 0 {
				f.Logger.Debug("transaction replicated", "component", "replication", "lsn", pglogrepl.LSN(lsn),
					"operations", n, "commit_to_receive_ms", received.UnixMilli()-commitMs, "propose_ms", time.Since(received).Milliseconds())
			}
		}
		close(proposeErr)
	}()
	err := f.receive(ctx, conn, start, every, &committed, proposals)
	close(proposals)
	if perr, ok := <-proposeErr; ok && perr != nil {
		return perr
	}
	return err
}

// receive is stream's reading side.
func (f *Feed) receive(ctx context.Context, conn *pgconn.PgConn, start pglogrepl.LSN, every time.Duration, committed *atomic.Uint64, proposals chan<- Entry) error {
	relations := map[uint32]*pglogrepl.RelationMessage{}
	seen := start // the last position read whole (a commit, or an idle keepalive)
	lastQueued := time.Now()
	var tx *index.Ops
	nextStatus := time.Now().Add(every)
	// queue hands an entry to the proposer, answering the server while it
	// waits.
	queue := func(e Entry) error {
		for {
			select {
			case proposals <- e:
				lastQueued = time.Now()
				return nil
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Until(nextStatus)):
				if err := f.status(ctx, conn, committed); err != nil {
					return err
				}
				nextStatus = time.Now().Add(every)
			}
		}
	}
	for {
		if tx == nil && time.Since(lastQueued) >= every && len(proposals) == 0 {
			// A heartbeat at the last position read: every node learns the
			// feed is alive (readiness) even when no WAL is written.
			if err := queue(KeepaliveEntry(uint64(seen), time.Now().UnixMilli())); err != nil {
				return err
			}
		}
		if time.Now().After(nextStatus) {
			if err := f.status(ctx, conn, committed); err != nil {
				return err
			}
			nextStatus = time.Now().Add(every)
		}
		rctx, rcancel := context.WithDeadline(ctx, nextStatus)
		raw, err := conn.ReceiveMessage(rctx)
		rcancel()
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil {
				continue
			}
			return fmt.Errorf("replication: receive: %w", err)
		}
		if e, ok := raw.(*pgproto3.ErrorResponse); ok {
			return fmt.Errorf("replication: server: %s", e.Message)
		}
		msg, ok := raw.(*pgproto3.CopyData)
		if !ok || len(msg.Data) == 0 {
			continue
		}
		switch msg.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
			if err != nil {
				return err
			}
			// Idle between transactions: everything up to the server's
			// end has been seen, so the position may advance.
			if tx == nil && ka.ServerWALEnd > seen {
				seen = ka.ServerWALEnd
				if err := queue(KeepaliveEntry(uint64(seen), ka.ServerTime.UnixMilli())); err != nil {
					return err
				}
			}
			if ka.ReplyRequested {
				nextStatus = time.Time{}
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
			if err != nil {
				return err
			}
			m, err := pglogrepl.Parse(xld.WALData)
			if err != nil {
				return fmt.Errorf("replication: decode: %w", err)
			}
			switch m := m.(type) {
			case *pglogrepl.RelationMessage:
				relations[m.RelationID] = m
			case *pglogrepl.BeginMessage:
				tx = &index.Ops{}
			case *pglogrepl.InsertMessage:
				if err := decodeRow(tx, relations[m.RelationID], m.Tuple, false); err != nil {
					return err
				}
			case *pglogrepl.UpdateMessage:
				if err := decodeRow(tx, relations[m.RelationID], m.NewTuple, false); err != nil {
					return err
				}
			case *pglogrepl.DeleteMessage:
				if err := decodeRow(tx, relations[m.RelationID], m.OldTuple, true); err != nil {
					return err
				}
			case *pglogrepl.CommitMessage:
				if tx == nil {
					continue
				}
				tx.Position = index.Position{LSN: uint64(m.TransactionEndLSN)}
				// Proposed in order; confirmed to the slot once committed.
				if err := queue(ChangesEntry(*tx, m.CommitTime.UnixMilli())); err != nil {
					return err
				}
				seen, tx = m.TransactionEndLSN, nil
			}
		}
	}
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

// decodeRow turns one published row into an operation of tx.
func decodeRow(tx *index.Ops, rel *pglogrepl.RelationMessage, tuple *pglogrepl.TupleData, deleted bool) error {
	if tx == nil || rel == nil || tuple == nil {
		return errors.New("replication: row outside a transaction or of an unknown relation")
	}
	cols := map[string]string{}
	for i, c := range tuple.Columns {
		if i < len(rel.Columns) && c.DataType == pglogrepl.TupleDataTypeText {
			cols[rel.Columns[i].Name] = string(c.Data)
		}
	}
	id, err := uuidCol(cols, "id")
	if err != nil {
		return err
	}
	switch rel.RelationName {
	case "documents":
		if deleted {
			tx.DeleteDocs = append(tx.DeleteDocs, id)
			return nil
		}
		owner, err := uuidCol(cols, "owner_id")
		if err != nil {
			return err
		}
		tx.Documents = append(tx.Documents, index.Document{ID: id, OwnerID: owner, IsPublic: cols["is_public"] == "t", Title: cols["title"]})
	case "chunks":
		if deleted {
			tx.Deletes = append(tx.Deletes, id)
			return nil
		}
		c, err := decodeChunk(id, cols)
		if err != nil {
			return err
		}
		tx.Upserts = append(tx.Upserts, c)
	}
	return nil
}

func decodeChunk(id index.ID, cols map[string]string) (index.Chunk, error) {
	c := index.Chunk{ID: id, Text: cols["text"]}
	var err error
	if c.DocumentID, err = uuidCol(cols, "document_id"); err != nil {
		return c, err
	}
	if c.OwnerID, err = uuidCol(cols, "owner_id"); err != nil {
		return c, err
	}
	ps, err1 := strconv.Atoi(cols["page_start"])
	pe, err2 := strconv.Atoi(cols["page_end"])
	v, err3 := strconv.ParseInt(cols["version"], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return c, fmt.Errorf("replication: chunk columns: %w", err)
	}
	c.PageStart, c.PageEnd, c.Version = ps, pe, v
	emb, ok := cols["embedding"]
	if !ok {
		// Unchanged and TOASTed: PostgreSQL does not resend it; a nil
		// vector tells the index to keep the one it holds.
		return c, nil
	}
	c.Vector, err = parseVector(emb)
	return c, err
}

func uuidCol(cols map[string]string, name string) (index.ID, error) {
	u, err := uuid.Parse(cols[name])
	if err != nil {
		return index.ID{}, fmt.Errorf("replication: column %s: %w", name, err)
	}
	return index.ID(u), nil
}

// parseVector reads pgvector's text form "[0.1,0.2,...]".
func parseVector(s string) ([]float32, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, fmt.Errorf("replication: not a vector: %.20q", s)
	}
	parts := strings.Split(s[1:len(s)-1], ",")
	v := make([]float32, len(parts))
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil {
			return nil, fmt.Errorf("replication: vector element %d: %w", i, err)
		}
		v[i] = float32(f)
	}
	return v, nil
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
