package vector

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// buildShipped builds data in batches of size as a replicated bulk load
// with shipped candidates does: a leader graph computes each batch's
// candidates while the batch before it is still in flight (proposed, not
// applied: it is in the brute-force set), then applies it; the follower
// graph returned applies each batch with the leader's candidates.
func buildShipped(t *testing.T, data [][]float32, size int) (leader, follower *Index) {
	t.Helper()
	leader, _ = New(DefaultConfig(len(data[0])))
	follower, _ = New(DefaultConfig(len(data[0])))
	n := len(data)
	next := leader.Candidates(ids(0, min(size, n)), data[:min(size, n)], 0)
	for i := 0; i < n; i += size {
		end := min(i+size, n)
		cands := next
		if end < n { // the next entry is proposed before this one applies
			next = leader.Candidates(ids(i, min(end+size, n)), data[i:min(end+size, n)], end-i)
		}
		for _, x := range []*Index{leader, follower} {
			if err := x.AddBatchCandidates(ids(i, end), data[i:end], cands, 2); err != nil {
				t.Fatal(err)
			}
		}
	}
	return leader, follower
}

// A graph built from shipped candidates, in entries of the bulk size (500)
// with one entry in flight, finds what a graph built by searching finds,
// on clustered and on random data.
func TestShippedCandidatesRecallAsSearched(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	n, dim := 6000, 96
	random := make([][]float32, n+100)
	for i := range random {
		random[i] = randVec(r, dim, nil, 0)
	}
	cl, clq := clustered(r, n, 100, dim, 60)
	sets := []struct {
		name          string
		data, queries [][]float32
	}{{"clustered", cl, clq}, {"random", random[:n], random[n:]}}
	for _, s := range sets {
		searched, _ := New(DefaultConfig(dim))
		for i := 0; i < n; i += 500 {
			if err := searched.AddBatch(ids(i, i+500), s.data[i:i+500], 2); err != nil {
				t.Fatal(err)
			}
		}
		_, shipped := buildShipped(t, s.data, 500)
		for _, ef := range []int{10, 40, 80} {
			search := func(x *Index) func(q []float32) []Result {
				return func(q []float32) []Result { res, _ := x.Search(q, 10, ef, nil); return res }
			}
			want := recallOf(s.data, s.queries, 10, search(searched))
			got := recallOf(s.data, s.queries, 10, search(shipped))
			t.Logf("%s ef %d: recall@10 searched %.4f, shipped %.4f", s.name, ef, want, got)
			if got < want-0.02 {
				t.Errorf("%s ef %d: recall@10 %.4f from shipped candidates, %.4f searched", s.name, ef, got, want)
			}
		}
	}
}

// A level-0 node with shipped candidates is linked among them (and the
// batch's other nodes, by their reverse links), without searching; one
// whose candidates are all absent is inserted by searching.
func TestAddBatchCandidatesLinksAmongThemOrSearches(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	dim := 32
	x, _ := New(DefaultConfig(dim))
	data := make([][]float32, 1200)
	for i := range data {
		data[i] = randVec(r, dim, nil, 0)
	}
	if err := x.AddBatch(ids(0, 1000), data[:1000], 2); err != nil {
		t.Fatal(err)
	}
	shipped := ids(500, 540) // far from most: a search would not pick only these
	absent := ids(5000, 5010)
	cands := make([][]ID, 200)
	for i := range cands {
		cands[i] = shipped
		if i%10 == 0 {
			cands[i] = absent
		}
	}
	batch := ids(1000, 1200)
	if err := x.AddBatchCandidates(batch, data[1000:], cands, 2); err != nil {
		t.Fatal(err)
	}
	for i, id := range batch {
		n := x.byID[id]
		if x.levels[n] > 0 {
			continue
		}
		ls := x.links(n, 0)
		outside := 0
		for _, m := range ls {
			if !slices.Contains(shipped, x.ids[m]) && !slices.Contains(batch, x.ids[m]) {
				outside++
			}
		}
		switch {
		case i%10 == 0 && outside == 0:
			t.Errorf("node %d with absent candidates: links %v, none found by a search", i, ls)
		case i%10 != 0 && outside > 0:
			t.Errorf("node %d: %d links outside its candidates and the batch", i, outside)
		}
	}
}

