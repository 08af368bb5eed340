package replication

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication/logentry"
)

var update = flag.Bool("update", false, "rewrite testdata/golden and the FuzzDecodeEntry seeds made from it")

// goldenCase is one committed entry: the file, the entry that wrote it,
// and what it must read back as, in index terms, forever after.
type goldenCase struct {
	name  string
	entry Entry
	want  any
}

// positionBack is what a keepalive or a base end reads back as.
type positionBack struct {
	LSN      uint64
	CommitMs int64
}

// changesBack is what a changes entry reads back as.
type changesBack struct {
	Ops      index.Ops
	CommitMs int64
}

func gid(b byte) index.ID { return index.ID{b, 0x5e, 0x57, 0xe0, 15: b} }

func goldenDocs() []index.Document {
	return []index.Document{{ID: gid(1), OwnerID: gid(2), IsPublic: true, Title: "Études, op. 10"},
		{ID: gid(3), OwnerID: gid(2), Title: ""}}
}

func goldenChunks() []index.Chunk {
	return []index.Chunk{
		{ID: gid(4), DocumentID: gid(1), OwnerID: gid(2), Title: "Études, op. 10", Text: "Keep the wrist loose; legato.",
			PageStart: 3, PageEnd: 4, Version: 7, Vector: []float32{0.25, -1.5, 3e-7, 65504}},
		// An update that left the embedding alone: no vector.
		{ID: gid(5), DocumentID: gid(3), OwnerID: gid(2), Text: "pedal", PageStart: 1, PageEnd: 1, Version: 2},
	}
}

func goldenCases() []goldenCase {
	changes := index.Ops{Position: index.Position{LSN: 0x1_6B3A_28F0}, Documents: goldenDocs(), Upserts: goldenChunks(),
		Deletes: []index.ID{gid(6)}, DeleteDocs: []index.ID{gid(7)}}
	part := index.Ops{Documents: goldenDocs(), Upserts: goldenChunks()}
	repair := index.Ops{Documents: goldenDocs()[:1], Upserts: goldenChunks()[:1], Deletes: []index.ID{gid(8), gid(9)}}
	member := Member{ID: "node-2", RaftAddr: "127.0.0.1:7001", HTTPAddr: "http://127.0.0.1:8081"}
	return []goldenCase{
		{"changes", ChangesEntry(changes, 1_700_000_000_123), changesBack{changes, 1_700_000_000_123}},
		{"keepalive", KeepaliveEntry(0x1_6B3A_2A00, 1_700_000_001_000), positionBack{0x1_6B3A_2A00, 1_700_000_001_000}},
		{"base_begin", BaseBeginEntry(), struct{}{}},
		{"base_part", BasePartEntry(part), part},
		{"base_end", BaseEndEntry(0x1_6B3A_0000, 1_700_000_000_000), positionBack{0x1_6B3A_0000, 1_700_000_000_000}},
		{"member", MemberEntry(member), member},
		{"repair", RepairEntry(repair), repair},
	}
}

// goldenLanguageCases are the chunk-carrying kinds at version 2: chunks
// with a language (a German one, and an English one, which the log
// carries as no language).
func goldenLanguageCases() []goldenCase {
	cs := goldenChunks()
	cs[0].Language = "de"
	changes := index.Ops{Position: index.Position{LSN: 0x1_6B3A_3000}, Documents: goldenDocs(), Upserts: cs, Deletes: []index.ID{gid(6)}}
	part := index.Ops{Documents: goldenDocs(), Upserts: cs}
	repair := index.Ops{Upserts: cs[:1]}
	return []goldenCase{
		{"changes_v2", ChangesEntry(changes, 1_700_000_003_000), changesBack{changes, 1_700_000_003_000}},
		{"base_part_v2", BasePartEntry(part), part},
		{"repair_v2", RepairEntry(repair), repair},
	}
}

