package replication

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sostenuto/sostenuto/index"
)

// BenchmarkBulkApply is one node's share of the cluster benchmark's bulk
// phase, without the cluster: SOSTENUTO_BENCH_CHUNKS (20,000 by default)
// chunks of 768 dimensions in transactions of 500, encoded as the leader
// proposes them, applied through ApplyBatch eight logs at a time (the
// feed's proposals in flight): decode, BM25 analysis, graph insertion.
// Run it with -cpuprofile to see where a node's apply CPU goes.
func BenchmarkBulkApply(b *testing.B) {
	n := 20_000
	if v, err := strconv.Atoi(os.Getenv("SOSTENUTO_BENCH_CHUNKS")); err == nil && v > 0 {
		n = v
	}
	logs := bulkLogs(b, n, 500)
	for b.Loop() {
		f := NewFSM(index.NewLive(benchEngine(b)), index.DefaultConfig())
		start := time.Now()
		for i := 0; i < len(logs); i += 8 {
			for _, r := range f.ApplyBatch(logs[i:min(i+8, len(logs))]) {
				if r != nil {
					b.Fatal(r)
				}
			}
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "chunks/s")
	}
}

// bulkLogs is n chunks as changes entries of perTx chunks, one document
// each, as the cluster benchmark's bulk phase writes them.
func bulkLogs(b *testing.B, n, perTx int) []*raft.Log {
	r := rand.New(rand.NewPCG(7, 7))
	owner := rid('u', 0)
	var logs []*raft.Log
	for d := 0; d*perTx < n; d++ {
		doc := rid('d', d)
		ops := index.Ops{Documents: []index.Document{{ID: doc, OwnerID: owner, IsPublic: true, Title: "Doc"}},
			Position: index.Position{LSN: index.LSN(d + 1)}}
		for g := range perTx {
			v := make([]float32, 768)
			for j := range v {
				v[j] = float32(r.NormFloat64())
			}
			ops.Upserts = append(ops.Upserts, index.Chunk{ID: rid('c', d*perTx+g), DocumentID: doc, OwnerID: owner, Title: "Doc",
				Text: fmt.Sprintf("legato pedal chunk %d of %d", g, d), Version: 1, Vector: v})
		}
		data, err := ChangesEntry(ops, time.Now().UnixMilli()).Encode()
		if err != nil {
			b.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: uint64(d + 1), Type: raft.LogCommand, Data: data})
	}
	return logs
}

func benchEngine(b *testing.B) *index.Engine {
	e, err := index.New(index.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	return e
}
