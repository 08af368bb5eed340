package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// contentHashVersion changes when what the hash covers changes: every
// document's next refresh then rebuilds its chunks once.
const contentHashVersion = "sostenuto-content/v1"

// ContentHash names what a document's chunks are made from: its extracted
// segments (text, page, caption times) and the settings that cut and
// embed them (chunk size and overlap, the embedding model). Two
// extractions with the same hash give the same chunks, so a refresh that
// finds it unchanged keeps them (docs/INGESTION.md "Refresh").
func ContentHash(segs []Segment, chunker *Chunker, model string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%q\x00", contentHashVersion, chunker.Size, chunker.Overlap, model)
	for _, s := range segs {
		fmt.Fprintf(h, "%d\x00%s\x00%s\x00%d\x00", s.Page, msText(s.TimeStartMs), msText(s.TimeEndMs), len(s.Text))
		h.Write([]byte(s.Text))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func msText(ms *int64) string {
	if ms == nil {
		return "-"
	}
	return fmt.Sprint(*ms)
}
