package index

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sync/atomic"

	"github.com/sostenuto/sostenuto/index/text"
	"github.com/sostenuto/sostenuto/index/vector"
)

// Snapshot format, version 4, little-endian:
//
//	"SOSTSNAP" u32 version  u64 lsn
//	the embedding models (v4): u32+active u32 active_dim
//	  u32+building u32 building_dim u32+column
//	u32 documents × (id[16] owner[16] u8 public u32+title)
//	u32 projects × (id[16] owner[16] u32+title u32 grantees × id[16])   (v3)
//	u32 chunks × (id[16] document[16] owner[16] i64 version i32 page_start
//	              i32 page_end u32+title u32+text
//	              u8 kind project[16] author[16])                       (v3)
//	the HNSW graph (vector.WriteTo), vectors included
//	the BM25 index (text.WriteTo), postings included
//	(v4) u8 1 and the graph being built (vector.WriteTo), or u8 0
//	u32 CRC-32C of everything before
//
// Both indexes travel whole, so a restore neither rebuilds the graph nor
// analyses a text. Version 3 (no models, no graph being built) is still
// read, as an engine whose models are not named yet; version 2 (before
// annotations: no projects section, no kind, project or author per chunk)
// too: every chunk of it is a knowledge chunk. (Version 1 carried no BM25
// index; it is refused.)
const (
	snapMagic   = "SOSTSNAP"
	snapVersion = 4
	snapOldest  = 2
	snapModels  = 4 // the first version with the models and the build
	maxField    = 1 << 24
)

// ErrSnapshot marks a snapshot that is not ours, of another version, or
// damaged.
var ErrSnapshot = errors.New("index: bad snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteSnapshot writes the whole engine to w, as it is when called:
// writes wait only while its read view is captured, not while it streams.
func (e *Engine) WriteSnapshot(w io.Writer) error {
	return e.ReadView().WriteSnapshot(w)
}

// writeSnapshot writes what the view holds; no engine lock is held.
func (v *ReadView) writeSnapshot(w io.Writer) error {
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 1<<20)
	if err := v.writeMaps(bw); err != nil {
		return fmt.Errorf("index: snapshot: %w", err)
	}
	if _, err := v.vec.WriteTo(bw); err != nil {
		return fmt.Errorf("index: snapshot graph: %w", err)
	}
	if _, err := v.text.WriteTo(bw); err != nil {
		return fmt.Errorf("index: snapshot text index: %w", err)
	}
	if err := writeBuild(bw, v.build); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("index: snapshot: %w", err)
	}
	return binary.Write(w, binary.LittleEndian, crc.Sum32())
}

// writeMaps writes the header, the documents and the chunks.
func (v *ReadView) writeMaps(bw *bufio.Writer) error {
	var err error
	put := func(x any) {
		if err == nil {
			err = binary.Write(bw, binary.LittleEndian, x)
		}
	}
	putStr := func(s string) {
		put(uint32(len(s)))
		if err == nil {
			_, err = bw.WriteString(s)
		}
	}
	bw.WriteString(snapMagic) //nolint:errcheck // surfaced by Flush
	put(uint32(snapVersion))
	put(v.pos.LSN)
	m := v.model
	putStr(m.Active)
	put(uint32(m.ActiveDim))
	putStr(m.Building)
	put(uint32(m.BuildingDim))
	putStr(m.Column)
	put(uint32(len(v.docs)))
	for _, d := range v.docs {
		put(d.ID)
		put(d.OwnerID)
		put(d.IsPublic)
		putStr(d.Title)
	}
	put(uint32(len(v.projects)))
	for _, p := range v.projects {
		put(p.ID)
		put(p.OwnerID)
		putStr(p.Title)
		put(uint32(len(p.grantees)))
		for _, u := range p.grantees {
			put(u)
		}
	}
	put(uint32(len(v.chunks)))
	for _, c := range v.chunks {
		put(c.ID)
		put(c.DocumentID)
		put(c.OwnerID)
		put(c.Version)
		put(int32(c.PageStart))
		put(int32(c.PageEnd))
		putStr(c.Title)
		putStr(c.Text)
		put(uint8(c.Kind))
		put(c.ProjectID)
		put(c.AuthorID)
	}
	return err
}

