package replication

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

var recordPgoutput = flag.Bool("record-pgoutput", false, "record testdata/pgoutput/stream.hex again from the test PostgreSQL")

// The recorded stream's fixed ids.
var (
	recOwner = uuid.MustParse("00000000-0000-4000-8000-0000000000a1")
	recDoc1  = uuid.MustParse("00000000-0000-4000-8000-0000000000d1")
	recDoc2  = uuid.MustParse("00000000-0000-4000-8000-0000000000d2")
	recC1    = uuid.MustParse("00000000-0000-4000-8000-0000000000c1")
	recC2    = uuid.MustParse("00000000-0000-4000-8000-0000000000c2")
	recC3    = uuid.MustParse("00000000-0000-4000-8000-0000000000c3")
	recC4    = uuid.MustParse("00000000-0000-4000-8000-0000000000c4")
)

// toastedEmbedding is incompressible, so PostgreSQL stores it out of line
// and an update that leaves it alone does not resend it.
func toastedEmbedding() string {
	parts := make([]string, 768)
	for i := range parts {
		parts[i] = fmt.Sprintf("%.7f", math.Sin(float64(i)*1.37+0.1))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// recordedTx is one transaction of the recorded stream.
type recordedTx struct {
	name string
	sql  []string
}

func recordedTxs() []recordedTx {
	chunk := func(id, doc uuid.UUID, ord int, text, emb string) string {
		return fmt.Sprintf(`INSERT INTO chunks (id, document_id, owner_id, ordinal, text, token_count, char_start, char_end, page_start, page_end, embedding)
			VALUES ('%s', '%s', '%s', %d, '%s', 1, 0, 5, 1, 2, '%s')`, id, doc, recOwner, ord, text, emb)
	}
	doc := func(id uuid.UUID, title string) string {
		return fmt.Sprintf(`INSERT INTO documents (id, owner_id, title, source_type) VALUES ('%s', '%s', '%s', 'text')`, id, recOwner, title)
	}
	return []recordedTx{
		{"insert a private document and three chunks (c3's embedding TOASTed)", []string{doc(recDoc1, "Nocturne"),
			chunk(recC1, recDoc1, 0, "c1 legato", vec(1)), chunk(recC2, recDoc1, 1, "c2 staccato", vec(2)), chunk(recC3, recDoc1, 2, "c3 before", toastedEmbedding())}},
		{"visibility flip and new title", []string{fmt.Sprintf(`UPDATE documents SET is_public = true, title = 'Nocturne, public' WHERE id = '%s'`, recDoc1)}},
		{"update c3's text only: its TOASTed embedding arrives unchanged ('u')", []string{fmt.Sprintf(`UPDATE chunks SET text = 'c3 after', version = version + 1 WHERE id = '%s'`, recC3)}},
		{"update c1's text and embedding: the new embedding is sent", []string{fmt.Sprintf(`UPDATE chunks SET text = 'c1 again', version = version + 1, embedding = '%s' WHERE id = '%s'`, vec(5), recC1)}},
		{"delete c2", []string{fmt.Sprintf(`DELETE FROM chunks WHERE id = '%s'`, recC2)}},
		{"delete the document (cascades to c1 and c3)", []string{fmt.Sprintf(`DELETE FROM documents WHERE id = '%s'`, recDoc1)}},
		{"insert a second document and chunk", []string{doc(recDoc2, "Etude"), chunk(recC4, recDoc2, 0, "c4 rubato", vec(4))}},
		{"truncate chunks", []string{`TRUNCATE chunks`}},
	}
}

// TestRecordPgoutput records testdata/pgoutput/stream.hex: the pgoutput
// messages (XLogData payloads) PostgreSQL sends for recordedTxs, through
// the feed's publication and replication connection settings.
func TestRecordPgoutput(t *testing.T) {
	if !*recordPgoutput {
		t.Skip("go test ./replication -run TestRecordPgoutput -record-pgoutput records testdata/pgoutput again")
	}
	db := pgtest.NewDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mustExecURL(t, db.URL, fmt.Sprintf(`INSERT INTO users (id, email, display_name, role, password_hash) VALUES ('%s', 'o@example.com', 'O', 'teacher', 'x')`, recOwner))
	cfg, err := (&Feed{URL: db.URL, KeepaliveEvery: 10 * time.Second}).replConfig()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, SlotName("rec_"+db.Name), "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, Mode: pglogrepl.LogicalReplication})
	if err != nil {
		t.Fatal(err)
	}
	txs := recordedTxs()
	for _, tx := range txs {
		runTx(t, ctx, db.URL, tx.sql)
	}
	start, _ := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err := pglogrepl.StartReplication(ctx, conn, res.SlotName, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + Publication + "'"}}); err != nil {
		t.Fatal(err)
	}
	out := readRecording(t, ctx, conn, txs)
	if err := os.WriteFile(filepath.Join("testdata", "pgoutput", "stream.hex"), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runTx(t *testing.T, ctx context.Context, url string, sql []string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, q := range sql {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readRecording reads messages until every transaction committed, one hex
// line each, a comment naming each transaction before its Begin.
func readRecording(t *testing.T, ctx context.Context, conn *pgconn.PgConn, txs []recordedTx) string {
	var b strings.Builder
	b.WriteString("# pgoutput (protocol 1) messages of publication sostenuto_changefeed, one XLogData payload a line, in hex.\n")
	b.WriteString("# Recorded by TestRecordPgoutput (go test ./replication -run TestRecordPgoutput -record-pgoutput); read by TestAssemblerRecordedStream.\n")
	begun, committed := 0, 0
	for committed < len(txs) {
		raw, err := conn.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cd, ok := raw.(*pgproto3.CopyData)
		if !ok || len(cd.Data) == 0 || cd.Data[0] != pglogrepl.XLogDataByteID {
			continue
		}
		xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
		if err != nil {
			t.Fatal(err)
		}
		switch xld.WALData[0] {
		case 'B':
			fmt.Fprintf(&b, "# tx %d: %s\n", begun+1, txs[begun].name)
			begun++
		case 'C':
			committed++
		}
		b.WriteString(hex.EncodeToString(xld.WALData) + "\n")
	}
	return b.String()
}
