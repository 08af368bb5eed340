package replication

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pglogrepl"

	"github.com/sostenuto/sostenuto/index"
)

// Assembler turns pgoutput messages (protocol 1) into committed
// transactions: a pure function of the messages it is given, without I/O
// or clocks. Relations are remembered as they arrive; rows between Begin
// and Commit become operations; Commit hands the transaction back.
// A TRUNCATE of the relationships changes every user's scope; other
// messages it has no use for (other truncations, Type, Origin) change
// nothing.
type Assembler struct {
	relations map[uint32]*pglogrepl.RelationMessage
	tx        *index.Ops
}

// Tx is one committed transaction: its operations, positioned at the
// commit's end LSN, and PostgreSQL's commit time.
type Tx struct {
	Ops        index.Ops
	CommitTime time.Time
}

// Entry is the changes entry the feed proposes for tx.
func (t *Tx) Entry() Entry { return ChangesEntry(t.Ops, t.CommitTime.UnixMilli()) }

// LSN is where the transaction ends.
func (t *Tx) LSN() pglogrepl.LSN { return pglogrepl.LSN(t.Ops.Position.LSN) }

// NewAssembler returns an assembler outside any transaction.
func NewAssembler() *Assembler {
	return &Assembler{relations: map[uint32]*pglogrepl.RelationMessage{}}
}

// Open reports whether a transaction has begun and not yet committed.
func (a *Assembler) Open() bool { return a.tx != nil }

// Add takes the next message; at a Commit it returns the transaction (nil
// otherwise, and for a Commit without a Begin).
func (a *Assembler) Add(msg pglogrepl.Message) (*Tx, error) {
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		a.relations[m.RelationID] = m
	case *pglogrepl.BeginMessage:
		a.tx = &index.Ops{}
	case *pglogrepl.InsertMessage:
		return nil, a.row(m.RelationID, m.Tuple, false)
	case *pglogrepl.UpdateMessage:
		if err := a.movedRelationship(m); err != nil {
			return nil, err
		}
		return nil, a.row(m.RelationID, m.NewTuple, false)
	case *pglogrepl.DeleteMessage:
		return nil, a.row(m.RelationID, m.OldTuple, true)
	case *pglogrepl.TruncateMessage:
		a.truncated(m)
	case *pglogrepl.CommitMessage:
		return a.commit(m), nil
	}
	return nil, nil
}

// truncated turns a TRUNCATE of the relationships into a change of every
// user's scope (index.EveryScope): cached teachers are read again. A
// TRUNCATE of another published table changes nothing here; anti-entropy
// finds the chunks and projects it removed.
func (a *Assembler) truncated(m *pglogrepl.TruncateMessage) {
	if a.tx == nil {
		return
	}
	for _, id := range m.RelationIDs {
		if rel := a.relations[id]; rel != nil && rel.RelationName == "relationships" &&
			!slices.Contains(a.tx.ScopeChanges, index.EveryScope) {
			a.tx.ScopeChanges = append(a.tx.ScopeChanges, index.EveryScope)
		}
	}
}

// AddWAL parses one XLogData payload and adds it.
func (a *Assembler) AddWAL(walData []byte) (*Tx, error) {
	m, err := pglogrepl.Parse(walData)
	if err != nil {
		return nil, fmt.Errorf("replication: decode: %w", err)
	}
	return a.Add(m)
}

func (a *Assembler) commit(m *pglogrepl.CommitMessage) *Tx {
	if a.tx == nil {
		return nil
	}
	tx := &Tx{Ops: *a.tx, CommitTime: m.CommitTime}
	tx.Ops.Position = index.Position{LSN: index.LSN(m.TransactionEndLSN)}
	a.tx = nil
	return tx
}

// movedRelationship notes the old student of a relationship an update
// moved to another pair (PostgreSQL sends the old key only then).
func (a *Assembler) movedRelationship(m *pglogrepl.UpdateMessage) error {
	rel := a.relations[m.RelationID]
	if a.tx == nil || rel == nil || rel.RelationName != "relationships" || m.OldTuple == nil {
		return nil
	}
	return decodeRelationship(a.tx, textColumns(rel, m.OldTuple))
}

