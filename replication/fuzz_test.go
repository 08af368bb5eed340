package replication

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sostenuto/sostenuto/index"
)

// FuzzDecodeEntry: any bytes in the Raft log decode to an entry or an
// error; a decoded entry re-encodes to one that decodes the same, and
// applying it to a node's FSM returns an error or applies — never a panic.
// The committed seeds (testdata/fuzz/FuzzDecodeEntry) are the golden
// entries and what fuzzing them found.
func FuzzDecodeEntry(f *testing.F) {
	vec := make([]float32, index.DefaultConfig().Vector.Dim)
	vec[0] = 1
	full := goldenChunks()[:1]
	full[0].Vector = vec
	seeds := []Entry{
		ChangesEntry(index.Ops{Position: index.Position{LSN: 10}, Documents: goldenDocs(), Upserts: full}, 1),
		ChangesEntry(index.Ops{Position: index.Position{LSN: 11}, Deletes: []index.ID{gid(4)}, DeleteDocs: []index.ID{gid(1)}}, 2),
		BaseBeginEntry(), BasePartEntry(index.Ops{Upserts: full}), BaseEndEntry(99, 3),
		KeepaliveEntry(100, 4), RepairEntry(index.Ops{Upserts: full, Deletes: []index.ID{gid(5)}}),
	}
	for _, c := range goldenCases() {
		seeds = append(seeds, c.entry)
	}
	for _, e := range seeds {
		b, err := e.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{200, 1})
	f.Add([]byte{1, 9, 0x0a, 0x00})
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
		if err != nil || e2.Kind != e.Kind || !proto.Equal(e2.Payload, e.Payload) {
			t.Fatalf("round trip: %v vs %v (%v)", e2, e, err)
		}
		_ = newTestFSM(t).ApplyEntry(e) // an error is a fine answer; a panic is not
	})
}