// goldenAnnotationCases are the chunk-carrying kinds at version 3:
// projects, grants, revokes, deleted projects and annotation chunks (one
// in German, one keeping its vector), beside a knowledge chunk.
func goldenAnnotationCases() []goldenCase {
	notes := []index.Chunk{
		{ID: gid(10), Kind: index.KindAnnotation, ProjectID: gid(11), AuthorID: gid(2), Text: "Half pedal from bar 12.",
			PageStart: 3, PageEnd: 3, Version: 2, Vector: []float32{1, 0, -0.5, 2}},
		{ID: gid(12), Kind: index.KindAnnotation, ProjectID: gid(11), AuthorID: gid(13), Text: "Pedal wechseln",
			PageStart: 1, PageEnd: 1, Version: 1, Language: "de"},
	}
	projects := []index.Project{{ID: gid(11), OwnerID: gid(2), Title: "Nocturne op. 9/2"}}
	grants := []index.Grant{{ProjectID: gid(11), UserID: gid(13)}}
	revokes := []index.Grant{{ProjectID: gid(11), UserID: gid(14)}}
	changes := index.Ops{Position: index.Position{LSN: 0x1_6B3A_4000}, Upserts: append(goldenChunks()[:1], notes...),
		Deletes: []index.ID{gid(15)}, Projects: projects, Grants: grants, Revokes: revokes, DeleteProjects: []index.ID{gid(16)}}
	part := index.Ops{Projects: projects, Grants: grants, Upserts: notes}
	repair := index.Ops{Projects: projects, Grants: grants, Revokes: revokes, DeleteProjects: []index.ID{gid(16)},
		Upserts: notes[:1], Deletes: []index.ID{gid(17)}}
	return []goldenCase{
		{"changes_v3", ChangesEntry(changes, 1_700_000_004_000), changesBack{changes, 1_700_000_004_000}},
		{"base_part_v3", BasePartEntry(part), part},
		{"repair_v3", RepairEntry(repair), repair},
	}
}

// goldenModelCases are the chunk-carrying kinds at version 4: vectors by
// model (one a delete) and a model state.
func goldenModelCases() []goldenCase {
	emb := []index.Embedding{{Chunk: gid(4), Model: "sostenuto-hash-v1-256", Vector: []float32{0.5, -0.25, 1e-8}},
		{Chunk: gid(5), Model: "e5-large"}}
	model := &index.ModelState{Active: "sostenuto-hash-v1", ActiveDim: 768, Building: "sostenuto-hash-v1-256",
		BuildingDim: 256, Column: "sostenuto-hash-v1"}
	changes := index.Ops{Position: index.Position{LSN: 0x1_6B3A_5000}, Upserts: goldenChunks()[:1], Embeddings: emb, Model: model}
	part := index.Ops{Documents: goldenDocs(), Embeddings: emb[:1], Model: model}
	repair := index.Ops{Upserts: goldenChunks()[:1], Embeddings: emb[:1]}
	return []goldenCase{
		{"changes_v4", ChangesEntry(changes, 1_700_000_005_000), changesBack{changes, 1_700_000_005_000}},
		{"base_part_v4", BasePartEntry(part), part},
		{"repair_v4", RepairEntry(repair), repair},
	}
}

// goldenScopeCases are changes at version 4: scope changes (users whose
// teachers changed), alone and beside the fields of earlier versions.
func goldenScopeCases() []goldenCase {
	alone := index.Ops{Position: index.Position{LSN: 0x1_6B3A_5000}, ScopeChanges: []index.ID{gid(13), gid(18)}}
	mixed := index.Ops{Position: index.Position{LSN: 0x1_6B3A_6000}, Documents: goldenDocs()[:1], Upserts: goldenChunks()[:1],
		Grants: []index.Grant{{ProjectID: gid(11), UserID: gid(13)}}, ScopeChanges: []index.ID{gid(13)}}
	return []goldenCase{
		{"changes_v4_scope", ChangesEntry(alone, 1_700_000_005_000), changesBack{alone, 1_700_000_005_000}},
		{"changes_v4_mixed", ChangesEntry(mixed, 1_700_000_006_000), changesBack{mixed, 1_700_000_006_000}},
	}
}

// goldenNeighbourCases are changes at version 5: chunks carrying the
// candidate neighbours the leader computed (one chunk without, one with a
// neighbour of its own entry).
func goldenNeighbourCases() []goldenCase {
	cs := goldenChunks()
	cs[0].Neighbours = []index.ID{gid(19), gid(20), gid(5)}
	alone := index.Ops{Position: index.Position{LSN: 0x1_6B3A_7000}, Documents: goldenDocs(), Upserts: cs, Deletes: []index.ID{gid(6)}}
	cs = goldenChunks()
	cs[0].Neighbours = []index.ID{gid(21)}
	cs[0].Language = "de"
	mixed := index.Ops{Position: index.Position{LSN: 0x1_6B3A_8000}, Documents: goldenDocs()[:1], Upserts: cs,
		Grants: []index.Grant{{ProjectID: gid(11), UserID: gid(13)}}, ScopeChanges: []index.ID{gid(13)}}
	return []goldenCase{
		{"changes_v5", ChangesEntry(alone, 1_700_000_007_000), changesBack{alone, 1_700_000_007_000}},
		{"changes_v5_mixed", ChangesEntry(mixed, 1_700_000_008_000), changesBack{mixed, 1_700_000_008_000}},
	}
}

