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
	le := binary.LittleEndian
	fail := func(format string, args ...any) (*Index, error) {
		return nil, fmt.Errorf("%w: %s", ErrSnapshot, fmt.Sprintf(format, args...))
	}
	head := make([]byte, len(snapMagic)+8)
	if _, err := io.ReadFull(br, head); err != nil {
		return fail("header: %v", err)
	}
	if string(head[:len(snapMagic)]) != snapMagic {
		return fail("not a text index")
	}
	if v := le.Uint32(head[len(snapMagic):]); v != snapVersion {
		return fail("version %d, this node reads %d", v, snapVersion)
	}
	nd := le.Uint32(head[len(snapMagic)+4:])
	rec := make([]byte, 16+4+1)
	x.ids = make([]ID, 0, nd)
	x.lens = make([]uint32, 0, nd)
	x.dead = make([]bool, 0, nd)
	for doc := uint32(0); doc < nd; doc++ {
		if _, err := io.ReadFull(br, rec); err != nil {
			return fail("documents: %v", err)
		}
		var id ID
		copy(id[:], rec)
		n := le.Uint32(rec[16:])
		dead := rec[20] == 1
		x.ids = append(x.ids, id)
		x.lens = append(x.lens, n)
		x.dead = append(x.dead, dead)
		if !dead {
			if _, dup := x.byID[id]; dup {
				return fail("document %x twice", id)
			}
			x.byID[id] = doc
			x.live++
			x.liveLen += uint64(n)
		}
	}
	x.docTerms = make([][]uint32, nd)
	var four [4]byte
	u32 := func() (uint32, error) {
		_, err := io.ReadFull(br, four[:])
		return le.Uint32(four[:]), err
	}
	nt, err := u32()
	if err != nil {
		return fail("terms: %v", err)
	}
	var raw []byte
	for tid := uint32(0); tid < nt; tid++ {
		tl, err := u32()
		if err != nil || tl > maxTerm {
			return fail("term %d: length %d: %v", tid, tl, err)
		}
		tb := make([]byte, tl)
		if _, err := io.ReadFull(br, tb); err != nil {
			return fail("term %d: %v", tid, err)
		}
		df, err1 := u32()
		np, err2 := u32()
		if err1 != nil || err2 != nil || np > nd || df > np {
			return fail("term %q: %d of %d postings", tb, df, np)
		}
		if cap(raw) < int(np)*8 {
			raw = make([]byte, int(np)*8)
		}
		raw = raw[:np*8]
		if _, err := io.ReadFull(br, raw); err != nil {
			return fail("term %q postings: %v", tb, err)
		}
		list := make([]posting, np)
		live := uint32(0)
		for i := range list {
			p := posting{doc: le.Uint32(raw[i*8:]), tf: le.Uint32(raw[i*8+4:])}
			if p.doc >= nd || (i > 0 && p.doc <= list[i-1].doc) {
				return fail("term %q: posting for document %d out of order", tb, p.doc)
			}
			list[i] = p
			if !x.dead[p.doc] {
				live++
				x.docTerms[p.doc] = append(x.docTerms[p.doc], tid)
			}
		}
		if live != df {
			return fail("term %q: %d live postings, recorded %d", tb, live, df)
		}
		t := string(tb)
		if _, dup := x.termIDs[t]; dup {
			return fail("term %q twice", t)
		}
		x.termIDs[t] = tid
		x.terms = append(x.terms, t)
		x.postings = append(x.postings, list)
		x.df = append(x.df, df)
	}
	// The stream carries no groups: every document starts in group 0 until
	// the caller assigns them (SetGroups).
	x.group = make([]Group, nd)
	x.recount()
	return x, nil
}