// crcReader hashes what is read through it.
type crcReader struct {
	r io.Reader
	h hash.Hash32
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	return n, err
}

// ReadSnapshot builds a fresh engine from a snapshot, checking its version
// and checksum.
func ReadSnapshot(cfg Config, r io.Reader) (*Engine, error) {
	// The checksum trails the data: read through a hasher that lags four
	// bytes behind, so the trailer itself is not hashed.
	tr := &trailerReader{r: r}
	cr := &crcReader{r: tr, h: crc32.New(castagnoli)}
	sr := &snapReader{br: bufio.NewReaderSize(cr, 1<<20)}
	lsn, err := sr.header()
	if err != nil {
		return nil, err
	}
	e, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if sr.version >= snapModels {
		e.model = sr.model()
	}
	sr.documents(e)
	if sr.version >= 3 {
		sr.projects(e)
	}
	sr.chunks(e)
	if sr.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSnapshot, sr.err)
	}
	g, tx, build, err := sr.indexes()
	if err != nil {
		return nil, err
	}
	e.build = build
	if sum, ok := tr.trailer(); !ok || sum != cr.h.Sum32() {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrSnapshot)
	}
	if err := e.checkIndexes(cfg, g, tx); err != nil {
		return nil, err
	}
	e.vec = g
	e.text = tx
	tx.SetGroups(func(id text.ID) text.Group { return e.chunkGroup(e.chunks[ID(id)]) })
	e.public = e.countPublic()
	e.pos = Position{LSN: lsn}
	e.dataPos = e.pos
	return e, nil
}

// snapReader decodes a snapshot's fields, keeping the first error: after
// one, every read does nothing.
type snapReader struct {
	br      *bufio.Reader
	err     error
	version uint32
}

func (s *snapReader) get(v any) {
	if s.err == nil {
		s.err = binary.Read(s.br, binary.LittleEndian, v)
	}
}

func (s *snapReader) getStr() string {
	var n uint32
	s.get(&n)
	if s.err != nil || n > maxField {
		if s.err == nil {
			s.err = fmt.Errorf("field of %d bytes", n)
		}
		return ""
	}
	b := make([]byte, n)
	_, s.err = io.ReadFull(s.br, b)
	return string(b)
}

// header reads the magic, the version and the position. A short header
// is left in s.err, reported after the sections.
func (s *snapReader) header() (lsn LSN, err error) {
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(s.br, magic); err != nil || string(magic) != snapMagic {
		return 0, fmt.Errorf("%w: not a Sostenuto index snapshot", ErrSnapshot)
	}
	s.get(&s.version)
	s.get(&lsn)
	if s.err == nil && (s.version < snapOldest || s.version > snapVersion) {
		return 0, fmt.Errorf("%w: version %d, this node reads %d-%d", ErrSnapshot, s.version, snapOldest, snapVersion)
	}
	return lsn, nil
}

// model reads the embedding models (version 4).
func (s *snapReader) model() ModelState {
	var m ModelState
	var ad, bd uint32
	m.Active = s.getStr()
	s.get(&ad)
	m.Building = s.getStr()
	s.get(&bd)
	m.Column = s.getStr()
	m.ActiveDim, m.BuildingDim = int(ad), int(bd)
	return m
}

// writeBuild writes the graph being built, if any, after a flag.
func writeBuild(w io.Writer, build *vector.Index) error {
	var flag uint8
	if build != nil {
		flag = 1
	}
	if err := binary.Write(w, binary.LittleEndian, flag); err != nil {
		return fmt.Errorf("index: snapshot: %w", err)
	}
	if build == nil {
		return nil
	}
	if _, err := build.WriteTo(w); err != nil {
		return fmt.Errorf("index: snapshot building graph: %w", err)
	}
	return nil
}

