package replication

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/sostenuto/sostenuto/index"
)

// receiver is the feed's reading side: it reads the replication
// connection, answers the server (standby status every KeepaliveEvery, and
// when asked), hands pgoutput messages to the Assembler and queues each
// committed transaction, and heartbeats while idle, for the proposer.
type receiver struct {
	f          *Feed
	conn       *pgconn.PgConn
	every      time.Duration
	committed  *atomic.Uint64 // the last position Raft committed
	proposals  chan<- Entry
	asm        *Assembler
	seen       pglogrepl.LSN // the last position read whole (a commit, or an idle keepalive)
	lastQueued time.Time
	nextStatus time.Time
}

// run reads until an error or ctx ends.
func (r *receiver) run(ctx context.Context) error {
	for {
		if err := r.heartbeat(ctx); err != nil {
			return err
		}
		if time.Now().After(r.nextStatus) {
			if err := r.sendStatus(ctx); err != nil {
				return err
			}
		}
		raw, err := r.receive(ctx)
		if err != nil {
			return err
		}
		if raw == nil {
			continue // a status is due
		}
		if err := r.handle(ctx, raw); err != nil {
			return err
		}
	}
}

// heartbeat queues a keepalive entry at the last position read when
// nothing was queued for a while and no transaction is open: every node
// learns the feed is alive (readiness) even when no WAL is written.
func (r *receiver) heartbeat(ctx context.Context) error {
	if r.asm.Open() || time.Since(r.lastQueued) < r.every || len(r.proposals) != 0 {
		return nil
	}
	return r.queue(ctx, KeepaliveEntry(index.LSN(r.seen), time.Now().UnixMilli()))
}

// sendStatus confirms the committed position and schedules the next one.
func (r *receiver) sendStatus(ctx context.Context) error {
	if err := r.f.status(ctx, r.conn, r.committed); err != nil {
		return err
	}
	r.nextStatus = time.Now().Add(r.every)
	return nil
}

// receive waits for the next message until the next status is due; nil
// (and no error) when it is.
func (r *receiver) receive(ctx context.Context) (pgproto3.BackendMessage, error) {
	rctx, cancel := context.WithDeadline(ctx, r.nextStatus)
	raw, err := r.conn.ReceiveMessage(rctx)
	cancel()
	if err != nil {
		if pgconn.Timeout(err) && ctx.Err() == nil {
			return nil, nil
		}
		return nil, fmt.Errorf("replication: receive: %w", err)
	}
	return raw, nil
}

// handle dispatches one message of the replication protocol.
func (r *receiver) handle(ctx context.Context, raw pgproto3.BackendMessage) error {
	if e, ok := raw.(*pgproto3.ErrorResponse); ok {
		return fmt.Errorf("replication: server: %s", e.Message)
	}
	msg, ok := raw.(*pgproto3.CopyData)
	if !ok || len(msg.Data) == 0 {
		return nil
	}
	switch msg.Data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		return r.keepalive(ctx, msg.Data[1:])
	case pglogrepl.XLogDataByteID:
		return r.xlogData(ctx, msg.Data[1:])
	}
	return nil
}

// keepalive handles the server's keepalive: idle between transactions,
// everything up to the server's end has been seen, so the position may
// advance.
func (r *receiver) keepalive(ctx context.Context, data []byte) error {
	ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data)
	if err != nil {
		return err
	}
	if !r.asm.Open() && ka.ServerWALEnd > r.seen {
		r.seen = ka.ServerWALEnd
		if err := r.queue(ctx, KeepaliveEntry(index.LSN(r.seen), ka.ServerTime.UnixMilli())); err != nil {
			return err
		}
	}
	if ka.ReplyRequested {
		r.nextStatus = time.Time{}
	}
	return nil
}

// xlogData hands one pgoutput message to the assembler and queues the
// transaction it completes, if any: proposed in order, confirmed to the
// slot once committed.
func (r *receiver) xlogData(ctx context.Context, data []byte) error {
	xld, err := pglogrepl.ParseXLogData(data)
	if err != nil {
		return err
	}
	tx, err := r.asm.AddWAL(xld.WALData)
	if err != nil || tx == nil {
		return err
	}
	if err := r.queue(ctx, tx.Entry()); err != nil {
		return err
	}
	r.seen = tx.LSN()
	return nil
}

// queue hands an entry to the proposer, answering the server while it
// waits.
func (r *receiver) queue(ctx context.Context, e Entry) error {
	for {
		select {
		case r.proposals <- e:
			r.lastQueued = time.Now()
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(r.nextStatus)):
			if err := r.sendStatus(ctx); err != nil {
				return err
			}
		}
	}
}
