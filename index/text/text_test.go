package text

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// plain puts texts in group 0.
func plain(texts map[ID]string) map[ID]Doc {
	out := make(map[ID]Doc, len(texts))
	for id, s := range texts {
		out[id] = Doc{Text: s}
	}
	return out
}

func TestBM25(t *testing.T) {
	x, err := New()
	if err != nil {
		t.Fatal(err)
	}
	docs := map[ID]string{
		{1}: "Pedalling: change the damper pedal after each chord so the harmonies do not blur.",
		{2}: "Scales and arpeggios build even fingers; practise them slowly with a metronome.",
		{3}: "The pedals of a grand piano: una corda, sostenuto and damper.",
		{4}: "Chopin's nocturnes need a singing legato and careful pedalling.",
	}
	if err := x.Batch(plain(docs), nil); err != nil {
		t.Fatal(err)
	}
	hits, err := x.Search("pedaling the damper", 10, Scope{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) < 3 || hits[0].ID != (ID{1}) {
		t.Fatalf("hits %+v", hits)
	}
	// Stemming: "pedals" and "pedalling" meet "pedal".
	got := map[ID]bool{}
	for _, h := range hits {
		got[h.ID] = true
	}
	if !got[ID{3}] || !got[ID{4}] || got[ID{2}] {
		t.Errorf("stemmed matches %v", got)
	}
	// Stop words alone match nothing.
	if hits, _ := x.Search("the and of", 10, Scope{}); len(hits) != 0 {
		t.Errorf("stop words matched %d", len(hits))
	}
	// The filter is applied inside the top n: asking for one hit that is
	// not document 1 still finds one.
	hits, _ = x.Search("damper", 1, Scope{Keep: func(id ID) bool { return id != ID{1} }})
	if len(hits) != 1 || hits[0].ID != (ID{3}) {
		t.Errorf("filtered hits %+v", hits)
	}
	if err := x.Batch(plain(map[ID]string{{2}: "Damper pedal technique."}), []ID{{1}}); err != nil {
		t.Fatal(err)
	}
	hits, _ = x.Search("damper", 10, Scope{})
	for _, h := range hits {
		if h.ID == (ID{1}) {
			t.Error("deleted document returned")
		}
	}
	if len(hits) != 2 {
		t.Errorf("damper after update: %+v", hits)
	}
	if n := x.Count(); n != 3 {
		t.Errorf("count %d", n)
	}
	if _, err := x.Search("damper", 0, Scope{}); err == nil {
		t.Error("n = 0 accepted")
	}
}

// reference scores every live document by the textbook formula.
type reference struct {
	x      *Index
	docs   map[ID]string
	groups map[ID]Group
	cache  map[string]analyzed
}

// search scores the documents of groups (nil: all) with the statistics of
// those groups alone.
func (r reference) search(query string, n int, groups []Group) []Hit {
	q := r.x.analyze(query, English)
	ana := map[ID]analyzed{}
	var total float64
	df := map[string]int{}
	for id, s := range r.docs {
		if groups != nil && !slices.Contains(groups, r.groups[id]) {
			continue
		}
		a, ok := r.cache[s]
		if !ok {
			a = r.x.analyze(s, English)
			r.cache[s] = a
		}
		ana[id] = a
		total += float64(a.n)
		for _, t := range a.terms {
			df[t]++
		}
	}
	N := float64(len(ana))
	avg := total / N
	var out []Hit
	for id, a := range ana {
		var s float64
		for j, t := range q.terms {
			i := slices.Index(a.terms, t)
			if i < 0 {
				continue
			}
			tf := float64(a.tfs[i])
			idf := math.Log(1 + (N-float64(df[t])+0.5)/(float64(df[t])+0.5))
			s += float64(q.tfs[j]) * idf * tf * (K1 + 1) / (tf + K1*(1-B+B*float64(a.n)/avg))
		}
		if s > 0 {
			out = append(out, Hit{ID: id, Score: s})
		}
	}
	slices.SortFunc(out, func(a, b Hit) int {
		if a.Score != b.Score {
			if a.Score > b.Score {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return out[:min(n, len(out))]
}

var words = strings.Fields(`piano pedal legato staccato scale arpeggio chord harmony finger thumb
	wrist posture tempo rhythm metronome practice practise practising sonata etude nocturne waltz
	fugue invention prelude dynamics forte piano crescendo phrase slur tie rest beat measure bar`)

func randomText(r *rand.Rand) string {
	n := 3 + r.IntN(30)
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.String()
}

// Random upserts, deletes, regroupings and compactions, checked against
// the textbook formula over the whole index and over scopes of groups
// (statistics of those groups alone), and through a snapshot.
func TestMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x, _ := New()
	ref := reference{x: x, docs: map[ID]string{}, groups: map[ID]Group{}, cache: map[string]analyzed{}}
	for round := range 40 {
		ups := map[ID]Doc{}
		var dels []ID
		for range 100 {
			id := ID{byte(r.IntN(8)), byte(r.IntN(256))}
			if r.IntN(4) == 0 {
				dels = append(dels, id)
				delete(ref.docs, id)
				delete(ups, id)
			} else {
				ups[id] = Doc{Text: randomText(r), Group: Group(r.IntN(4))}
			}
		}
		for id, d := range ups {
			ref.docs[id], ref.groups[id] = d.Text, d.Group
		}
		if err := x.Batch(ups, dels); err != nil {
			t.Fatal(err)
		}
		regroup(r, x, ref)
		check := func(x *Index, what string) {
			t.Helper()
			for range 5 {
				q := randomText(r)
				for _, groups := range [][]Group{nil, {0}, {1, 3}, {0, 2, 2}} {
					scope := Scope{Groups: groups}
					if groups != nil {
						scope.Keep = func(id ID) bool { return slices.Contains(groups, ref.groups[id]) }
					}
					got, _ := x.Search(q, 10, scope)
					want := ref.search(q, 10, groups)
					if len(got) != len(want) {
						t.Fatalf("round %d %s %q: %d hits, want %d", round, what, q, len(got), len(want))
					}
					for i := range got {
						if got[i].ID != want[i].ID && math.Abs(got[i].Score-want[i].Score) > 1e-4*want[i].Score {
							t.Fatalf("round %d %s %q: hit %d %x %.5f, want %x %.5f", round, what, q, i, got[i].ID, got[i].Score, want[i].ID, want[i].Score)
						}
						if math.Abs(got[i].Score-want[i].Score) > 1e-4*want[i].Score {
							t.Fatalf("round %d %s: score %.6f, want %.6f", round, what, got[i].Score, want[i].Score)
						}
					}
				}
			}
		}
		check(x, "live")
		if x.Count() != len(ref.docs) {
			t.Fatalf("count %d, want %d", x.Count(), len(ref.docs))
		}
		if round%10 == 9 {
			var buf bytes.Buffer
			if _, err := x.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			y, err := ReadFrom(&buf)
			if err != nil {
				t.Fatal(err)
			}
			y.SetGroups(func(id ID) Group { return ref.groups[id] })
			check(y, "restored")
			x = y // go on writing to the restored index
			ref.x = y
		}
	}
}

// regroup moves a few random documents to another group.
func regroup(r *rand.Rand, x *Index, ref reference) {
	for id := range ref.docs {
		if r.IntN(10) == 0 {
			g := Group(r.IntN(4))
			x.Regroup([]ID{id}, g)
			ref.groups[id] = g
		}
	}
}

// What a scope sees depends only on its own groups: documents added to,
// changed in, moved between or deleted from other groups change no score
// and no order (bit for bit), across compactions.
func TestScopedStatisticsIgnoreOtherGroups(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	x, _ := New()
	inScope := func(id ID) bool { return id[0] < 2 } // groups 0 and 1
	groupOf := func(id ID) Group { return Group(id[0]) }
	ups := map[ID]Doc{}
	for i := range 600 {
		id := ID{byte(i % 4), byte(i / 4), 1}
		ups[id] = Doc{Text: randomText(r), Group: groupOf(id)}
	}
	x.Batch(ups, nil)
	scope := Scope{Groups: []Group{0, 1}, Keep: inScope}
	queries := make([]string, 30)
	for i := range queries {
		queries[i] = randomText(r)
	}
	answers := func() [][]Hit {
		out := make([][]Hit, len(queries))
		for i, q := range queries {
			out[i], _ = x.Search(q, 20, scope)
		}
		return out
	}
	before := answers()
	var last []ID
	for round := range 8 {
		ups := map[ID]Doc{}
		dels := last // what the last round added goes: compactions happen
		last = nil
		for i := range 1500 {
			id := ID{byte(2 + i%2), byte(i / 2), byte(i >> 9), byte(2 + round)}
			ups[id] = Doc{Text: randomText(r) + " " + queries[r.IntN(len(queries))], Group: groupOf(id)}
			last = append(last, id)
		}
		for i := range 300 {
			dels = append(dels, ID{byte(2 + i%2), byte(i / 2), 1})
		}
		x.Batch(ups, dels)
		x.Regroup([]ID{{3, 200, 1}, {3, 201, 1}}, 2)
		if after := answers(); !slices.EqualFunc(before, after, slices.Equal) {
			t.Fatalf("round %d: changes outside the scope moved its answers", round)
		}
	}
	// Control: the same changes inside the scope do move them.
	in := map[ID]Doc{}
	for i := range 400 {
		in[ID{byte(i % 2), byte(i / 2), 9}] = Doc{Text: randomText(r), Group: Group(i % 2)}
	}
	x.Batch(in, nil)
	if after := answers(); slices.EqualFunc(before, after, slices.Equal) {
		t.Fatal("changes inside the scope moved nothing: the test cannot fail")
	}
}

func TestCompaction(t *testing.T) {
	x, _ := New()
	for i := range 3000 {
		x.Batch(plain(map[ID]string{{byte(i), byte(i >> 8)}: fmt.Sprintf("word%d common", i%50)}), nil)
	}
	var dels []ID
	for i := range 2500 {
		dels = append(dels, ID{byte(i), byte(i >> 8)})
	}
	x.Batch(nil, dels)
	x.mu.RLock()
	docs, terms := len(x.ids), len(x.terms)
	x.mu.RUnlock()
	if docs != 500 || x.Count() != 500 || terms > 51 {
		t.Errorf("after compaction %d document slots, %d live, %d terms", docs, x.Count(), terms)
	}
	hits, _ := x.Search("common", 1000, Scope{})
	if len(hits) != 500 {
		t.Errorf("%d hits for a word every live document has", len(hits))
	}
}

func TestSnapshotRejectsDamage(t *testing.T) {
	x, _ := New()
	x.Batch(plain(map[ID]string{{1}: "pedal", {2}: "legato pedal"}), nil)
	var buf bytes.Buffer
	x.WriteTo(&buf)
	good := buf.Bytes()
	for _, cut := range []int{0, 5, 20, len(good) - 3} {
		if _, err := ReadFrom(bytes.NewReader(good[:cut])); err == nil {
			t.Errorf("truncated at %d accepted", cut)
		}
	}
	bad := slices.Clone(good)
	bad[len(snapMagic)] = 9
	if _, err := ReadFrom(bytes.NewReader(bad)); err == nil {
		t.Error("unknown version accepted")
	}
}

// Searches run while batches land (run with -race).
func TestConcurrent(t *testing.T) {
	x, _ := New()
	r := rand.New(rand.NewPCG(3, 4))
	texts := make([]string, 200)
	for i := range texts {
		texts[i] = randomText(r)
	}
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				if _, err := x.Search(texts[(i+w)%len(texts)], 5, Scope{Groups: []Group{0}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range 300 {
		x.Batch(map[ID]Doc{{byte(i % 100)}: {Text: texts[i%len(texts)], Group: Group(i % 2)}}, []ID{{byte((i + 50) % 100)}})
		x.Regroup([]ID{{byte(i % 100)}}, 0)
	}
	wg.Wait()
}

// The top n are the first n of the whole ranking (score, then the smaller
// id), ties across the selection's edge included: many documents share
// each score, so the selection keeps deciding ties by id.
func TestTopNIsThePrefixOfTheRanking(t *testing.T) {
	x, err := New()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	words := []string{"pedal", "scale", "chord", "legato"}
	docs := map[ID]Doc{}
	for i := range 600 {
		var id ID
		for j := range id {
			id[j] = byte(r.IntN(256))
		}
		// Few distinct texts: many documents tie.
		docs[id] = Doc{Text: strings.Repeat(words[i%4]+" ", 1+r.IntN(2)) + words[r.IntN(4)], Group: Group(r.IntN(3))}
	}
	// Two batches: the second's documents are numbered after the first's
	// whatever their ids, so ties do not arrive in id order.
	first, second := map[ID]Doc{}, map[ID]Doc{}
	for id, d := range docs {
		if len(first) < len(docs)/2 {
			first[id] = d
		} else {
			second[id] = d
		}
	}
	for _, b := range []map[ID]Doc{first, second} {
		if err := x.Batch(b, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, scope := range []Scope{{}, {Groups: []Group{0, 2}}} {
		all, err := x.Search("pedal chord", len(docs), scope)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 7, 50, 199} {
			top, err := x.Search("pedal chord", n, scope)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(top, all[:n]) {
				t.Fatalf("scope %v, top %d is not the ranking's prefix", scope.Groups, n)
			}
		}
	}
}