// readBuild reads the graph being built (version 4): nil when none.
func (s *snapReader) readBuild() (*vector.Index, error) {
	var flag uint8
	if err := binary.Read(s.br, binary.LittleEndian, &flag); err != nil || flag > 1 {
		return nil, fmt.Errorf("%w: building graph flag: %v", ErrSnapshot, err)
	}
	if flag == 0 {
		return nil, nil
	}
	g, err := vector.ReadFrom(s.br)
	if err != nil {
		return nil, fmt.Errorf("%w: building graph: %v", ErrSnapshot, err)
	}
	return g, nil
}

// documents reads the documents section into e.
func (s *snapReader) documents(e *Engine) {
	var nd uint32
	s.get(&nd)
	for i := uint32(0); i < nd && s.err == nil; i++ {
		var d Document
		s.get(&d.ID)
		s.get(&d.OwnerID)
		s.get(&d.IsPublic)
		d.Title = s.getStr()
		e.setDocument(d, nil)
	}
}

// chunks reads the chunks section into e.
func (s *snapReader) chunks(e *Engine) {
	var nc uint32
	s.get(&nc)
	for i := uint32(0); i < nc && s.err == nil; i++ {
		c := &Chunk{}
		var ps, pe int32
		s.get(&c.ID)
		s.get(&c.DocumentID)
		s.get(&c.OwnerID)
		s.get(&c.Version)
		s.get(&ps)
		s.get(&pe)
		c.PageStart, c.PageEnd = int(ps), int(pe)
		c.Title = s.getStr()
		c.Text = s.getStr()
		if s.version >= 3 {
			var kind uint8
			s.get(&kind)
			c.Kind = Kind(kind)
			s.get(&c.ProjectID)
			s.get(&c.AuthorID)
		}
		if s.err != nil {
			return
		}
		e.chunks[c.ID] = c
		switch c.Kind {
		case KindKnowledge:
			e.doc(c.DocumentID, c.OwnerID).chunks[c.ID] = true
		case KindAnnotation:
			e.project(c.ProjectID).chunks[c.ID] = true
		default:
			s.err = fmt.Errorf("chunk %x of kind %d", c.ID, c.Kind)
		}
	}
}

// projects reads the projects section (version 3) into e.
func (s *snapReader) projects(e *Engine) {
	var np uint32
	s.get(&np)
	for i := uint32(0); i < np && s.err == nil; i++ {
		var p Project
		var ng uint32
		s.get(&p.ID)
		s.get(&p.OwnerID)
		p.Title = s.getStr()
		s.get(&ng)
		if s.err == nil && ng > maxField {
			s.err = fmt.Errorf("project %x with %d grantees", p.ID, ng)
		}
		if s.err != nil {
			return
		}
		e.setProject(p)
		for j := uint32(0); j < ng && s.err == nil; j++ {
			var u ID
			s.get(&u)
			e.applyPrincipals(Ops{Grants: []Grant{{ProjectID: p.ID, UserID: u}}})
		}
	}
}

// indexes reads the HNSW graph, the BM25 index and (version 4) the graph
// being built, which end the data.
func (s *snapReader) indexes() (g *vector.Index, tx *text.Index, build *vector.Index, err error) {
	if g, err = vector.ReadFrom(s.br); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	if tx, err = text.ReadFrom(s.br); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	if s.version >= snapModels {
		if build, err = s.readBuild(); err != nil {
			return nil, nil, nil, err
		}
	}
	if _, err := s.br.Peek(1); err != io.EOF {
		return nil, nil, nil, fmt.Errorf("%w: trailing data", ErrSnapshot)
	}
	return g, tx, build, nil
}

