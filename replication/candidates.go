package replication

import (
	"time"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication/logentry"
)

// candidateShipper is a Proposer that fills in, before an entry is
// proposed, the candidate neighbours of its new chunks (version 5 of
// changes; replication/DESIGN.md, "Candidates"). inFlight are the entries
// proposed before it and not yet settled.
type candidateShipper interface {
	shipCandidates(e Entry, inFlight []inFlight)
}

// shipCandidates implements candidateShipper: the candidates come from the
// node's serving engine (it is the leader: it proposes). Nothing unless
// the node's ShipCandidates is on.
func (n *Node) shipCandidates(e Entry, q []inFlight) {
	if !n.cfg.ShipCandidates {
		return
	}
	pending := make([]Entry, len(q))
	for i, it := range q {
		pending[i] = it.e
	}
	start := time.Now()
	chunks, others := withCandidates(n.Live.Engine(), e, pending)
	if chunks > 0 {
		n.cfg.Logger.Debug("candidates computed", "component", "replication", "chunks", chunks, "in_flight_chunks", others,
			"ms", time.Since(start).Milliseconds())
	}
}

// withCandidates sets, in a changes entry e, the candidate neighbours of
// each upserted chunk with a vector, computed in eng's graph and among the
// vectors eng does not hold yet: e's own and those of the entries of
// inFlight past eng's position (proposed before e, not applied here yet).
// It answers how many chunks got candidates and how many in-flight chunks
// were compared besides. Other entries are left alone.
func withCandidates(eng *index.Engine, e Entry, inFlight []Entry) (chunks, others int) {
	c, ok := e.Payload.(*logentry.Changes)
	if !ok || len(c.GetUpserts()) == 0 {
		return 0, 0
	}
	applied := uint64(eng.Position().LSN)
	var ids []index.ID
	var vecs [][]float32
	for _, p := range inFlight {
		if pc, ok := p.Payload.(*logentry.Changes); ok && pc.GetLsn() > applied {
			ids, vecs = appendVectors(ids, vecs, pc.GetUpserts(), nil)
		}
	}
	from := len(ids)
	var mine []*logentry.Chunk
	ids, vecs = appendVectors(ids, vecs, c.GetUpserts(), &mine)
	if len(mine) == 0 {
		return 0, 0
	}
	cands := eng.Candidates(ids, vecs, from)
	if len(cands) != len(mine) {
		return 0, from
	}
	for i, ch := range mine {
		ch.Neighbours = neighboursOut(cands[i])
	}
	return len(mine), from
}

// appendVectors appends the ids and vectors of the chunks carrying a
// vector, and the chunks to mine when not nil.
func appendVectors(ids []index.ID, vecs [][]float32, cs []*logentry.Chunk, mine *[]*logentry.Chunk) ([]index.ID, [][]float32) {
	for _, ch := range cs {
		v := ch.GetVector().GetValues()
		id, err := idIn(ch.GetId(), "chunk id")
		if len(v) == 0 || err != nil {
			continue
		}
		ids, vecs = append(ids, id), append(vecs, v)
		if mine != nil {
			*mine = append(*mine, ch)
		}
	}
	return ids, vecs
}