// readBack reads an entry as index values, through the conversions the
// FSM uses.
func readBack(e Entry) (any, error) {
	switch p := e.Payload.(type) {
	case *logentry.Changes:
		ops, err := opsOfChanges(p)
		return changesBack{ops, p.GetCommitTimeMs()}, err
	case *logentry.Keepalive:
		return positionBack{p.GetLsn(), p.GetCommitTimeMs()}, nil
	case *logentry.BaseBegin:
		return struct{}{}, nil
	case *logentry.BasePart:
		return opsOfBasePart(p)
	case *logentry.BaseEnd:
		return positionBack{p.GetLsn(), p.GetCommitTimeMs()}, nil
	case *logentry.Member:
		return memberIn(p), nil
	case *logentry.Repair:
		return opsOfRepair(p)
	}
	return nil, fmt.Errorf("no read-back for %T", e.Payload)
}

func goldenHeader() *logentry.SnapshotHeader {
	return &logentry.SnapshotHeader{Based: true, CommitTimeMs: 1_700_000_002_000, AppliedIndex: 4242,
		Members: []*logentry.Member{memberOut(Member{ID: "a", RaftAddr: "10.0.0.1:7000", HTTPAddr: "http://a:8080"}),
			memberOut(Member{ID: "b", RaftAddr: "10.0.0.2:7000", HTTPAddr: "http://b:8080"})}}
}

func goldenPath(name string) string { return filepath.Join("testdata", "golden", name+".bin") }

