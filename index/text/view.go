package text

import "slices"

// Frozen returns a read-only copy of the index as it is now, for writing a
// snapshot while Batch and Regroup go on against x. It is cheap: what only
// grows by appending (document ids and lengths, term keys, each term's
// postings) is shared up to its current length — a later append writes
// past it, and compaction replaces the arrays instead of writing into
// them — and what changes in place (tombstones, document frequencies, the
// posting lists' headers) is copied: a byte a document, 28 bytes a term.
// The copy answers WriteTo, Count and Terms; it must not be written to.
func (x *Index) Frozen() *Index {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n, t := len(x.ids), len(x.terms)
	return &Index{ans: x.ans, langs: x.langs, live: x.live, liveLen: x.liveLen,
		ids: x.ids[:n:n], lens: x.lens[:n:n], dead: slices.Clone(x.dead),
		terms: x.terms[:t:t], df: slices.Clone(x.df), postings: slices.Clone(x.postings)}
}
