// Package ingest turns knowledge sources into searchable chunks: fetch
// (with an SSRF guard) → extract (PDF pages, web main text, captions, text)
// → chunk (tiktoken windows with overlap at paragraph and sentence
// boundaries) → embed → store, as durable jobs.
package ingest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// Segment is a located piece of a source: a PDF page, a caption cue, a
// whole text. Page is 1-based (1 for unpaged sources).
type Segment struct {
	Text        string
	Page        int
	TimeStartMs *int64
	TimeEndMs   *int64
}

// Chunk is a retrievable window of a document. CharStart and CharEnd are
// character (rune) offsets into the document's text: its segments joined
// by a blank line. Text is exactly that span.
type Chunk struct {
	Ordinal     int
	Text        string
	TokenCount  int
	CharStart   int
	CharEnd     int
	PageStart   int
	PageEnd     int
	TimeStartMs *int64
	TimeEndMs   *int64

	tokStart, tokEnd int // the token window, for tests
}

// SegmentSeparator joins segments into the document text.
const SegmentSeparator = "\n\n"

var (
	encOnce sync.Once
	enc     *tiktoken.Tiktoken
	encErr  error
)

// encoding is cl100k_base, loaded from the BPE file compiled into the
// binary (tiktoken-go would otherwise download it).
func encoding() (*tiktoken.Tiktoken, error) {
	encOnce.Do(func() {
		tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
		enc, encErr = tiktoken.GetEncoding("cl100k_base")
	})
	return enc, encErr
}

// CountTokens counts cl100k_base tokens of text.
func CountTokens(text string) (int, error) {
	e, err := encoding()
	if err != nil {
		return 0, err
	}
	return len(e.EncodeOrdinary(text)), nil
}

// Chunker splits documents into windows of at most Size tokens, each
// starting Overlap tokens before the previous one ended, ending at a
// paragraph break or else a sentence end when one lies in the window's
// second half.
type Chunker struct {
	Size, Overlap int
	enc           *tiktoken.Tiktoken
}

// NewChunker returns a chunker; 512 and 128 are the defaults.
func NewChunker(size, overlap int) (*Chunker, error) {
	if size < 8 || overlap < 0 || overlap >= size/2 {
		return nil, fmt.Errorf("ingest: chunk size %d with overlap %d: need size >= 8 and overlap < size/2", size, overlap)
	}
	e, err := encoding()
	if err != nil {
		return nil, fmt.Errorf("ingest: tokenizer: %w", err)
	}
	return &Chunker{Size: size, Overlap: overlap, enc: e}, nil
}

// Split chunks a document given as segments.
func (c *Chunker) Split(segs []Segment) []Chunk {
	// Invalid UTF-8 (a broken PDF, a mislabelled page) becomes U+FFFD
	// first: the tokenizer decodes such bytes to that character, and every
	// offset below must be an offset of the text it counts in.
	segs = slices.Clone(segs)
	texts := make([]string, len(segs))
	for i, s := range segs {
		segs[i].Text = strings.ToValidUTF8(s.Text, "\uFFFD")
		texts[i] = segs[i].Text
	}
	doc := strings.Join(texts, SegmentSeparator)
	if strings.TrimSpace(doc) == "" {
		return nil
	}
	offs := c.tokenOffsets(doc)
	n := len(offs) - 1
	loc := newLocator(segs, doc)
	var chunks []Chunk
	for start := 0; start < n; {
		end := c.windowEnd(doc, offs, start, n)
		bs, be := runeStart(doc, offs[start]), runeEnd(doc, offs[end])
		ch := Chunk{Ordinal: len(chunks), Text: doc[bs:be], TokenCount: end - start,
			CharStart: loc.chars(bs), CharEnd: loc.chars(be), tokStart: start, tokEnd: end}
		ch.PageStart, ch.PageEnd, ch.TimeStartMs, ch.TimeEndMs = loc.span(bs, be)
		if strings.TrimSpace(ch.Text) != "" {
			ch.Ordinal = len(chunks)
			chunks = append(chunks, ch)
		}
		if end == n {
			break
		}
		start = end - c.Overlap
	}
	return chunks
}

