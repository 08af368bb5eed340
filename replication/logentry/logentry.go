// Package logentry is the Raft log's contract: the entry types, their
// kinds and versions, and how they are framed. Each entry is
//
//	[kind byte][version byte][payload]
//
// the payload a protobuf message of the kind's type (logentry.proto). A
// reader refuses a kind or a version it does not know, clearly, instead of
// guessing. The types are ours, not the index's: renaming a field of
// index.Chunk changes nothing here. replication converts between them and
// index.Ops. See replication/DESIGN.md for the table of kinds.
package logentry

//go:generate protoc --go_out=. --go_opt=paths=source_relative logentry.proto

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Kind says what an entry carries.
type Kind byte

// The kinds of log entries. Their numbers are part of the log format and
// never change meaning.
const (
	KindChanges   Kind = 1 // *Changes: one committed PostgreSQL transaction
	KindBaseBegin Kind = 2 // *BaseBegin: a fresh base starts
	KindBasePart  Kind = 3 // *BasePart: part of a base
	KindBaseEnd   Kind = 4 // *BaseEnd: the base is complete at its position
	KindMember    Kind = 5 // *Member: a node's addresses
	KindRepair    Kind = 6 // *Repair: anti-entropy repairs, no position
	KindKeepalive Kind = 7 // *Keepalive: the position moves, nothing else
)

// MaxEntryBytes bounds an encoded entry (and a snapshot header): larger
// ones are refused when written and when read, so a garbled length cannot
// make a reader allocate without bound (decoding allocates in proportion
// to the entry's length).
const MaxEntryBytes = 256 << 20

// Errors of decoding.
var (
	// ErrUnknownKind marks an entry of a kind this node does not know.
	ErrUnknownKind = errors.New("logentry: unknown kind")
	// ErrUnknownVersion marks an entry (or snapshot header) of a version
	// this node does not read.
	ErrUnknownVersion = errors.New("logentry: unknown version")
	// ErrMalformed marks bytes that are not an entry.
	ErrMalformed = errors.New("logentry: malformed")
)

// kindSpec is what the format says of one kind.
type kindSpec struct {
	name    string
	version byte // the version this node writes (and the oldest it reads)
	// newest is the newest version this node reads; it writes it only for
	// a payload an older version's reader would misread (languages).
	newest byte
	empty  func() proto.Message
}

// Versions of the kinds that carry chunks: 2 adds Chunk.language. An
// entry whose chunks are all English is written at version 1, byte for
// byte what nodes before languages wrote; one carrying a language is
// written at version 2, which those nodes refuse (ErrUnknownVersion)
// rather than analyse its text as English.
//
// Version 3 adds annotations: projects, grants, revokes, deleted projects
// and annotation chunks. An entry carrying any of them is written at
// version 3 (nodes before annotations would read it without error and
// drop the annotations, holding another index than their peers for good);
// one without them is written as before.
//
// Version 4 adds embedding models (Embedding, ModelState) and, for
// changes, scope changes (Changes.scope_changes): an entry carrying any is
// written at version 4, which older nodes refuse rather than drop the
// vectors of a model being built, miss a switch, or keep serving a revoked
// student's cached scope; one without them is written as before.
//
// Version 5 adds Chunk.neighbours, the candidate neighbours the leader
// computed for a changes entry's new chunks: an entry carrying any is
// written at version 5 of changes. A node from before would ignore the
// field and search its own graph (which is correct, only slower); the
// version is still raised so that no node applies a log it does not fully
// read, as for every field before it.
const (
	chunkV1 byte = 1
	chunkV2 byte = 2
	chunkV3 byte = 3
	chunkV4 byte = 4
	chunkV5 byte = 5
)

// spec returns the format of kind k.
func spec(k Kind) (kindSpec, bool) {
	switch k {
	case KindChanges:
		return kindSpec{"changes", chunkV1, chunkV5, func() proto.Message { return &Changes{} }}, true
	case KindBaseBegin:
		return kindSpec{"base-begin", 1, 1, func() proto.Message { return &BaseBegin{} }}, true
	case KindBasePart:
		return kindSpec{"base-part", chunkV1, chunkV4, func() proto.Message { return &BasePart{} }}, true
	case KindBaseEnd:
		return kindSpec{"base-end", 1, 1, func() proto.Message { return &BaseEnd{} }}, true
	case KindMember:
		return kindSpec{"member", 1, 1, func() proto.Message { return &Member{} }}, true
	case KindRepair:
		return kindSpec{"repair", chunkV1, chunkV4, func() proto.Message { return &Repair{} }}, true
	case KindKeepalive:
		return kindSpec{"keepalive", 1, 1, func() proto.Message { return &Keepalive{} }}, true
	}
	return kindSpec{}, false
}