// checkIndexes checks that the graph has this node's dimensions and that
// both indexes hold exactly e's chunks.
func (e *Engine) checkIndexes(cfg Config, g *vector.Index, tx *text.Index) error {
	want := cfg.Vector.Dim
	if e.model.ActiveDim > 0 {
		want = e.model.ActiveDim
	}
	if g.Config().Dim != want {
		return fmt.Errorf("%w: %d dimensions, this node uses %d", ErrSnapshot, g.Config().Dim, want)
	}
	if (e.build == nil) != (e.model.Building == "") {
		return fmt.Errorf("%w: building model %q without its graph, or the reverse", ErrSnapshot, e.model.Building)
	}
	for id, c := range e.chunks {
		if !g.Has(vector.ID(id)) && e.columnToActive() {
			return fmt.Errorf("%w: chunk %x has no vector", ErrSnapshot, c.ID)
		}
		if !tx.Has(text.ID(id)) {
			return fmt.Errorf("%w: chunk %x is not in the text index", ErrSnapshot, c.ID)
		}
	}
	if tx.Count() != len(e.chunks) {
		return fmt.Errorf("%w: text index holds %d documents for %d chunks", ErrSnapshot, tx.Count(), len(e.chunks))
	}
	return nil
}

// trailerReader passes a stream through but holds back its last four bytes
// (the checksum).
type trailerReader struct {
	r    io.Reader
	tail []byte
	eof  bool
}

func (t *trailerReader) Read(p []byte) (int, error) {
	for !t.eof && len(t.tail) < 4+len(p) {
		buf := make([]byte, max(len(p), 4096))
		n, err := t.r.Read(buf)
		t.tail = append(t.tail, buf[:n]...)
		if err == io.EOF {
			t.eof = true
		} else if err != nil {
			return 0, err
		}
		if n == 0 && !t.eof {
			break
		}
	}
	avail := len(t.tail) - 4
	if avail <= 0 {
		if t.eof {
			return 0, io.EOF
		}
		return 0, nil
	}
	n := copy(p, t.tail[:avail])
	t.tail = t.tail[n:]
	return n, nil
}

// trailer returns the held-back checksum; ok is false for a stream too
// short to have one.
func (t *trailerReader) trailer() (uint32, bool) {
	if len(t.tail) != 4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(t.tail), true
}

// Live holds the engine a node serves from; Restore swaps in a fresh one
// whole, so searches see the old engine or the new, never a mix.
type Live struct {
	p atomic.Pointer[Engine]
}

// NewLive holds e.
func NewLive(e *Engine) *Live {
	l := &Live{}
	l.p.Store(e)
	return l
}

// Engine returns the current engine.
func (l *Live) Engine() *Engine { return l.p.Load() }

// WaitApplied returns the current engine once it has applied lsn, woken
// by the applier (and by a restore swapping engines), not by polling; it
// gives up when ctx ends.
func (l *Live) WaitApplied(ctx context.Context, lsn LSN) (*Engine, error) {
	for {
		e := l.Engine()
		pos, moved := e.watch()
		if pos.LSN >= lsn {
			return e, nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Swap puts e in place of the current engine and closes the old one.
func (l *Live) Swap(e *Engine) {
	if old := l.p.Swap(e); old != nil && old != e {
		old.Close()
	}
}

// Restore reads a snapshot into a fresh engine and swaps it in; the old
// engine is closed.
func (l *Live) Restore(cfg Config, r io.Reader) error {
	e, err := ReadSnapshot(cfg, r)
	if err != nil {
		return err
	}
	if old := l.p.Swap(e); old != nil {
		old.Close()
	}
	return nil
}

// WriteTextIndex writes the BM25 index alone, as a snapshot carries it
// (benchmarks size it with this).
func (e *Engine) WriteTextIndex(w io.Writer) error {
	_, err := e.text.WriteTo(w)
	return err
}
