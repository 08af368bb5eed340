package vector

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// WriteTo writes the graph (vectors, levels, links, tombstones) so
// ReadFrom can restore it without rebuilding.
func (x *Index) WriteTo(w io.Writer) (int64, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	bw := &countWriter{w: bufio.NewWriterSize(w, 1<<20)}
	put := func(v any) { binary.Write(bw, binary.LittleEndian, v) } //nolint:errcheck // bw records the first error
	put(uint32(x.cfg.Dim))
	put(uint32(x.cfg.M))
	put(uint32(x.cfg.EfConstruction))
	put(uint32(x.cfg.EfSearch))
	put(uint32(len(x.ids)))
	put(x.entry)
	put(uint32(x.maxLevel))
	for n := range x.ids {
		bw.Write(x.ids[n][:]) //nolint:errcheck // as above
		put(x.levels[n])
		put(x.dead[n])
		put(x.l0n[n])
		put(x.l0[n*x.m0 : n*x.m0+int(x.l0n[n])])
		for l := 0; l < int(x.levels[n]); l++ {
			put(uint16(len(x.upper[n][l])))
			put(x.upper[n][l])
		}
	}
	// Vectors last, in one block, as raw little-endian float32.
	buf := make([]byte, 4*x.cfg.Dim)
	for n := range x.ids {
		for j, f := range x.vec(int32(n)) {
			binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(f))
		}
		bw.Write(buf) //nolint:errcheck // as above
	}
	if bw.err == nil {
		bw.err = bw.w.(*bufio.Writer).Flush()
	}
	return bw.n, bw.err
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// ErrCorrupt marks a graph stream that does not decode.
var ErrCorrupt = errors.New("vector: corrupt graph")

// ReadFrom reads a graph written by WriteTo into a new Index. Pass a
// *bufio.Reader when more data follows the graph in the stream: ReadFrom
// reads through it and never past the graph's end.
func ReadFrom(r io.Reader) (*Index, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 1<<20)
	}
	var err error
	get := func(v any) {
		if err == nil {
			err = binary.Read(br, binary.LittleEndian, v)
		}
	}
	var dim, m, efc, efs, n, maxLevel uint32
	var entry int32
	get(&dim)
	get(&m)
	get(&efc)
	get(&efs)
	get(&n)
	get(&entry)
	get(&maxLevel)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if dim == 0 || dim > 65536 || m < 2 || m > 1024 || n > 1<<31 || maxLevel > 64 || entry < -1 || int64(entry) >= int64(n) {
		return nil, fmt.Errorf("%w: header out of range", ErrCorrupt)
	}
	x, nerr := New(Config{Dim: int(dim), M: int(m), EfConstruction: int(efc), EfSearch: int(efs)})
	if nerr != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, nerr)
	}
	x.entry, x.maxLevel = entry, int(maxLevel)
	x.ids = make([]ID, n)
	x.levels = make([]uint8, n)
	x.dead = make([]bool, n)
	x.l0n = make([]uint8, n)
	x.l0 = make([]int32, int(n)*x.m0)
	x.upper = make([][][]int32, n)
	for i := 0; i < int(n) && err == nil; i++ {
		_, err = io.ReadFull(br, x.ids[i][:])
		get(&x.levels[i])
		get(&x.dead[i])
		get(&x.l0n[i])
		if err == nil && int(x.l0n[i]) > x.m0 {
			return nil, fmt.Errorf("%w: node %d has %d links", ErrCorrupt, i, x.l0n[i])
		}
		get(x.l0[i*x.m0 : i*x.m0+int(x.l0n[i])])
		if x.levels[i] > 0 {
			x.upper[i] = make([][]int32, x.levels[i])
			for l := range x.upper[i] {
				var c uint16
				get(&c)
				if int(c) > x.cfg.M {
					return nil, fmt.Errorf("%w: node %d level %d has %d links", ErrCorrupt, i, l+1, c)
				}
				x.upper[i][l] = make([]int32, c)
				get(x.upper[i][l])
			}
		}
		if x.dead[i] {
			x.deadN++
		} else {
			x.byID[x.ids[i]] = int32(i)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: nodes: %v", ErrCorrupt, err)
	}
	for _, l := range x.l0 {
		if l < 0 || l >= int32(n) {
			return nil, fmt.Errorf("%w: link out of range", ErrCorrupt)
		}
	}
	for _, up := range x.upper {
		for _, links := range up {
			for _, l := range links {
				if l < 0 || l >= int32(n) {
					return nil, fmt.Errorf("%w: link out of range", ErrCorrupt)
				}
			}
		}
	}
	x.vecs = make([]float32, int(n)*int(dim))
	buf := make([]byte, 4*dim)
	for i := 0; i < int(n); i++ {
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, fmt.Errorf("%w: vectors: %v", ErrCorrupt, err)
		}
		v := x.vecs[i*int(dim) : (i+1)*int(dim)]
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
		}
	}
	return x, nil
}
