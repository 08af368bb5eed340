package vector

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"unsafe"
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
	writeVectors(bw, x.vecs[:len(x.ids)*x.cfg.Dim])
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
	d := &graphDecoder{br: br}
	x, err := d.header()
	if err != nil {
		return nil, err
	}
	if err := d.nodes(x); err != nil {
		return nil, err
	}
	if err := x.checkLinks(); err != nil {
		return nil, err
	}
	if err := d.vectors(x); err != nil {
		return nil, err
	}
	x.encodeAll()
	x.settle()
	return x, nil
}

// graphDecoder reads a stream written by WriteTo, keeping the first
// error: after one, every get does nothing.
type graphDecoder struct {
	br  *bufio.Reader
	err error
}

func (d *graphDecoder) get(v any) {
	if d.err == nil {
		d.err = binary.Read(d.br, binary.LittleEndian, v)
	}
}

// header reads the configuration and the graph's shape, and returns an
// empty Index of that shape for nodes to fill.
func (d *graphDecoder) header() (*Index, error) {
	var dim, m, efc, efs, n, maxLevel uint32
	var entry int32
	d.get(&dim)
	d.get(&m)
	d.get(&efc)
	d.get(&efs)
	d.get(&n)
	d.get(&entry)
	d.get(&maxLevel)
	if d.err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, d.err)
	}
	if dim == 0 || dim > 65536 || m < 2 || m > 1024 || n > 1<<31 || maxLevel > 64 || entry < -1 || int64(entry) >= int64(n) {
		return nil, fmt.Errorf("%w: header out of range", ErrCorrupt)
	}
	x, err := New(Config{Dim: int(dim), M: int(m), EfConstruction: int(efc), EfSearch: int(efs)})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	x.entry, x.maxLevel = entry, int(maxLevel)
	x.ids = make([]ID, n)
	x.levels = make([]uint8, n)
	x.dead = make([]bool, n)
	x.l0n = make([]uint8, n)
	x.l0k = make([]uint8, n) // nothing known of a loaded graph (prune.go)
	x.l0 = makeSlab[int32](int(n)*x.m0, int(n)*x.m0)
	x.upper = make([][][]int32, n)
	return x, nil
}

// nodes reads every node (id, level, tombstone, links) into x.
func (d *graphDecoder) nodes(x *Index) error {
	for i := 0; i < len(x.ids) && d.err == nil; i++ {
		if err := d.node(x, i); err != nil {
			return err
		}
	}
	if d.err != nil {
		return fmt.Errorf("%w: nodes: %v", ErrCorrupt, d.err)
	}
	return nil
}

// node reads node i; a read error is left in d.err, a link count out of
// range is returned.
func (d *graphDecoder) node(x *Index, i int) error {
	_, d.err = io.ReadFull(d.br, x.ids[i][:])
	d.get(&x.levels[i])
	d.get(&x.dead[i])
	d.get(&x.l0n[i])
	if d.err == nil && int(x.l0n[i]) > x.m0 {
		return fmt.Errorf("%w: node %d has %d links", ErrCorrupt, i, x.l0n[i])
	}
	d.get(x.l0[i*x.m0 : i*x.m0+int(x.l0n[i])])
	if x.levels[i] > 0 {
		x.upper[i] = make([][]int32, x.levels[i])
		for l := range x.upper[i] {
			var c uint16
			d.get(&c)
			if int(c) > x.cfg.M {
				return fmt.Errorf("%w: node %d level %d has %d links", ErrCorrupt, i, l+1, c)
			}
			x.upper[i][l] = make([]int32, c)
			d.get(x.upper[i][l])
		}
	}
	if x.dead[i] {
		x.deadN++
	} else {
		x.byID[x.ids[i]] = int32(i)
	}
	return nil
}

// encodeAll derives every node's code from its vector (the codes are not
// in the stream), on every core.
func (x *Index) encodeAll() {
	n := len(x.ids)
	x.codes = makeSlab[uint64](n*x.cw, n*x.cw)
	if x.useFine {
		x.fine = makeSlab[int8](n*x.rot.dp, n*x.rot.dp)
	}
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			tmp := make([]float32, x.rot.dp)
			for i := w; i < n; i += workers {
				x.rot.encode(x.vec(int32(i)), x.code(int32(i)), tmp)
				x.encodeNodeFine(int32(i), tmp)
			}
		})
	}
	wg.Wait()
}

// checkLinks checks that every link names a node of the graph.
func (x *Index) checkLinks() error {
	n := int32(len(x.ids))
	for _, l := range x.l0 {
		if l < 0 || l >= n {
			return fmt.Errorf("%w: link out of range", ErrCorrupt)
		}
	}
	for _, up := range x.upper {
		for _, links := range up {
			for _, l := range links {
				if l < 0 || l >= n {
					return fmt.Errorf("%w: link out of range", ErrCorrupt)
				}
			}
		}
	}
	return nil
}

// vectors reads the vectors block, raw little-endian float32, into x.
func (d *graphDecoder) vectors(x *Index) error {
	n, dim := len(x.ids), x.cfg.Dim
	x.vecs = makeSlab[float32](n*dim, n*dim)
	buf := make([]byte, 4*dim)
	for i := 0; i < n; i++ {
		if _, err := io.ReadFull(d.br, buf); err != nil {
			return fmt.Errorf("%w: vectors: %v", ErrCorrupt, err)
		}
		v := x.vecs[i*dim : (i+1)*dim]
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
		}
	}
	return nil
}

// writeVectors writes vs as little-endian float32, in blocks of at most
// 1 MiB (a writer downstream may pace itself by what it was handed). On
// a little-endian machine the floats' memory is written as it is, with no
// conversion and no copy.
func writeVectors(w io.Writer, vs []float32) {
	const block = 1 << 18 // floats
	one := uint16(1)
	native := *(*byte)(unsafe.Pointer(&one)) == 1
	buf := []byte(nil)
	for len(vs) > 0 {
		b := vs[:min(block, len(vs))]
		vs = vs[len(b):]
		if native {
			w.Write(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), 4*len(b))) //nolint:errcheck // the caller's writer records the first error
			continue
		}
		buf = buf[:0]
		for _, f := range b {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(f))
		}
		w.Write(buf) //nolint:errcheck // as above
	}
}
