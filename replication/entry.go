package replication

import (
	"fmt"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication/logentry"
)

// Entry is one Raft log entry (package logentry holds its types and
// format); the functions below make each kind from index values, and
// read index values back out of them.
type Entry = logentry.Entry

// DecodeEntry reads an entry from the Raft log.
func DecodeEntry(b []byte) (Entry, error) { return logentry.Decode(b) }

// Member is a node as the cluster knows it.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_address"`
	HTTPAddr string `json:"http_address"`
}

// ChangesEntry is one committed transaction at its position; commitMs is
// its PostgreSQL commit time (unix ms).
func ChangesEntry(ops index.Ops, commitMs int64) Entry {
	knowledge, notes := splitKinds(ops.Upserts)
	return Entry{Kind: logentry.KindChanges, Payload: &logentry.Changes{
		Lsn: uint64(ops.Position.LSN), CommitTimeMs: commitMs,
		Documents: documentsOut(ops.Documents), Upserts: chunksOut(knowledge),
		Deletes: idsOut(ops.Deletes), DeleteDocuments: idsOut(ops.DeleteDocs),
		Projects: projectsOut(ops.Projects), Grants: grantsOut(ops.Grants), Revokes: grantsOut(ops.Revokes),
		DeleteProjects: idsOut(ops.DeleteProjects), AnnotationUpserts: annotationsOut(notes),
		Embeddings: embeddingsOut(ops.Embeddings), ModelState: modelOut(ops.Model),
		ScopeChanges: idsOut(ops.ScopeChanges)}}
}

// KeepaliveEntry moves the applied position to lsn; atMs is the server's
// time there (unix ms).
func KeepaliveEntry(lsn index.LSN, atMs int64) Entry {
	return Entry{Kind: logentry.KindKeepalive, Payload: &logentry.Keepalive{Lsn: uint64(lsn), CommitTimeMs: atMs}}
}

// BaseBeginEntry starts a fresh base.
func BaseBeginEntry() Entry {
	return Entry{Kind: logentry.KindBaseBegin, Payload: &logentry.BaseBegin{}}
}

// BasePartEntry carries documents and chunks of a base (ops' position and
// deletes are not part of a base).
func BasePartEntry(ops index.Ops) Entry {
	knowledge, notes := splitKinds(ops.Upserts)
	return Entry{Kind: logentry.KindBasePart, Payload: &logentry.BasePart{
		Documents: documentsOut(ops.Documents), Upserts: chunksOut(knowledge),
		Projects: projectsOut(ops.Projects), Grants: grantsOut(ops.Grants), AnnotationUpserts: annotationsOut(notes),
		Embeddings: embeddingsOut(ops.Embeddings), ModelState: modelOut(ops.Model)}}
}

// BaseEndEntry completes a base at lsn.
func BaseEndEntry(lsn index.LSN, commitMs int64) Entry {
	return Entry{Kind: logentry.KindBaseEnd, Payload: &logentry.BaseEnd{Lsn: uint64(lsn), CommitTimeMs: commitMs}}
}

// MemberEntry records a node's addresses.
func MemberEntry(m Member) Entry {
	return Entry{Kind: logentry.KindMember, Payload: memberOut(m)}
}

// RepairEntry carries repairs: documents, chunk upserts and chunk deletes
// of both kinds, projects and their grants (ops' position and document
// deletes are not part of a repair).
func RepairEntry(ops index.Ops) Entry {
	knowledge, notes := splitKinds(ops.Upserts)
	return Entry{Kind: logentry.KindRepair, Payload: &logentry.Repair{
		Documents: documentsOut(ops.Documents), Upserts: chunksOut(knowledge), Deletes: idsOut(ops.Deletes),
		Projects: projectsOut(ops.Projects), Grants: grantsOut(ops.Grants), Revokes: grantsOut(ops.Revokes),
		DeleteProjects: idsOut(ops.DeleteProjects), AnnotationUpserts: annotationsOut(notes),
		Embeddings: embeddingsOut(ops.Embeddings)}}
}

// payloadOf returns e's payload as T, or an error when the kind and the
// payload disagree (an entry built by hand; decoded ones always agree).
func payloadOf[T any](e Entry) (T, error) {
	p, ok := e.Payload.(T)
	if !ok {
		return p, fmt.Errorf("replication: a %s entry carries %T", e.Kind, e.Payload)
	}
	return p, nil
}

// opsOfChanges reads a transaction's operations and position.
func opsOfChanges(c *logentry.Changes) (index.Ops, error) {
	ops, err := opsOf(c.GetDocuments(), c.GetUpserts(), c.GetDeletes())
	if err != nil {
		return ops, err
	}
	ops.Position = index.Position{LSN: index.LSN(c.GetLsn())}
	if ops.DeleteDocs, err = idsIn(c.GetDeleteDocuments(), "document delete"); err != nil {
		return ops, err
	}
	if ops.ScopeChanges, err = idsIn(c.GetScopeChanges(), "scope change"); err != nil {
		return ops, err
	}
	ops.Model = modelIn(c.GetModelState())
	if ops.Embeddings, err = embeddingsIn(c.GetEmbeddings()); err != nil {
		return ops, err
	}
	p := principals{c.GetProjects(), c.GetGrants(), c.GetRevokes(), c.GetDeleteProjects(), c.GetAnnotationUpserts()}
	return ops, p.into(&ops)
}