func (a *Assembler) row(relation uint32, tuple *pglogrepl.TupleData, deleted bool) error {
	return decodeRow(a.tx, a.relations[relation], tuple, deleted)
}

// decodeRow turns one published row into an operation of tx.
func decodeRow(tx *index.Ops, rel *pglogrepl.RelationMessage, tuple *pglogrepl.TupleData, deleted bool) error {
	if tx == nil || rel == nil || tuple == nil {
		return errors.New("replication: row outside a transaction or of an unknown relation")
	}
	cols := textColumns(rel, tuple)
	switch rel.RelationName {
	case "project_grants":
		return decodeGrant(tx, cols, deleted)
	case "annotation_chunks":
		return decodeAnnotationRow(tx, cols, deleted)
	case "chunk_embeddings", "annotation_embeddings":
		return decodeEmbedding(tx, cols, deleted)
	case "embedding_state":
		if !deleted {
			tx.Model = decodeModelState(cols)
		}
		return nil
	case "relationships":
		return decodeRelationship(tx, cols)
	}
	id, err := uuidCol(cols, "id")
	if err != nil {
		return err
	}
	switch rel.RelationName {
	case "documents":
		return decodeDocument(tx, id, cols, deleted)
	case "projects":
		return decodeProject(tx, id, cols, deleted)
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

// textColumns maps the columns sent in text form by name; an unchanged
// TOASTed value ('u') and a null ('n') are absent.
func textColumns(rel *pglogrepl.RelationMessage, tuple *pglogrepl.TupleData) map[string]string {
	cols := map[string]string{}
	for i, c := range tuple.Columns {
		if i < len(rel.Columns) && c.DataType == pglogrepl.TupleDataTypeText {
			cols[rel.Columns[i].Name] = string(c.Data)
		}
	}
	return cols
}

func decodeDocument(tx *index.Ops, id index.ID, cols map[string]string, deleted bool) error {
	if deleted {
		tx.DeleteDocs = append(tx.DeleteDocs, id)
		return nil
	}
	owner, err := uuidCol(cols, "owner_id")
	if err != nil {
		return err
	}
	tx.Documents = append(tx.Documents, index.Document{ID: id, OwnerID: owner, IsPublic: cols["is_public"] == "t", Title: cols["title"]})
	return nil
}

func decodeChunk(id index.ID, cols map[string]string) (index.Chunk, error) {
	// language: absent from rows of a relation before migration 00008,
	// which are English.
	c := index.Chunk{ID: id, Text: cols["text"], Language: cols["language"]}
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

// decodeEmbedding turns a row of chunk_embeddings (migration 00012) into
// an embedding of tx: a vector, or a delete. An update that left a
// TOASTed vector alone changes nothing the index holds.
func decodeEmbedding(tx *index.Ops, cols map[string]string, deleted bool) error {
	id, err := uuidCol(cols, "chunk_id")
	if err != nil {
		return err
	}
	x := index.Embedding{Chunk: id, Model: cols["model"]}
	if deleted {
		tx.Embeddings = append(tx.Embeddings, x)
		return nil
	}
	v, ok := cols["embedding"]
	if !ok {
		return nil
	}
	if x.Vector, err = parseVector(v); err != nil {
		return err
	}
	tx.Embeddings = append(tx.Embeddings, x)
	return nil
}

// decodeModelState reads the row of embedding_state (migration 00012):
// which models the index holds.
func decodeModelState(cols map[string]string) *index.ModelState {
	ad, _ := strconv.Atoi(cols["active_dim"])
	bd, _ := strconv.Atoi(cols["building_dim"])
	return &index.ModelState{Active: cols["active_model"], ActiveDim: ad, Building: cols["building_model"],
		BuildingDim: bd, Column: cols["column_model"]}
}