// readGolden returns a golden file, first (re)writing it under -update.
func readGolden(t *testing.T, name string, encode func() ([]byte, error)) []byte {
	t.Helper()
	if *update {
		b, err := encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(goldenPath(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath(name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		writeFuzzSeed(t, "golden-"+name, b)
	}
	b, err := os.ReadFile(goldenPath(name))
	if err != nil {
		t.Fatalf("%v (run go test ./replication -run TestGolden -update once to write it)", err)
	}
	return b
}

// writeFuzzSeed stores b as a FuzzDecodeEntry seed (`go test fuzz v1`).
func writeFuzzSeed(t *testing.T, name string, b []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeEntry")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Every kind of entry committed under testdata/golden decodes, forever
// after, to the values it was written from: the log is a contract, not a
// dump of internal structs.
func TestGoldenEntries(t *testing.T) {
	seen := map[logentry.Kind]bool{}
	for _, c := range slices.Concat(goldenCases(), goldenLanguageCases(), goldenAnnotationCases(), goldenModelCases(), goldenScopeCases(),
		goldenNeighbourCases()) {
		t.Run(c.name, func(t *testing.T) {
			b := readGolden(t, c.name, c.entry.Encode)
			if len(b) < 2 || logentry.Kind(b[0]) != c.entry.Kind || b[1] != c.entry.Version() {
				t.Fatalf("file starts % x; want kind %d version %d", b[:min(2, len(b))], c.entry.Kind, c.entry.Version())
			}
			e, err := DecodeEntry(b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := readBack(e)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("decoded\n%+v\nwant\n%+v", got, c.want)
			}
			seen[e.Kind] = true
		})
	}
	for _, k := range logentry.Kinds() {
		if !seen[k] {
			t.Errorf("kind %s has no golden file", k)
		}
	}
}

// Entries whose chunks carry no language other than English are written
// byte for byte as before languages (version 1: the golden files written
// then), and those carrying one at version 2.
func TestEnglishEntriesUnchangedByLanguages(t *testing.T) {
	for _, c := range goldenCases() {
		old, err := os.ReadFile(goldenPath(c.name))
		if err != nil {
			t.Fatal(err)
		}
		e := c.entry
		if ops, ok := c.want.(index.Ops); ok && len(ops.Upserts) > 0 { // "en" spelled out changes nothing
			for i := range ops.Upserts {
				ops.Upserts[i].Language = "en"
			}
			if c.name == "base_part" {
				e = BasePartEntry(ops)
			} else {
				e = RepairEntry(ops)
			}
		}
		b, err := e.Encode()
		if err != nil || !bytes.Equal(b, old) {
			t.Errorf("%s: encodes to % x..., the file holds % x... (%v)", c.name, b[:min(8, len(b))], old[:min(8, len(old))], err)
		}
	}
	for _, c := range goldenLanguageCases() {
		if v := c.entry.Version(); v != 2 {
			t.Errorf("%s: version %d", c.name, v)
		}
	}
	for _, c := range goldenAnnotationCases() {
		if v := c.entry.Version(); v != 3 {
			t.Errorf("%s: version %d", c.name, v)
		}
	}
	for _, c := range goldenScopeCases() {
		if v := c.entry.Version(); v != 4 {
			t.Errorf("%s: version %d", c.name, v)
		}
	}
	for _, c := range goldenNeighbourCases() {
		if v := c.entry.Version(); v != 5 {
			t.Errorf("%s: version %d", c.name, v)
		}
	}
}

// Candidate neighbours that are not whole 16-byte ids are refused, like
// any malformed id.
func TestNeighboursMustBeWholeIDs(t *testing.T) {
	e := goldenNeighbourCases()[0].entry
	e.Payload.(*logentry.Changes).GetUpserts()[0].Neighbours = make([]byte, 17)
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readBack(d); err == nil {
		t.Fatal("17 bytes of neighbours read back without an error")
	}
}

// The snapshot header too.
func TestGoldenSnapshotHeader(t *testing.T) {
	b := readGolden(t, "snapshot_header", func() ([]byte, error) { return logentry.EncodeSnapshotHeader(goldenHeader()) })
	h, err := logentry.DecodeSnapshotHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := goldenHeader()
	if h.GetBased() != want.GetBased() || h.GetCommitTimeMs() != want.GetCommitTimeMs() || h.GetAppliedIndex() != want.GetAppliedIndex() ||
		len(h.GetMembers()) != 2 || memberIn(h.GetMembers()[1]) != memberIn(want.GetMembers()[1]) {
		t.Fatalf("decoded %v, want %v", h, want)
	}
}

// Unknown kinds and versions, and garbage, are clear errors.
func TestDecodeRefusesWhatItDoesNotKnow(t *testing.T) {
	changes, err := goldenCases()[0].entry.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, logentry.ErrMalformed},
		{"kind only", []byte{1}, logentry.ErrMalformed},
		{"unknown kind", append([]byte{99}, changes[1:]...), logentry.ErrUnknownKind},
		{"kind zero", append([]byte{0}, changes[1:]...), logentry.ErrUnknownKind},
		{"newer version", append([]byte{changes[0], 6}, changes[2:]...), logentry.ErrUnknownVersion},
		{"version zero", append([]byte{changes[0], 0}, changes[2:]...), logentry.ErrUnknownVersion},
		{"truncated payload", changes[:len(changes)-3], logentry.ErrMalformed},
		// How every gob-encoded entry of the old format starts.
		{"gob of the old Entry", []byte("?\x7f\x03\x01\x01\x05Entry\x01"), logentry.ErrUnknownKind},
	} {
		if _, err := DecodeEntry(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	hb, _ := logentry.EncodeSnapshotHeader(goldenHeader())
	hb[0] = 2
	if _, err := logentry.DecodeSnapshotHeader(hb); !errors.Is(err, logentry.ErrUnknownVersion) {
		t.Errorf("header version 2: %v", err)
	}
	if _, err := logentry.DecodeSnapshotHeader([]byte(`{"based":true}`)); !errors.Is(err, logentry.ErrUnknownVersion) || !bytes.Contains([]byte(err.Error()), []byte("JSON")) {
		t.Errorf("old JSON header: %v", err)
	}
}

// An id of the wrong length is refused, not padded.
func TestDecodeRefusesBadIDs(t *testing.T) {
	e := ChangesEntry(index.Ops{Deletes: []index.ID{gid(1)}}, 0)
	e.Payload.(*logentry.Changes).Deletes[0] = []byte{1, 2, 3}
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opsOfChanges(d.Payload.(*logentry.Changes)); err == nil {
		t.Fatal("a 3-byte chunk id was accepted")
	}
	if err := newTestFSM(t).ApplyEntry(d); err == nil {
		t.Fatal("the FSM applied a 3-byte chunk id")
	}
}

func newTestFSM(t testing.TB) *FSM {
	t.Helper()
	empty, err := index.New(index.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return NewFSM(index.NewLive(empty), index.DefaultConfig())
}

// Texts travel as bytes, exactly: a byte that is not UTF-8 (a database in
// another encoding) neither fails the proposal nor changes on the way.
func TestTextsTravelExactly(t *testing.T) {
	c := goldenChunks()[0]
	c.Title, c.Text = "Ballade \xff", "legato \xfe\x00 pedal"
	doc := index.Document{ID: gid(1), OwnerID: gid(2), Title: "\xc3("}
	b, err := ChangesEntry(index.Ops{Position: index.Position{LSN: 1}, Documents: []index.Document{doc}, Upserts: []index.Chunk{c}}, 0).Encode()
	if err != nil {
		t.Fatal(err)
	}
	e, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := opsOfChanges(e.Payload.(*logentry.Changes))
	if err != nil || ops.Upserts[0].Title != c.Title || ops.Upserts[0].Text != c.Text || ops.Documents[0].Title != doc.Title {
		t.Fatalf("read back %q %q %q (%v)", ops.Upserts[0].Title, ops.Upserts[0].Text, ops.Documents[0].Title, err)
	}
}

// Entries carrying vectors by model or a model state are written at
// version 4, which nodes from before models refuse.
func TestModelEntriesAtVersion4(t *testing.T) {
	for _, c := range goldenModelCases() {
		if v := c.entry.Version(); v != 4 {
			t.Errorf("%s: version %d", c.name, v)
		}
	}
}