// tokenOffsets returns the byte offset where each token starts, plus
// len(doc) at the end.
func (c *Chunker) tokenOffsets(doc string) []int {
	toks := c.enc.EncodeOrdinary(doc)
	offs := make([]int, 0, len(toks)+1)
	pos := 0
	for _, t := range toks {
		offs = append(offs, min(pos, len(doc)))
		pos += len(c.enc.Decode([]int{t}))
	}
	// Decoded tokens add up to the text (valid UTF-8 by then); offsets are
	// clamped to it regardless.
	return append(offs, len(doc))
}

// windowEnd picks where the window starting at token start ends.
func (c *Chunker) windowEnd(doc string, offs []int, start, n int) int {
	hard := min(start+c.Size, n)
	if hard == n {
		return n
	}
	floor := start + c.Size/2
	for e := hard; e > floor; e-- {
		if strings.HasSuffix(doc[:offs[e]], "\n\n") {
			return e
		}
	}
	for e := hard; e > floor; e-- {
		if sentenceEnd(doc, offs[e]) {
			return e
		}
	}
	return hard
}

// sentenceEnd reports whether byte offset i follows a sentence's end.
func sentenceEnd(doc string, i int) bool {
	if i == 0 || i >= len(doc) {
		return false
	}
	prev := doc[i-1]
	if prev == '\n' {
		return true
	}
	next := doc[i]
	return (prev == '.' || prev == '!' || prev == '?' || prev == ';' || prev == ':') && (next == ' ' || next == '\n')
}

// runeStart and runeEnd move a byte offset to a rune boundary (tokens may
// split a multi-byte character).
func runeStart(s string, i int) int {
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}

func runeEnd(s string, i int) int {
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return i
}

// locator maps byte offsets of the document text to characters, pages and
// caption times.
type locator struct {
	segs   []Segment
	starts []int // byte offset where each segment starts
	doc    string
	// checkpoints hold (byte offset, rune index) pairs at rune starts about
	// every stride bytes, to count runes from the nearest one.
	cpBytes, cpRunes []int
}

const stride = 256

func newLocator(segs []Segment, doc string) *locator {
	l := &locator{segs: segs, doc: doc}
	pos := 0
	for i, s := range segs {
		if i > 0 {
			pos += len(SegmentSeparator)
		}
		l.starts = append(l.starts, pos)
		pos += len(s.Text)
	}
	l.cpBytes, l.cpRunes = []int{0}, []int{0}
	runes, last := 0, 0
	for b := range doc { // b walks rune starts
		if b-last >= stride {
			l.cpBytes, l.cpRunes = append(l.cpBytes, b), append(l.cpRunes, runes)
			last = b
		}
		runes++
	}
	return l
}

// chars converts a byte offset (on a rune boundary) to a rune offset.
func (l *locator) chars(b int) int {
	k := sort.Search(len(l.cpBytes), func(i int) bool { return l.cpBytes[i] > b }) - 1
	return l.cpRunes[k] + utf8.RuneCountInString(l.doc[l.cpBytes[k]:b])
}

// segmentAt is the index of the segment holding byte b (a separator
// belongs to the segment before it).
func (l *locator) segmentAt(b int) int {
	return max(0, sort.Search(len(l.starts), func(i int) bool { return l.starts[i] > b })-1)
}

func (l *locator) span(bs, be int) (pageStart, pageEnd int, t0, t1 *int64) {
	first, last := l.segmentAt(bs), l.segmentAt(max(bs, be-1))
	// A chunk that starts inside a separator starts with the next segment.
	if first < last && bs >= l.starts[first]+len(l.segs[first].Text) {
		first++
	}
	pageStart, pageEnd = max(1, l.segs[first].Page), max(1, l.segs[last].Page)
	if pageEnd < pageStart {
		pageEnd = pageStart
	}
	for i := first; i <= last; i++ {
		s := l.segs[i]
		if s.TimeStartMs != nil && t0 == nil {
			t0 = s.TimeStartMs
		}
		if s.TimeEndMs != nil {
			t1 = s.TimeEndMs
		}
	}
	return pageStart, pageEnd, t0, t1
}
