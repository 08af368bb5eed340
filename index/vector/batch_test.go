package vector

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func ids(from, to int) []ID {
	out := make([]ID, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, idOf(i))
	}
	return out
}

// AddBatch with one worker builds what the same Adds build.
func TestAddBatchOneWorkerIsAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	data, queries := clustered(r, 1500, 20, 32, 10)
	a := build(t, data)
	b, _ := New(Config{Dim: 32, M: 16, EfConstruction: 64, EfSearch: 40})
	if err := b.AddBatch(ids(0, len(data)), data, 1); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.l0, b.l0) || !slices.Equal(a.l0n, b.l0n) || a.entry != b.entry || !slices.Equal(a.codes, b.codes) {
		t.Fatal("AddBatch with one worker built another graph than Add")
	}
	for _, q := range queries {
		ra, _ := a.Search(q, 10, 40, nil)
		rb, _ := b.Search(q, 10, 40, nil)
		if !slices.Equal(ra, rb) {
			t.Fatalf("answers differ: %v vs %v", ra, rb)
		}
	}
}

// A parallel build finds what a sequential one finds; a later id in a
// batch replaces an earlier one, and a batch replaces earlier Adds.
func TestAddBatchParallelRecallAndReplace(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	data, queries := clustered(r, 4000, 100, 64, 40)
	x, _ := New(Config{Dim: 64, M: 16, EfConstruction: 64, EfSearch: 40})
	if err := x.AddBatch(ids(0, 2000), data[:2000], 4); err != nil {
		t.Fatal(err)
	}
	if err := x.AddBatch(ids(2000, 4000), data[2000:], 4); err != nil {
		t.Fatal(err)
	}
	all := func(int) bool { return true }
	if rc := recall(t, x, data, all, queries, 10, 40); rc < 0.95 {
		t.Errorf("recall@10 at ef 40 after a parallel build: %.3f", rc)
	}
	target := randVec(r, 64, nil, 0)
	batch := [][]float32{data[1], target}
	if err := x.AddBatch([]ID{idOf(5), idOf(5)}, batch, 2); err != nil {
		t.Fatal(err)
	}
	if x.Len() != len(data) || x.Tombstones() != 2 {
		t.Fatalf("len %d tombstones %d, want %d and 2", x.Len(), x.Tombstones(), len(data))
	}
	res, _ := x.Search(target, 1, 40, nil)
	if len(res) != 1 || res[0].ID != idOf(5) || res[0].Score < 0.999 {
		t.Errorf("the batch's last vector for the id is not the one found: %+v", res)
	}
	if err := x.AddBatch([]ID{idOf(1)}, [][]float32{make([]float32, 3)}, 2); err == nil {
		t.Error("a wrong dimension in a batch was accepted")
	}
}

// Batches linked on several goroutines, single Adds, deletes and searches
// all at once (go test -race): no race, no panic; afterwards exactly the
// live ids are held and (nearly) every live vector is found as its own
// nearest neighbour.
func TestConcurrentBatchesAddsDeletesSearches(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	data, queries := clustered(r, 4000, 50, 32, 20)
	x, _ := New(Config{Dim: 32, M: 8, EfConstruction: 32, EfSearch: 40})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for from := g * 1500; from < (g+1)*1500; from += 300 {
				if err := x.AddBatch(ids(from, from+300), data[from:from+300], 2); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := 3000; i < 4000; i++ {
			x.Add(idOf(i), data[i])
			if i%4 == 0 && i >= 3200 {
				x.Delete(idOf(i - 200)) // one this goroutine added
			}
		}
	})
	for g := range 2 {
		wg.Go(func() {
			for i := range 200 {
				if _, err := x.Search(queries[(g+i)%len(queries)], 10, 40, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	deleted := func(i int) bool { return i >= 3000 && i < 3800 && i%4 == 0 }
	found := 0
	for i, v := range data {
		if x.Has(idOf(i)) == deleted(i) {
			t.Fatalf("vector %d: live %v, deleted %v", i, x.Has(idOf(i)), deleted(i))
		}
		res, _ := x.Search(v, 1, 80, nil)
		switch {
		case deleted(i) && len(res) > 0 && res[0].ID == idOf(i):
			t.Fatalf("deleted vector %d came back", i)
		case !deleted(i) && len(res) > 0 && res[0].ID == idOf(i):
			found++
		}
	}
	if live := x.Len(); found < live*99/100 {
		t.Errorf("%d of %d live vectors found as their own nearest neighbour", found, live)
	}
}
