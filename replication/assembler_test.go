package replication

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication/logentry"
)

// recordedMessages reads testdata/pgoutput/stream.hex.
func recordedMessages(t *testing.T) [][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "pgoutput", "stream.hex"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var msgs [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return msgs
}

// assembleRecorded runs the recorded stream through one assembler.
func assembleRecorded(t *testing.T) []*Tx {
	t.Helper()
	a := NewAssembler()
	var txs []*Tx
	for i, m := range recordedMessages(t) {
		tx, err := a.AddWAL(m)
		if err != nil {
			t.Fatalf("message %d (%c): %v", i, m[0], err)
		}
		if tx != nil {
			txs = append(txs, tx)
		}
		if m[0] == 'B' && !a.Open() || m[0] == 'C' && a.Open() {
			t.Fatalf("message %d (%c): Open() %v", i, m[0], a.Open())
		}
	}
	if a.Open() {
		t.Fatal("a transaction left open at the end of the stream")
	}
	return txs
}

func mustVector(t *testing.T, s string) []float32 {
	t.Helper()
	v, err := parseVector(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func chunkOf(id, doc uuid.UUID, text string, version int64, vector []float32) index.Chunk {
	return index.Chunk{ID: index.ID(id), DocumentID: index.ID(doc), OwnerID: index.ID(recOwner), Text: text,
		PageStart: 1, PageEnd: 2, Version: version, Vector: vector}
}

// TestAssemblerRecordedStream assembles the pgoutput messages PostgreSQL
// sent for recordedTxs and checks every transaction's operations, and that
// positions and commit times come from the Commit messages.
func TestAssemblerRecordedStream(t *testing.T) {
	txs := assembleRecorded(t)
	if len(txs) != len(recordedTxs()) {
		t.Fatalf("%d transactions, want %d", len(txs), len(recordedTxs()))
	}
	owner := index.ID(recOwner)
	toasted := mustVector(t, toastedEmbedding())
	want := []index.Ops{
		{Documents: []index.Document{{ID: index.ID(recDoc1), OwnerID: owner, Title: "Nocturne"}},
			Upserts: []index.Chunk{chunkOf(recC1, recDoc1, "c1 legato", 1, mustVector(t, vec(1))),
				chunkOf(recC2, recDoc1, "c2 staccato", 1, mustVector(t, vec(2))), chunkOf(recC3, recDoc1, "c3 before", 1, toasted)}},
		{Documents: []index.Document{{ID: index.ID(recDoc1), OwnerID: owner, IsPublic: true, Title: "Nocturne, public"}}},
		// The TOASTed embedding did not change: absent, so the index keeps its own.
		{Upserts: []index.Chunk{chunkOf(recC3, recDoc1, "c3 after", 2, nil)}},
		{Upserts: []index.Chunk{chunkOf(recC1, recDoc1, "c1 again", 2, mustVector(t, vec(5)))}},
		{Deletes: []index.ID{index.ID(recC2)}},
		{DeleteDocs: []index.ID{index.ID(recDoc1)}, Deletes: []index.ID{index.ID(recC1), index.ID(recC3)}},
		{Documents: []index.Document{{ID: index.ID(recDoc2), OwnerID: owner, Title: "Etude"}},
			Upserts: []index.Chunk{chunkOf(recC4, recDoc2, "c4 rubato", 1, mustVector(t, vec(4)))}},
		// A Truncate is passed by: the transaction carries no operation
		// (anti-entropy finds and repairs what it removed).
		{},
	}
	var last index.LSN
	for i, tx := range txs {
		got := tx.Ops
		if got.Position.LSN <= last || tx.CommitTime.IsZero() {
			t.Errorf("tx %d: position %v after %v, commit time %v", i+1, got.Position, last, tx.CommitTime)
		}
		last = got.Position.LSN
		got.Position = index.Position{}
		slices.SortFunc(got.Deletes, func(a, b index.ID) int { return strings.Compare(string(a[:]), string(b[:])) })
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("tx %d (%s):\n got %s\nwant %s", i+1, recordedTxs()[i].name, opsString(got), opsString(want[i]))
		}
	}
}

// TestAssemblerEntryKeepsUnchangedVectorAbsent: the changes entry of the
// TOAST update carries the chunk without a vector (the log's "keep the one
// held"), at the commit's position and time.
func TestAssemblerEntryKeepsUnchangedVectorAbsent(t *testing.T) {
	tx := assembleRecorded(t)[2]
	e := tx.Entry()
	c, ok := e.Payload.(*logentry.Changes)
	if e.Kind != logentry.KindChanges || !ok {
		t.Fatalf("entry %v %T", e.Kind, e.Payload)
	}
	if index.LSN(c.GetLsn()) != tx.Ops.Position.LSN || c.GetCommitTimeMs() != tx.CommitTime.UnixMilli() {
		t.Errorf("entry at %d/%d, tx at %d/%d", c.GetLsn(), c.GetCommitTimeMs(), tx.Ops.Position.LSN, tx.CommitTime.UnixMilli())
	}
	ops, err := opsOfChanges(c)
	if err != nil || len(ops.Upserts) != 1 || ops.Upserts[0].Vector != nil || ops.Upserts[0].Text != "c3 after" {
		t.Fatalf("ops %+v %v", ops, err)
	}
}

// Rows outside a transaction or of a relation never announced are errors;
// a Commit without a Begin is passed by.
func TestAssemblerRefusesOrphanRows(t *testing.T) {
	msgs := recordedMessages(t)
	var relation, insert, commit []byte
	for _, m := range msgs {
		switch {
		case m[0] == 'R' && relation == nil:
			relation = m
		case m[0] == 'I' && insert == nil:
			insert = m
		case m[0] == 'C' && commit == nil:
			commit = m
		}
	}
	a := NewAssembler()
	if tx, err := a.AddWAL(commit); tx != nil || err != nil {
		t.Errorf("a commit without a begin: %v %v", tx, err)
	}
	if _, err := a.AddWAL(insert); err == nil {
		t.Error("a row outside a transaction was taken")
	}
	if _, err := a.AddWAL([]byte{'B', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddWAL(insert); err == nil {
		t.Error("a row of an unknown relation was taken")
	}
	if _, err := a.AddWAL(relation); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddWAL([]byte{'?'}); err == nil {
		t.Error("an unknown message was taken")
	}
}

// opsString prints ops briefly (vectors by length and first values).
func opsString(o index.Ops) string {
	var b strings.Builder
	for _, d := range o.Documents {
		fmt.Fprintf(&b, "doc %s owner %s %q public=%v; ", uuid.UUID(d.ID), uuid.UUID(d.OwnerID), d.Title, d.IsPublic)
	}
	for _, c := range o.Upserts {
		fmt.Fprintf(&b, "chunk %s doc %s owner %s %q pages %d-%d v%d vector ", uuid.UUID(c.ID), uuid.UUID(c.DocumentID),
			uuid.UUID(c.OwnerID), c.Text, c.PageStart, c.PageEnd, c.Version)
		if c.Vector == nil {
			b.WriteString("absent; ")
		} else {
			fmt.Fprintf(&b, "[%d] %v; ", len(c.Vector), c.Vector[:min(3, len(c.Vector))])
		}
	}
	for _, id := range o.Deletes {
		fmt.Fprintf(&b, "delete %s; ", uuid.UUID(id))
	}
	for _, id := range o.DeleteDocs {
		fmt.Fprintf(&b, "delete doc %s; ", uuid.UUID(id))
	}
	return b.String()
}
