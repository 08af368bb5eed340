package replication

import (
	"testing"

	"github.com/sostenuto/sostenuto/index"
)

// FuzzDecodeEntry: any bytes in the Raft log decode to an entry or an
// error; a decoded entry re-encodes to one that decodes the same, and
// applying it to a node's FSM returns an error or applies — never a panic.
func FuzzDecodeEntry(f *testing.F) {
	vec := make([]float32, index.DefaultConfig().Vector.Dim)
	vec[0] = 1
	seeds := []Entry{
		{Kind: KindOps, Ops: index.Ops{Position: index.Position{LSN: 10}, Documents: []index.Document{{ID: index.ID{1}, OwnerID: index.ID{2}, IsPublic: true}},
			Upserts: []index.Chunk{{ID: index.ID{3}, DocumentID: index.ID{1}, OwnerID: index.ID{2}, Title: "T", Text: "pedal", PageStart: 1, PageEnd: 1, Version: 1, Vector: vec}}}},
		{Kind: KindOps, Ops: index.Ops{Position: index.Position{LSN: 11}, Deletes: []index.ID{{3}}, DeleteDocs: []index.ID{{1}}}},
		{Kind: KindBaseBegin}, {Kind: KindBasePart, Ops: index.Ops{Upserts: []index.Chunk{{ID: index.ID{9}, Vector: vec[:3]}}}},
		{Kind: KindBaseEnd, Ops: index.Ops{Position: index.Position{LSN: 99}}},
		{Kind: KindMember, Member: Member{ID: "n2", RaftAddr: "127.0.0.1:7001", HTTPAddr: "http://127.0.0.1:8081"}},
		{Kind: KindRepair}, {Kind: 200},
	}
	for _, e := range seeds {
		b, err := e.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		again, err := e.Encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		e2, err := DecodeEntry(again)
		if err != nil || e2.Kind != e.Kind || len(e2.Ops.Upserts) != len(e.Ops.Upserts) || e2.Ops.Position != e.Ops.Position {
			t.Fatalf("round trip: %+v vs %+v (%v)", e2, e, err)
		}
		empty, err := index.New(index.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		fsm := NewFSM(index.NewLive(empty), index.DefaultConfig())
		_ = fsm.ApplyEntry(e) // an error is a fine answer; a panic is not
	})
}