// Candidates lists, nearest first, ids of the graph and of the vectors not
// in it yet (in flight or of the batch), never the vector's own.
func TestCandidatesIncludeInFlightNearestFirst(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 15))
	dim := 32
	x, _ := New(DefaultConfig(dim))
	data := make([][]float32, 700)
	for i := range data {
		data[i] = randVec(r, dim, nil, 0)
	}
	if err := x.AddBatch(ids(0, 500), data[:500], 2); err != nil {
		t.Fatal(err)
	}
	data[650] = append([]float32(nil), data[600]...) // in flight: 600's twin
	cands := x.Candidates(ids(600, 700), data[600:], 50)
	if len(cands) != 50 {
		t.Fatalf("%d candidate lists for 50 vectors", len(cands))
	}
	if cands[0][0] != idOf(600) {
		t.Errorf("the nearest candidate of 650 is %v, want its in-flight twin %v", cands[0][0], idOf(600))
	}
	vecOf := func(id ID) []float32 {
		i := int(id[0])<<24 | int(id[1])<<16 | int(id[2])<<8 | int(id[3])
		return data[i]
	}
	found, total := 0, 0
	for k, cs := range cands {
		i := 650 + k
		if slices.Contains(cs, idOf(i)) || len(cs) != DefaultConfig(dim).EfConstruction {
			t.Fatalf("vector %d: %d candidates, its own id among them: %v", i, len(cs), slices.Contains(cs, idOf(i)))
		}
		for j := 1; j < len(cs); j++ {
			if dot(data[i], vecOf(cs[j])) > dot(data[i], vecOf(cs[j-1]))+1e-6 {
				t.Fatalf("vector %d: candidate %d nearer than %d", i, j, j-1)
			}
		}
		alive := func(j int) bool { return j < 500 || j >= 600 && j != i }
		for _, w := range bruteForce(data, alive, data[i], 5) {
			total++
			if slices.Contains(cs, idOf(w)) {
				found++
			}
		}
	}
	if found < total*95/100 {
		t.Errorf("%d of the %d nearest among the candidates", found, total)
	}
}

// Candidates run beside batches with candidates and deletes (the leader
// computes the next entry's while it applies the last): clean under
// -race, and every vector ends in the graph.
func TestCandidatesBesideBatchesAndDeletes(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 17))
	dim := 32
	x, _ := New(DefaultConfig(dim))
	data := make([][]float32, 3000)
	for i := range data {
		data[i] = randVec(r, dim, nil, 0)
	}
	if err := x.AddBatch(ids(0, 500), data[:500], 2); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 500; i < 3000; i += 250 {
			_ = x.Candidates(ids(i, i+250), data[i:i+250], 0)
		}
	}()
	for i := 500; i < 3000; i += 250 {
		cands := x.Candidates(ids(i-250, i+250), data[i-250:i+250], 250)
		if err := x.AddBatchCandidates(ids(i, i+250), data[i:i+250], cands, 2); err != nil {
			t.Fatal(err)
		}
		x.Delete(idOf(i - 100))
	}
	<-done
	if got, want := x.Len(), 3000-10; got != want {
		t.Fatalf("%d live vectors, want %d", got, want)
	}
	for i := 0; i < 3000; i += 97 {
		if i%250 == 150 && i >= 400 && i < 2900 {
			continue // deleted
		}
		res, _ := x.Search(data[i], 1, 40, nil)
		if len(res) == 0 || res[0].ID != idOf(i) {
			t.Errorf("vector %d not found as its own nearest: %v", i, res)
		}
	}
}