// Kinds lists every kind this node knows, in order.
func Kinds() []Kind {
	return []Kind{KindChanges, KindBaseBegin, KindBasePart, KindBaseEnd, KindMember, KindRepair, KindKeepalive}
}

// String names the kind ("changes", "base-part", ...).
func (k Kind) String() string {
	if s, ok := spec(k); ok {
		return s.name
	}
	return fmt.Sprintf("kind-%d", byte(k))
}

// Version is the version of k this node writes for a payload without
// languages (0 for an unknown kind); Entry.Version is the one it writes
// for a given payload.
func (k Kind) Version() byte {
	s, _ := spec(k)
	return s.version
}

// Version is the version Encode writes e at: its kind's; 2 when its
// chunks carry a language; 3 when it carries annotations or principals;
// 4 when it carries embedding models or scope changes; 5 when its chunks
// carry candidate neighbours.
func (e Entry) Version() byte {
	s, _ := spec(e.Kind)
	switch {
	case s.newest >= chunkV5 && carriesNeighbours(e.Payload):
		return chunkV5
	case s.newest >= chunkV4 && carriesVersion4(e.Payload):
		return chunkV4
	case s.newest >= chunkV3 && carriesAnnotations(e.Payload):
		return chunkV3
	case s.newest >= chunkV2 && carriesLanguage(e.Payload):
		return chunkV2
	}
	return s.version
}

// carriesAnnotations reports whether a payload holds anything of version
// 3: projects, grants, revokes, deleted projects, annotation chunks.
func carriesAnnotations(p proto.Message) bool {
	switch m := p.(type) {
	case *Changes:
		return len(m.GetProjects())+len(m.GetGrants())+len(m.GetRevokes())+len(m.GetDeleteProjects())+len(m.GetAnnotationUpserts()) > 0
	case *BasePart:
		return len(m.GetProjects())+len(m.GetGrants())+len(m.GetAnnotationUpserts()) > 0
	case *Repair:
		return len(m.GetProjects())+len(m.GetGrants())+len(m.GetRevokes())+len(m.GetDeleteProjects())+len(m.GetAnnotationUpserts()) > 0
	}
	return false
}

// carriesVersion4 reports whether a payload holds embeddings by model, a
// model state or scope changes.
func carriesVersion4(p proto.Message) bool {
	switch m := p.(type) {
	case *Changes:
		return len(m.GetEmbeddings()) > 0 || m.GetModelState() != nil || len(m.GetScopeChanges()) > 0
	case *BasePart:
		return len(m.GetEmbeddings()) > 0 || m.GetModelState() != nil
	case *Repair:
		return len(m.GetEmbeddings()) > 0
	}
	return false
}

// carriesNeighbours reports whether a changes payload holds a chunk with
// candidate neighbours.
func carriesNeighbours(p proto.Message) bool {
	m, ok := p.(*Changes)
	if !ok {
		return false
	}
	for _, c := range m.GetUpserts() {
		if len(c.GetNeighbours()) > 0 {
			return true
		}
	}
	return false
}

// carriesLanguage reports whether a payload holds a chunk with a
// language.
func carriesLanguage(p proto.Message) bool {
	var cs []*Chunk
	switch m := p.(type) {
	case *Changes:
		cs = m.GetUpserts()
	case *BasePart:
		cs = m.GetUpserts()
	case *Repair:
		cs = m.GetUpserts()
	}
	for _, c := range cs {
		if c.GetLanguage() != "" {
			return true
		}
	}
	return false
}

// Entry is one Raft log entry: its kind and the kind's message.
type Entry struct {
	Kind Kind
	// Payload is *Changes for KindChanges, *BaseBegin for KindBaseBegin,
	// and so on (see the kinds).
	Payload proto.Message
}