// opsOf reads documents, upserts and deletes.
func opsOf(docs []*logentry.Document, upserts []*logentry.Chunk, deletes [][]byte) (index.Ops, error) {
	var ops index.Ops
	var err error
	if ops.Documents, err = documentsIn(docs); err != nil {
		return ops, err
	}
	if ops.Upserts, err = chunksIn(upserts); err != nil {
		return ops, err
	}
	ops.Deletes, err = idsIn(deletes, "chunk delete")
	return ops, err
}

// entryOps counts the operations an entry carries (metrics).
func entryOps(e Entry) int {
	switch p := e.Payload.(type) {
	case *logentry.Changes:
		return len(p.GetDocuments()) + len(p.GetUpserts()) + len(p.GetDeletes()) + len(p.GetDeleteDocuments()) +
			len(p.GetProjects()) + len(p.GetGrants()) + len(p.GetRevokes()) + len(p.GetDeleteProjects()) + len(p.GetAnnotationUpserts()) +
			len(p.GetEmbeddings()) + modelOps(p.GetModelState()) + len(p.GetScopeChanges())
	case *logentry.BasePart:
		return len(p.GetDocuments()) + len(p.GetUpserts()) + len(p.GetProjects()) + len(p.GetGrants()) + len(p.GetAnnotationUpserts()) +
			len(p.GetEmbeddings()) + modelOps(p.GetModelState())
	case *logentry.Repair:
		return len(p.GetDocuments()) + len(p.GetUpserts()) + len(p.GetDeletes()) +
			len(p.GetProjects()) + len(p.GetGrants()) + len(p.GetRevokes()) + len(p.GetDeleteProjects()) + len(p.GetAnnotationUpserts()) +
			len(p.GetEmbeddings())
	}
	return 0
}

// entryPosition is the position a changes or keepalive entry moves to, and
// its commit time (zeros for other kinds).
func entryPosition(e Entry) (lsn index.LSN, commitMs int64) {
	switch p := e.Payload.(type) {
	case *logentry.Changes:
		return index.LSN(p.GetLsn()), p.GetCommitTimeMs()
	case *logentry.Keepalive:
		return index.LSN(p.GetLsn()), p.GetCommitTimeMs()
	}
	return 0, 0
}

// dataCommitTime is the commit time of a transaction that changed
// something (0 for every other entry): commit-to-apply is measured on it.
func dataCommitTime(e Entry) int64 {
	if p, ok := e.Payload.(*logentry.Changes); ok && entryOps(e) > 0 {
		return p.GetCommitTimeMs()
	}
	return 0
}

func documentsOut(ds []index.Document) []*logentry.Document {
	if len(ds) == 0 {
		return nil
	}
	out := make([]*logentry.Document, len(ds))
	for i, d := range ds {
		out[i] = &logentry.Document{Id: idOut(d.ID), OwnerId: idOut(d.OwnerID), IsPublic: d.IsPublic, Title: []byte(d.Title)}
	}
	return out
}

func documentsIn(ds []*logentry.Document) ([]index.Document, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	out := make([]index.Document, len(ds))
	for i, d := range ds {
		id, err := idIn(d.GetId(), "document id")
		if err != nil {
			return nil, err
		}
		owner, err := idIn(d.GetOwnerId(), "document owner")
		if err != nil {
			return nil, err
		}
		out[i] = index.Document{ID: id, OwnerID: owner, IsPublic: d.GetIsPublic(), Title: string(d.GetTitle())}
	}
	return out, nil
}

func chunksOut(cs []index.Chunk) []*logentry.Chunk {
	if len(cs) == 0 {
		return nil
	}
	out := make([]*logentry.Chunk, len(cs))
	for i, c := range cs {
		out[i] = &logentry.Chunk{Id: idOut(c.ID), DocumentId: idOut(c.DocumentID), OwnerId: idOut(c.OwnerID),
			Title: []byte(c.Title), Text: []byte(c.Text), PageStart: int64(c.PageStart), PageEnd: int64(c.PageEnd), Version: c.Version,
			Language: languageOut(c.Language), Neighbours: neighboursOut(c.Neighbours)}
		if c.Vector != nil {
			out[i].Vector = &logentry.Vector{Values: c.Vector}
		}
	}
	return out
}

// neighboursOut packs candidate neighbours: 16 bytes an id, nil for none.
func neighboursOut(ids []index.ID) []byte {
	if len(ids) == 0 {
		return nil
	}
	out := make([]byte, 0, 16*len(ids))
	for _, id := range ids {
		out = append(out, id[:]...)
	}
	return out
}

