// Package replication turns PostgreSQL changes into index operations. The
// changefeed (this file) reads the publication sostenuto_changefeed through
// logical replication (pgoutput, protocol 1, so transactions arrive whole
// and in commit order) and hands each committed transaction to the caller
// as one batch of index operations positioned at its commit LSN.
//
// This first stage serves a single node: it opens a temporary slot that
// exports a snapshot, loads the whole index from that snapshot (the base),
// then streams from the slot's consistent point. A lost connection starts
// over with a fresh slot and a fresh base, so nothing committed is ever
// missed. Raft (issue 7) will put one reader behind a replicated log.
package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
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

// Sink receives the feed: Base replaces the whole index with a consistent
// load at its position; Apply applies one committed transaction.
type Sink interface {
	Base(ctx context.Context, ops index.Ops) error
	Apply(ctx context.Context, ops index.Ops) error
}

// Feed reads the changefeed of one database.
type Feed struct {
	URL    string // the database URL; a replication connection is derived
	Slot   string // slot name prefix; the slot is temporary
	Logger *slog.Logger
	// KeepaliveEvery bounds how long an idle stream stays silent (the
	// server's wal_sender_timeout is set to twice it for this connection),
	// so the applied position advances even when nothing is published.
	KeepaliveEvery time.Duration
}

// Run streams until ctx ends, starting over (new slot, new base) after any
// failure, with backoff.
func (f *Feed) Run(ctx context.Context, sink Sink) error {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := f.runOnce(ctx, sink)
		if ctx.Err() != nil {
			return nil
		}
		f.Logger.Warn("changefeed interrupted; starting over", "component", "replication", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
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

func (f *Feed) runOnce(ctx context.Context, sink Sink) error {
	cfg, err := f.replConfig()
	if err != nil {
		return err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("replication: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	slot := fmt.Sprintf("%s_%s", f.Slot, strings.ReplaceAll(uuid.NewString()[:8], "-", ""))
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "EXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication})
	if err != nil {
		return fmt.Errorf("replication: create slot: %w", err)
	}
	start, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return err
	}
	base, err := f.loadBase(ctx, res.SnapshotName)
	if err != nil {
		return err
	}
	base.Position = index.Position{LSN: uint64(start)}
	if err := sink.Base(ctx, base); err != nil {
		return err
	}
	f.Logger.Info("changefeed base loaded", "component", "replication", "slot", slot, "lsn", start,
		"documents", len(base.Documents), "chunks", len(base.Upserts))
	err = pglogrepl.StartReplication(ctx, conn, slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + Publication + "'"}})
	if err != nil {
		return fmt.Errorf("replication: start: %w", err)
	}
	return f.stream(ctx, conn, start, sink)
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

// stream applies committed transactions and keepalives until an error.
func (f *Feed) stream(ctx context.Context, conn *pgconn.PgConn, start pglogrepl.LSN, sink Sink) error {
	relations := map[uint32]*pglogrepl.RelationMessage{}
	applied := start
	var tx *index.Ops
	every := f.KeepaliveEvery
	if every <= 0 {
		every = time.Second
	}
	nextStatus := time.Now().Add(every)
	for {
		if time.Now().After(nextStatus) {
			if err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: applied}); err != nil {
				return fmt.Errorf("replication: status: %w", err)
			}
			nextStatus = time.Now().Add(every)
		}
		rctx, cancel := context.WithDeadline(ctx, nextStatus)
		raw, err := conn.ReceiveMessage(rctx)
		cancel()
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
			if tx == nil && ka.ServerWALEnd > applied {
				if err := sink.Apply(ctx, index.Ops{Position: index.Position{LSN: uint64(ka.ServerWALEnd)}}); err != nil {
					return err
				}
				applied = ka.ServerWALEnd
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
				if err := sink.Apply(ctx, *tx); err != nil {
					return err
				}
				applied, tx = m.TransactionEndLSN, nil
			}
		}
	}
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
	c.Vector, err = parseVector(cols["embedding"])
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