// Encode frames the entry: kind, version, payload.
func (e Entry) Encode() ([]byte, error) {
	s, ok := spec(e.Kind)
	if !ok {
		return nil, fmt.Errorf("logentry: encode: %w %d", ErrUnknownKind, byte(e.Kind))
	}
	if e.Payload == nil || e.Payload.ProtoReflect().Descriptor() != s.empty().ProtoReflect().Descriptor() {
		return nil, fmt.Errorf("logentry: encode: a %s entry carries %T", s.name, e.Payload)
	}
	out, err := proto.MarshalOptions{}.MarshalAppend([]byte{byte(e.Kind), e.Version()}, e.Payload)
	if err != nil {
		return nil, fmt.Errorf("logentry: encode %s: %w", s.name, err)
	}
	if len(out) > MaxEntryBytes {
		return nil, fmt.Errorf("logentry: encode %s: %d bytes, more than %d", s.name, len(out), MaxEntryBytes)
	}
	return out, nil
}

// Decode reads an entry written by Encode. An unknown kind or version is
// an error wrapping ErrUnknownKind or ErrUnknownVersion; anything else that
// does not parse wraps ErrMalformed.
func Decode(b []byte) (Entry, error) {
	if len(b) < 2 {
		return Entry{}, fmt.Errorf("logentry: decode: %w: %d bytes, no kind and version", ErrMalformed, len(b))
	}
	if len(b) > MaxEntryBytes {
		return Entry{}, fmt.Errorf("logentry: decode: %w: %d bytes, more than %d", ErrMalformed, len(b), MaxEntryBytes)
	}
	k, v := Kind(b[0]), b[1]
	s, ok := spec(k)
	if !ok {
		return Entry{}, fmt.Errorf("logentry: decode: %w %d (this node knows 1-%d)", ErrUnknownKind, byte(k), len(Kinds()))
	}
	if v < s.version || v > s.newest {
		return Entry{}, fmt.Errorf("logentry: decode %s: %w %d (this node reads %d-%d)", s.name, ErrUnknownVersion, v, s.version, s.newest)
	}
	p := s.empty()
	if err := proto.Unmarshal(b[2:], p); err != nil {
		return Entry{}, fmt.Errorf("logentry: decode %s: %w: %w", s.name, ErrMalformed, err)
	}
	return Entry{Kind: k, Payload: p}, nil
}

// SnapshotHeaderVersion is the version of the snapshot header this node
// writes and reads.
const SnapshotHeaderVersion byte = 1

// EncodeSnapshotHeader frames a snapshot header: version, payload.
func EncodeSnapshotHeader(h *SnapshotHeader) ([]byte, error) {
	out, err := proto.MarshalOptions{}.MarshalAppend([]byte{SnapshotHeaderVersion}, h)
	if err != nil {
		return nil, fmt.Errorf("logentry: encode snapshot header: %w", err)
	}
	if len(out) > MaxEntryBytes {
		return nil, fmt.Errorf("logentry: encode snapshot header: %d bytes, more than %d", len(out), MaxEntryBytes)
	}
	return out, nil
}

// DecodeSnapshotHeader reads a header written by EncodeSnapshotHeader.
func DecodeSnapshotHeader(b []byte) (*SnapshotHeader, error) {
	if len(b) < 1 {
		return nil, fmt.Errorf("logentry: decode snapshot header: %w: empty", ErrMalformed)
	}
	if len(b) > MaxEntryBytes {
		return nil, fmt.Errorf("logentry: decode snapshot header: %w: %d bytes", ErrMalformed, len(b))
	}
	if b[0] != SnapshotHeaderVersion {
		hint := ""
		if b[0] == '{' {
			hint = "; a JSON header: the snapshot predates the versioned log, remove this node's Raft directory"
		}
		return nil, fmt.Errorf("logentry: decode snapshot header: %w %d (this node reads %d)%s", ErrUnknownVersion, b[0], SnapshotHeaderVersion, hint)
	}
	h := &SnapshotHeader{}
	if err := proto.Unmarshal(b[1:], h); err != nil {
		return nil, fmt.Errorf("logentry: decode snapshot header: %w: %w", ErrMalformed, err)
	}
	return h, nil
}
