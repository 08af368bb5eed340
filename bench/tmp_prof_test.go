package bench

import (
	"bufio"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/index"
)

func BenchmarkTmpBM25(b *testing.B) {
	f, _ := os.Open("/tmp/snap100k")
	e, err := index.ReadSnapshot(index.DefaultConfig(), bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		b.Fatal(err)
	}
	dir, _ := CISIDir()
	cq, _ := LoadCISIQueries(dir)
	var qs []string
	for _, q := range cq {
		var ws []string
		for _, w := range strings.Fields(q.Text) {
			if len(w) > 4 {
				ws = append(ws, strings.Trim(w, ".,?;:()\""))
			}
			if len(ws) == 3 {
				break
			}
		}
		qs = append(qs, strings.Join(ws, " "))
	}
	mode := os.Getenv("MODE")
	b.ResetTimer()
	var lat []float64
	for i := 0; b.Loop(); i++ {
		s := time.Now()
		q := index.Query{K: 10, Mode: index.ModeBM25, Text: qs[i%len(qs)], Scope: index.Scope{Admin: true}}
		if mode == "student" {
			q.Scope = index.Scope{User: index.ID(vid(1_000_007)), Teachers: []index.ID{index.ID(vid(1_000_008))}}
		}
		e.Search(q)
		lat = append(lat, float64(time.Since(s).Microseconds()))
	}
	sort.Float64s(lat)
	logf(b, "n %d p50 %.0f p95 %.0f", len(lat), lat[len(lat)/2], lat[len(lat)*95/100])
}
