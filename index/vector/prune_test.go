package vector

import (
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// Skipping the pairs the previous heuristic measured (prune.go) builds,
// insertion for insertion, the graph that measuring every pair builds:
// on random vectors (nearly every candidate kept, the lists always full)
// and clustered ones, one worker, and across a snapshot round trip (a
// loaded graph knows no chosen links and measures everything again; a
// graph read back does not continue exactly as the one written did, so
// both are read back).
func TestPruningSkipsKnownPairsBuildsTheSameGraph(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	random := make([][]float32, 3000)
	for i := range random {
		random[i] = randVec(r, 48, nil, 0)
	}
	clusteredData, _ := clustered(r, 3000, 0, 48, 20)
	for name, data := range map[string][][]float32{"random": random, "clustered": clusteredData} {
		cfg := Config{Dim: 48, M: 8, EfConstruction: 32, EfSearch: 40}
		all, _ := New(cfg)
		all.forgetChosen = true
		known, _ := New(cfg)
		for i := 0; i < 2000; i += 250 {
			addBoth(t, all, known, data, i, i+250)
		}
		sameGraph(t, name, all, known)
		all, known = reloaded(t, all), reloaded(t, known)
		all.forgetChosen = true
		if slices.ContainsFunc(known.l0k, func(k uint8) bool { return k != 0 }) {
			t.Fatalf("%s: a loaded graph claims chosen links", name)
		}
		for i := 2000; i < len(data); i += 250 {
			addBoth(t, all, known, data, i, i+250)
		}
		if !slices.ContainsFunc(known.l0k, func(k uint8) bool { return k > 1 }) {
			t.Fatalf("%s: no node's chosen links were recorded: the test skips nothing", name)
		}
		sameGraph(t, name, all, known)
	}
}

func addBoth(t *testing.T, a, b *Index, data [][]float32, from, to int) {
	t.Helper()
	for _, x := range []*Index{a, b} {
		if err := x.AddBatch(ids(from, to), data[from:to], 1); err != nil {
			t.Fatal(err)
		}
	}
}

func sameGraph(t *testing.T, name string, a, b *Index) {
	t.Helper()
	if !slices.Equal(a.l0n, b.l0n) || !slices.Equal(a.l0, b.l0) || a.entry != b.entry {
		t.Fatalf("%s: level-0 links differ", name)
	}
	for i := range a.upper {
		for l := range a.upper[i] {
			if !slices.Equal(a.upper[i][l], b.upper[i][l]) {
				t.Fatalf("%s: node %d's links at level %d differ", name, i, l+1)
			}
		}
	}
}

// sortCandidates orders candidates, ties included, as sort.Slice did
// before it (so graphs built before and after it are the same).
func TestSortCandidatesOrderUnchanged(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	for trial := range 20000 {
		a := make([]candidate, 1+r.IntN(100))
		for i := range a {
			a[i] = candidate{float32(r.IntN(6)) / 8, int32(i)}
		}
		b := slices.Clone(a)
		sort.Slice(a, func(i, j int) bool { return a[i].dist < a[j].dist })
		sortCandidates(b)
		if !slices.Equal(a, b) {
			t.Fatalf("trial %d: %v, sort.Slice %v", trial, b, a)
		}
	}
}
