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

// Snapshot format, version 3, little-endian:
//
//	"SOSTSNAP" u32 version  u64 lsn
//	the embedding models (version 3): u32+active u32 active_dim
//	  u32+building u32 building_dim u32+column
//	u32 documents × (id[16] owner[16] u8 public u32+title)
//	u32 chunks × (id[16] document[16] owner[16] i64 version i32 page_start
//	              i32 page_end u32+title u32+text)
//	the HNSW graph (vector.WriteTo), vectors included
//	the BM25 index (text.WriteTo), postings included
//	(version 3) u8 1 and the graph being built (vector.WriteTo), or u8 0
//	u32 CRC-32C of everything before
//
// Both indexes travel whole, so a restore neither rebuilds the graph nor
// analyses a text. Version 2 (no models, no graph being built) is still
// read, as an engine whose models are not named yet. (Version 1 carried
// no BM25 index; it is refused.)
const (
	snapMagic   = "SOSTSNAP"
	snapVersion = 3
	snapV2      = 2
	maxField    = 1 << 24
)

// ErrSnapshot marks a snapshot that is not ours, of another version, or
// damaged.
var ErrSnapshot = errors.New("index: bad snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteSnapshot writes the whole engine to w. Writes are held off while it
// runs (searches are not).
func (e *Engine) WriteSnapshot(w io.Writer) error {
	v := e.ReadView()
	defer v.Release()
	return v.WriteSnapshot(w)
}

// writeSnapshot writes the engine; the writer lock is held (ReadView).
func (e *Engine) writeSnapshot(w io.Writer) error {
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 1<<20)
	var err error
	put := func(v any) {
		if err == nil {
			err = binary.Write(bw, binary.LittleEndian, v)
		}
	}
	putStr := func(s string) {
		put(uint32(len(s)))
		if err == nil {
			_, err = bw.WriteString(s)
		}
	}
	e.mu.RLock()
	bw.WriteString(snapMagic) //nolint:errcheck // surfaced by Flush
	put(uint32(snapVersion))
	put(e.pos.LSN)
	m := e.model
	putStr(m.Active)
	put(uint32(m.ActiveDim))
	putStr(m.Building)
	put(uint32(m.BuildingDim))
	putStr(m.Column)
	build := e.build
	put(uint32(len(e.docs)))
	for _, d := range e.docs {
		put(d.ID)
		put(d.OwnerID)
		put(d.IsPublic)
		putStr(d.Title)
	}
	put(uint32(len(e.chunks)))
	for _, c := range e.chunks {
		put(c.ID)
		put(c.DocumentID)
		put(c.OwnerID)
		put(c.Version)
		put(int32(c.PageStart))
		put(int32(c.PageEnd))
		putStr(c.Title)
		putStr(c.Text)
	}
	e.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("index: snapshot: %w", err)
	}
	if _, err := e.graph().WriteTo(bw); err != nil {
		return fmt.Errorf("index: snapshot graph: %w", err)
	}
	if _, err := e.text.WriteTo(bw); err != nil {
		return fmt.Errorf("index: snapshot text index: %w", err)
	}
	if err := writeBuild(bw, build); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("index: snapshot: %w", err)
	}
	return binary.Write(w, binary.LittleEndian, crc.Sum32())
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
	lsn, version, err := sr.header()
	if err != nil {
		return nil, err
	}
	e, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if version >= snapVersion {
		e.model = sr.model()
	}
	sr.documents(e)
	sr.chunks(e)
	if sr.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSnapshot, sr.err)
	}
	g, tx, build, err := sr.indexes(version)
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
	tx.SetGroups(func(id text.ID) text.Group { return e.group(e.docs[e.chunks[ID(id)].DocumentID]) })
	e.public = e.countPublic()
	e.pos = Position{LSN: lsn}
	e.dataPos = e.pos
	return e, nil
}

// snapReader decodes a snapshot's fields, keeping the first error: after
// one, every read does nothing.
type snapReader struct {
	br  *bufio.Reader
	err error
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
func (s *snapReader) header() (lsn LSN, version uint32, err error) {
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(s.br, magic); err != nil || string(magic) != snapMagic {
		return 0, 0, fmt.Errorf("%w: not a Sostenuto index snapshot", ErrSnapshot)
	}
	s.get(&version)
	s.get(&lsn)
	if s.err == nil && version != snapVersion && version != snapV2 {
		return 0, 0, fmt.Errorf("%w: version %d, this node reads %d-%d", ErrSnapshot, version, snapV2, snapVersion)
	}
	return lsn, version, nil
}

// model reads the embedding models (version 3).
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

// readBuild reads the graph being built (version 3): nil when none.
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
		e.setDocument(d)
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
		e.chunks[c.ID] = c
		e.doc(c.DocumentID, c.OwnerID).chunks[c.ID] = true
	}
}

// indexes reads the HNSW graph, the BM25 index and (version 3) the graph
// being built, which end the data.
func (s *snapReader) indexes(version uint32) (g *vector.Index, tx *text.Index, build *vector.Index, err error) {
	if g, err = vector.ReadFrom(s.br); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	if tx, err = text.ReadFrom(s.br); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	if version >= snapVersion {
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
