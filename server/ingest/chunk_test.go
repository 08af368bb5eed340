package ingest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"
)

var vocabulary = strings.Fields(`legato staccato pedal sustain scale arpeggio chord tempo rubato phrase
	Bach Chopin Czerny étude nocturne fingering thumb wrist relaxed practise slowly metronome dynamics
	forte piano crescendo 16th-note triplet ♩=60 naïve 音楽 ピアノ café — "quoted" (paren)`)

// randomDoc makes pages of words with sentences and paragraphs.
func randomDoc(r *rand.Rand, pages int) []Segment {
	segs := make([]Segment, pages)
	for p := range segs {
		var b strings.Builder
		fmt.Fprintf(&b, "Page %d marker.", p+1)
		words := r.IntN(400)
		for i := 0; i < words; i++ {
			b.WriteString(" ")
			b.WriteString(vocabulary[r.IntN(len(vocabulary))])
			switch r.IntN(30) {
			case 0:
				b.WriteString(".")
			case 1:
				b.WriteString(".\n\n")
			case 2:
				b.WriteString("?\n")
			}
		}
		segs[p] = Segment{Text: b.String(), Page: p + 1}
		if r.IntN(8) == 0 {
			segs[p].Text = "" // a page with no text
		}
	}
	return segs
}

func TestChunkProperties(t *testing.T) {
	for _, cfg := range [][2]int{{512, 128}, {64, 16}, {32, 0}, {100, 49}} {
		c, err := NewChunker(cfg[0], cfg[1])
		if err != nil {
			t.Fatal(err)
		}
		for seed := range 25 {
			r := rand.New(rand.NewPCG(uint64(seed), uint64(cfg[0])))
			segs := randomDoc(r, 1+r.IntN(12))
			checkChunks(t, c, segs, fmt.Sprintf("size %d overlap %d seed %d", cfg[0], cfg[1], seed))
		}
	}
}

func checkChunks(t *testing.T, c *Chunker, segs []Segment, name string) {
	t.Helper()
	chunks := c.Split(segs)
	texts := make([]string, len(segs))
	for i, s := range segs {
		texts[i] = s.Text
	}
	doc := []rune(strings.Join(texts, SegmentSeparator))
	// The page of every character of the document.
	pageOf := make([]int, len(doc)+1)
	pos := 0
	for i, s := range segs {
		if i > 0 {
			for range []rune(SegmentSeparator) {
				pageOf[pos] = segs[i-1].Page
				pos++
			}
		}
		for range []rune(s.Text) {
			pageOf[pos] = s.Page
			pos++
		}
	}
	covered := make([]bool, len(doc))
	for i, ch := range chunks {
		if ch.Ordinal != i {
			t.Fatalf("%s: ordinal %d at %d", name, ch.Ordinal, i)
		}
		if ch.CharStart < 0 || ch.CharEnd > len(doc) || ch.CharStart >= ch.CharEnd || string(doc[ch.CharStart:ch.CharEnd]) != ch.Text {
			t.Fatalf("%s: chunk %d offsets [%d,%d) do not hold its text", name, i, ch.CharStart, ch.CharEnd)
		}
		if ch.TokenCount < 1 || ch.TokenCount > c.Size {
			t.Fatalf("%s: chunk %d has %d tokens (max %d)", name, i, ch.TokenCount, c.Size)
		}
		if n, _ := CountTokens(ch.Text); n > c.Size+2 {
			t.Fatalf("%s: chunk %d re-encodes to %d tokens (max %d)", name, i, n, c.Size)
		}
		if i > 0 {
			prev := chunks[i-1]
			if ch.tokStart != prev.tokEnd-c.Overlap {
				t.Fatalf("%s: chunk %d starts at token %d; the previous ended at %d (overlap %d)", name, i, ch.tokStart, prev.tokEnd, c.Overlap)
			}
			if c.Overlap > 0 && ch.CharStart >= prev.CharEnd {
				t.Fatalf("%s: chunks %d and %d do not overlap", name, i-1, i)
			}
		}
		for k := ch.CharStart; k < ch.CharEnd; k++ {
			covered[k] = true
			if !unicode.IsSpace(doc[k]) && (pageOf[k] < ch.PageStart || pageOf[k] > ch.PageEnd) {
				t.Fatalf("%s: chunk %d pages %d-%d hold a character of page %d", name, i, ch.PageStart, ch.PageEnd, pageOf[k])
			}
		}
	}
	for k, r := range doc {
		if !covered[k] && !unicode.IsSpace(r) {
			t.Fatalf("%s: character %d (%q) in no chunk", name, k, r)
		}
	}
}

func TestChunkPrefersBoundaries(t *testing.T) {
	c, _ := NewChunker(64, 8)
	para := strings.Repeat("The thumb passes under smoothly. ", 6) // ~42 tokens
	segs := []Segment{{Text: para + "\n\n" + para + "\n\n" + para, Page: 1}}
	chunks := c.Split(segs)
	if len(chunks) < 2 {
		t.Fatalf("%d chunks", len(chunks))
	}
	if !strings.HasSuffix(chunks[0].Text, "\n\n") {
		t.Errorf("first chunk does not end at the paragraph break: %q", chunks[0].Text[len(chunks[0].Text)-20:])
	}
	sentences := strings.Repeat("Keep the wrist loose. ", 40)
	chunks = c.Split([]Segment{{Text: sentences, Page: 1}})
	if !strings.HasSuffix(strings.TrimRight(chunks[0].Text, " "), ".") {
		t.Errorf("first chunk does not end at a sentence: %q", chunks[0].Text)
	}
}

func TestChunkPagesAndTimes(t *testing.T) {
	c, _ := NewChunker(512, 128)
	ms := func(v int64) *int64 { return &v }
	segs := []Segment{
		{Text: "Welcome to the lesson.", Page: 1, TimeStartMs: ms(0), TimeEndMs: ms(2500)},
		{Text: "Today: the damper pedal.", Page: 1, TimeStartMs: ms(2500), TimeEndMs: ms(6000)},
	}
	chunks := c.Split(segs)
	if len(chunks) != 1 || *chunks[0].TimeStartMs != 0 || *chunks[0].TimeEndMs != 6000 || chunks[0].PageStart != 1 {
		t.Errorf("chunks %+v", chunks)
	}
	if c.Split([]Segment{{Text: "  \n ", Page: 1}}) != nil {
		t.Error("blank document chunked")
	}
	if _, err := NewChunker(512, 300); err == nil {
		t.Error("overlap over half the size accepted")
	}
}
