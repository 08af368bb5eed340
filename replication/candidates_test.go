package replication

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/sostenuto/sostenuto/index"
)

// clusteredVecs is n vectors of dim around c random centres (noise of norm
// about 0.8 around each), the vector benchmark's shape.
func clusteredVecs(r *rand.Rand, n, dim, c int) [][]float32 {
	centres := make([][]float64, c)
	for i := range centres {
		centres[i] = make([]float64, dim)
		for j := range centres[i] {
			centres[i][j] = r.NormFloat64() / math.Sqrt(float64(dim))
		}
	}
	out := make([][]float32, n)
	for i := range out {
		ctr := centres[r.IntN(c)]
		out[i] = make([]float32, dim)
		for j := range out[i] {
			out[i][j] = float32(ctr[j] + 0.8*r.NormFloat64()/math.Sqrt(float64(dim)))
		}
	}
	return out
}

// vectorRecall is the recall@10 of eng's vector searches at ef against
// the exact nearest of vecs (chunk i is rid('c', i)).
func vectorRecall(t *testing.T, eng *index.Engine, vecs, queries [][]float32, ef int) float64 {
	t.Helper()
	hit := 0
	for _, q := range queries {
		type sc struct {
			i int
			s float64
		}
		all := make([]sc, len(vecs))
		for i, v := range vecs {
			all[i] = sc{i, cosine(q, v)}
		}
		slices.SortFunc(all, func(a, b sc) int { return -cmpFloat(a.s, b.s) })
		hits, err := eng.Search(index.Query{Vector: q, K: 10, Ef: ef, Mode: index.ModeVector, Scope: index.Scope{Admin: true}})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range all[:10] {
			if slices.ContainsFunc(hits, func(h index.Hit) bool { return h.Chunk.ID == rid('c', w.i) }) {
				hit++
			}
		}
	}
	return float64(hit) / float64(10*len(queries))
}

func cosine(a, b []float32) float64 {
	var d, na, nb float64
	for i := range a {
		d += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return d / math.Sqrt(na*nb)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// A follower applying the leader's version-5 entries (candidates shipped,
// eight entries in flight as the feed proposes) holds what one applying
// the same transactions as version-4 entries holds, and its vector
// searches find as much.
func TestFollowerApplyingShippedCandidatesSearchesAsWell(t *testing.T) {
	r := rand.New(rand.NewPCG(20, 21))
	vecs := clusteredVecs(r, 2100, 768, 40)
	data, queries := vecs[:2000], vecs[2000:]
	plain := bulkLogs(t, data, 250)
	shipped, _ := shippedLogs(t, plain)
	for i, l := range shipped {
		if l.Data[1] != 5 || plain[i].Data[1] != 1 {
			t.Fatalf("entry %d: version %d shipped, %d plain; want 5 and 1", i, l.Data[1], plain[i].Data[1])
		}
	}
	v4 := NewFSM(index.NewLive(benchEngine(t)), index.DefaultConfig())
	v5 := NewFSM(index.NewLive(benchEngine(t)), index.DefaultConfig())
	applyInEights(t, v4, plain)
	applyInEights(t, v5, shipped)
	e4, e5 := v4.live.Engine(), v5.live.Engine()
	if e4.Len() != len(data) || !reflect.DeepEqual(e4.ChunkVersions(), e5.ChunkVersions()) || e4.Position() != e5.Position() {
		t.Fatalf("v4 holds %d chunks at %v, v5 %d at %v", e4.Len(), e4.Position(), e5.Len(), e5.Position())
	}
	for _, ef := range []int{10, 40} {
		want, got := vectorRecall(t, e4, data, queries, ef), vectorRecall(t, e5, data, queries, ef)
		t.Logf("ef %d: recall@10 %.3f applying v4, %.3f applying v5", ef, want, got)
		if got < want-0.02 {
			t.Errorf("ef %d: recall@10 %.3f applying v5, %.3f applying v4", ef, got, want)
		}
	}
}