// neighboursIn unpacks candidate neighbours.
func neighboursIn(b []byte) ([]index.ID, error) {
	if len(b)%16 != 0 {
		return nil, fmt.Errorf("replication: chunk neighbours: %d bytes, not a whole number of 16-byte ids", len(b))
	}
	if len(b) == 0 {
		return nil, nil
	}
	out := make([]index.ID, len(b)/16)
	for i := range out {
		copy(out[i][:], b[16*i:])
	}
	return out, nil
}

func chunksIn(cs []*logentry.Chunk) ([]index.Chunk, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	out := make([]index.Chunk, len(cs))
	for i, c := range cs {
		var ids [3]index.ID
		raw := [3][]byte{c.GetId(), c.GetDocumentId(), c.GetOwnerId()}
		for j, what := range [3]string{"chunk id", "chunk document", "chunk owner"} {
			id, err := idIn(raw[j], what)
			if err != nil {
				return nil, err
			}
			ids[j] = id
		}
		out[i] = index.Chunk{ID: ids[0], DocumentID: ids[1], OwnerID: ids[2], Title: string(c.GetTitle()), Text: string(c.GetText()),
			PageStart: int(c.GetPageStart()), PageEnd: int(c.GetPageEnd()), Version: c.GetVersion(), Language: c.GetLanguage()}
		var err error
		if out[i].Neighbours, err = neighboursIn(c.GetNeighbours()); err != nil {
			return nil, err
		}
		if c.GetVector() != nil {
			// Present but empty stays non-nil: a vector of the wrong
			// length, which the index refuses, not "keep the stored one".
			out[i].Vector = c.GetVector().GetValues()
			if out[i].Vector == nil {
				out[i].Vector = []float32{}
			}
		}
	}
	return out, nil
}

// languageOut is a chunk's language as the log carries it: absent for
// English, so an English chunk's entry is what it was before languages.
func languageOut(lang string) string {
	if lang == "en" {
		return ""
	}
	return lang
}

func idOut(id index.ID) []byte { return id[:] }

func idIn(b []byte, what string) (index.ID, error) {
	var id index.ID
	if len(b) != len(id) {
		return id, fmt.Errorf("replication: %s of %d bytes, not %d", what, len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

func idsOut(ids []index.ID) [][]byte {
	if len(ids) == 0 {
		return nil
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = idOut(id)
	}
	return out
}

func idsIn(bs [][]byte, what string) ([]index.ID, error) {
	if len(bs) == 0 {
		return nil, nil
	}
	out := make([]index.ID, len(bs))
	for i, b := range bs {
		id, err := idIn(b, what)
		if err != nil {
			return nil, err
		}
		out[i] = id
	}
	return out, nil
}

func memberOut(m Member) *logentry.Member {
	return &logentry.Member{Id: m.ID, RaftAddress: m.RaftAddr, HttpAddress: m.HTTPAddr}
}

func memberIn(m *logentry.Member) Member {
	return Member{ID: m.GetId(), RaftAddr: m.GetRaftAddress(), HTTPAddr: m.GetHttpAddress()}
}

// modelOps counts a model state as one operation.
func modelOps(m *logentry.ModelState) int {
	if m == nil {
		return 0
	}
	return 1
}

func modelOut(m *index.ModelState) *logentry.ModelState {
	if m == nil {
		return nil
	}
	return &logentry.ModelState{Active: m.Active, ActiveDim: int64(m.ActiveDim), Building: m.Building,
		BuildingDim: int64(m.BuildingDim), Column: m.Column}
}

func modelIn(m *logentry.ModelState) *index.ModelState {
	if m == nil {
		return nil
	}
	return &index.ModelState{Active: m.GetActive(), ActiveDim: int(m.GetActiveDim()), Building: m.GetBuilding(),
		BuildingDim: int(m.GetBuildingDim()), Column: m.GetColumn()}
}

func embeddingsOut(es []index.Embedding) []*logentry.Embedding {
	if len(es) == 0 {
		return nil
	}
	out := make([]*logentry.Embedding, len(es))
	for i, x := range es {
		out[i] = &logentry.Embedding{ChunkId: idOut(x.Chunk), Model: x.Model}
		if x.Vector != nil {
			out[i].Vector = &logentry.Vector{Values: x.Vector}
		}
	}
	return out
}

func embeddingsIn(es []*logentry.Embedding) ([]index.Embedding, error) {
	if len(es) == 0 {
		return nil, nil
	}
	out := make([]index.Embedding, len(es))
	for i, x := range es {
		id, err := idIn(x.GetChunkId(), "embedding chunk")
		if err != nil {
			return nil, err
		}
		out[i] = index.Embedding{Chunk: id, Model: x.GetModel()}
		if x.GetVector() != nil {
			// Present but empty stays non-nil: the index refuses its length.
			out[i].Vector = x.GetVector().GetValues()
			if out[i].Vector == nil {
				out[i].Vector = []float32{}
			}
		}
	}
	return out, nil
}
