package text

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

const (
	snapMagic   = "SOSTBM25"
	snapVersion = 1
	maxTerm     = 1 << 16
)

// ErrSnapshot marks a text-index stream that cannot be read.
var ErrSnapshot = errors.New("text: bad snapshot")

// WriteTo writes the index (analysed postings, not texts) so that ReadFrom
// restores it without analysing anything. Searches go on meanwhile.
func (x *Index) WriteTo(w io.Writer) (int64, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<20)
	le := binary.LittleEndian
	buf := make([]byte, 0, 1<<16)
	flush := func() {
		bw.Write(buf) //nolint:errcheck // surfaced by Flush
		buf = buf[:0]
	}
	buf = append(buf, snapMagic...)
	buf = le.AppendUint32(buf, snapVersion)
	buf = le.AppendUint32(buf, uint32(len(x.ids)))
	flush()
	for doc, id := range x.ids {
		buf = append(buf, id[:]...)
		buf = le.AppendUint32(buf, x.lens[doc])
		if x.dead[doc] {
			buf = append(buf, 1)
		} else {
			buf = append(buf, 0)
		}
		if len(buf) > 60000 {
			flush()
		}
	}
	buf = le.AppendUint32(buf, uint32(len(x.terms)))
	flush()
	for tid, t := range x.terms {
		buf = le.AppendUint32(buf, uint32(len(t)))
		buf = append(buf, t...)
		buf = le.AppendUint32(buf, x.df[tid])
		buf = le.AppendUint32(buf, uint32(len(x.postings[tid])))
		for _, p := range x.postings[tid] {
			buf = le.AppendUint32(buf, p.doc)
			buf = le.AppendUint32(buf, p.tf)
			if len(buf) > 60000 {
				flush()
			}
		}
	}
	flush()
	err := bw.Flush()
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom reads an index written by WriteTo, checking it is consistent.
func ReadFrom(r io.Reader) (*Index, error) {
	x, err := New()
	if err != nil {
		return nil, err
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 1<<20)
	}
	d := &snapDecoder{br: br}
	nd, err := d.header()
	if err != nil {
		return nil, err
	}
	if err := d.documents(x, nd); err != nil {
		return nil, err
	}
	if err := d.terms(x, nd); err != nil {
		return nil, err
	}
	// The stream carries no groups: every document starts in group 0 until
	// the caller assigns them (SetGroups).
	x.group = make([]Group, nd)
	x.recount()
	x.relang() // the languages are in the term keys
	return x, nil
}

// snapDecoder reads a stream written by WriteTo, section by section.
type snapDecoder struct {
	br   *bufio.Reader
	four [4]byte
	raw  []byte // a term's postings, reused from term to term
}

// snapErr is an ErrSnapshot saying what is wrong.
func snapErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSnapshot, fmt.Sprintf(format, args...))
}

func (d *snapDecoder) u32() (uint32, error) {
	_, err := io.ReadFull(d.br, d.four[:])
	return binary.LittleEndian.Uint32(d.four[:]), err
}

// header reads the magic and the version, and returns the number of
// documents.
func (d *snapDecoder) header() (uint32, error) {
	le := binary.LittleEndian
	head := make([]byte, len(snapMagic)+8)
	if _, err := io.ReadFull(d.br, head); err != nil {
		return 0, snapErr("header: %v", err)
	}
	if string(head[:len(snapMagic)]) != snapMagic {
		return 0, snapErr("not a text index")
	}
	if v := le.Uint32(head[len(snapMagic):]); v != snapVersion {
		return 0, snapErr("version %d, this node reads %d", v, snapVersion)
	}
	return le.Uint32(head[len(snapMagic)+4:]), nil
}

// documents reads nd documents (id, length, tombstone) into x.
func (d *snapDecoder) documents(x *Index, nd uint32) error {
	rec := make([]byte, 16+4+1)
	x.ids = make([]ID, 0, nd)
	x.lens = make([]uint32, 0, nd)
	x.dead = make([]bool, 0, nd)
	for doc := uint32(0); doc < nd; doc++ {
		if _, err := io.ReadFull(d.br, rec); err != nil {
			return snapErr("documents: %v", err)
		}
		var id ID
		copy(id[:], rec)
		n := binary.LittleEndian.Uint32(rec[16:])
		dead := rec[20] == 1
		x.ids = append(x.ids, id)
		x.lens = append(x.lens, n)
		x.dead = append(x.dead, dead)
		if !dead {
			if _, dup := x.byID[id]; dup {
				return snapErr("document %x twice", id)
			}
			x.byID[id] = doc
			x.live++
			x.liveLen += uint64(n)
		}
	}
	return nil
}

// terms reads the terms and their postings into x; x's nd documents are
// read.
func (d *snapDecoder) terms(x *Index, nd uint32) error {
	x.docTerms = make([][]uint32, nd)
	nt, err := d.u32()
	if err != nil {
		return snapErr("terms: %v", err)
	}
	for tid := uint32(0); tid < nt; tid++ {
		if err := d.term(x, tid, nd); err != nil {
			return err
		}
	}
	return nil
}

// term reads term tid (its text, document frequency and postings) into x.
func (d *snapDecoder) term(x *Index, tid, nd uint32) error {
	tl, err := d.u32()
	if err != nil || tl > maxTerm {
		return snapErr("term %d: length %d: %v", tid, tl, err)
	}
	tb := make([]byte, tl)
	if _, err := io.ReadFull(d.br, tb); err != nil {
		return snapErr("term %d: %v", tid, err)
	}
	df, err1 := d.u32()
	np, err2 := d.u32()
	if err1 != nil || err2 != nil || np > nd || df > np {
		return snapErr("term %q: %d of %d postings", tb, df, np)
	}
	list, live, err := d.postings(x, tb, tid, np)
	if err != nil {
		return err
	}
	if live != df {
		return snapErr("term %q: %d live postings, recorded %d", tb, live, df)
	}
	t := string(tb)
	if !Supports(langOfKey(t)) {
		return snapErr("term %q: a language this node has no analyzer for", t)
	}
	if _, dup := x.termIDs[t]; dup {
		return snapErr("term %q twice", t)
	}
	x.termIDs[t] = tid
	x.terms = append(x.terms, t)
	x.postings = append(x.postings, list)
	x.df = append(x.df, df)
	return nil
}

// postings reads term tid's np postings, checking they are in order, and
// indexes the live ones under their documents; it returns them and how
// many are live.
func (d *snapDecoder) postings(x *Index, term []byte, tid, np uint32) ([]posting, uint32, error) {
	if cap(d.raw) < int(np)*8 {
		d.raw = make([]byte, int(np)*8)
	}
	raw := d.raw[:np*8]
	if _, err := io.ReadFull(d.br, raw); err != nil {
		return nil, 0, snapErr("term %q postings: %v", term, err)
	}
	le := binary.LittleEndian
	nd := uint32(len(x.ids))
	list := make([]posting, np)
	live := uint32(0)
	for i := range list {
		p := posting{doc: le.Uint32(raw[i*8:]), tf: le.Uint32(raw[i*8+4:])}
		if p.doc >= nd || (i > 0 && p.doc <= list[i-1].doc) {
			return nil, 0, snapErr("term %q: posting for document %d out of order", term, p.doc)
		}
		list[i] = p
		if !x.dead[p.doc] {
			live++
			x.docTerms[p.doc] = append(x.docTerms[p.doc], tid)
		}
	}
	return list, live, nil
}
