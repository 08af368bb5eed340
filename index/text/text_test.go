package text

import "testing"

func TestBM25(t *testing.T) {
	x, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	docs := map[ID]string{
		{1}: "Pedalling: change the damper pedal after each chord so the harmonies do not blur.",
		{2}: "Scales and arpeggios build even fingers; practise them slowly with a metronome.",
		{3}: "The pedals of a grand piano: una corda, sostenuto and damper.",
		{4}: "Chopin's nocturnes need a singing legato and careful pedalling.",
	}
	if err := x.Batch(docs, nil); err != nil {
		t.Fatal(err)
	}
	hits, err := x.Search("pedaling the damper", 10)
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
	if hits, _ := x.Search("the and of", 10); len(hits) != 0 {
		t.Errorf("stop words matched %d", len(hits))
	}
	if err := x.Batch(map[ID]string{{2}: "Damper pedal technique."}, []ID{{1}}); err != nil {
		t.Fatal(err)
	}
	hits, _ = x.Search("damper", 10)
	for _, h := range hits {
		if h.ID == (ID{1}) {
			t.Error("deleted document returned")
		}
	}
	if n, _ := x.Count(); n != 3 {
		t.Errorf("count %d", n)
	}
}
