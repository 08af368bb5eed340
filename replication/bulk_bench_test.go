package replication

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sostenuto/sostenuto/index"
)

// BenchmarkBulkApply is one node's share of the cluster benchmark's bulk
// phase, without the cluster: SOSTENUTO_BENCH_CHUNKS (20,000 by default)
// random chunks of 768 dimensions in transactions of 500, encoded as the
// leader proposes them, applied through ApplyBatch eight logs at a time
// (the feed's proposals in flight): decode, BM25 analysis, graph
// insertion. "v4" are entries without candidates (every node searches);
// "v5" carry the candidate neighbours a leader computed (shippedLogs,
// whose CPU per chunk is reported as leader-cpu-µs/chunk). cpu-µs/chunk is
// the process's CPU time per chunk applied. Run it with -cpuprofile to see
// where a node's apply CPU goes.
func BenchmarkBulkApply(b *testing.B) {
	n := 20_000
	if v, err := strconv.Atoi(os.Getenv("SOSTENUTO_BENCH_CHUNKS")); err == nil && v > 0 {
		n = v
	}
	r := rand.New(rand.NewPCG(7, 7))
	vecs := make([][]float32, n)
	for i := range vecs {
		vecs[i] = make([]float32, 768)
		for j := range vecs[i] {
			vecs[i][j] = float32(r.NormFloat64())
		}
	}
	plain := bulkLogs(b, vecs, 500)
	shipped, cands := shippedLogs(b, plain)
	leader := float64(cands.Microseconds()) / float64(n)
	for _, v := range []string{"v4", "v5"} {
		b.Run(v, func(b *testing.B) {
			logs := plain
			if v == "v5" {
				logs = shipped
			}
			for b.Loop() {
				f := NewFSM(index.NewLive(benchEngine(b)), index.DefaultConfig())
				start, cpu := time.Now(), cpuTime()
				applyInEights(b, f, logs)
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "chunks/s")
				b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(n), "cpu-µs/chunk")
				if v == "v5" {
					b.ReportMetric(leader, "leader-cpu-µs/chunk")
				}
			}
		})
	}
}

// applyInEights applies logs through ApplyBatch eight at a time.
func applyInEights(tb testing.TB, f *FSM, logs []*raft.Log) {
	tb.Helper()
	for i := 0; i < len(logs); i += 8 {
		for _, r := range f.ApplyBatch(logs[i:min(i+8, len(logs))]) {
			if r != nil {
				tb.Fatal(r)
			}
		}
	}
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bulkLogs is changes entries of perTx chunks of vecs, one document
// each, as the cluster benchmark's bulk phase writes them.
func bulkLogs(tb testing.TB, vecs [][]float32, perTx int) []*raft.Log {
	owner := rid('u', 0)
	var logs []*raft.Log
	for d := 0; d*perTx < len(vecs); d++ {
		doc := rid('d', d)
		ops := index.Ops{Documents: []index.Document{{ID: doc, OwnerID: owner, IsPublic: true, Title: "Doc"}},
			Position: index.Position{LSN: index.LSN(d + 1)}}
		for g := range min(perTx, len(vecs)-d*perTx) {
			ops.Upserts = append(ops.Upserts, index.Chunk{ID: rid('c', d*perTx+g), DocumentID: doc, OwnerID: owner, Title: "Doc",
				Text: fmt.Sprintf("legato pedal chunk %d of %d", g, d), Version: 1, Vector: vecs[d*perTx+g]})
		}
		data, err := ChangesEntry(ops, time.Now().UnixMilli()).Encode()
		if err != nil {
			tb.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: uint64(d + 1), Type: raft.LogCommand, Data: data})
	}
	return logs
}

// shippedLogs is logs as a leader proposes them with candidates: eight
// at a time in flight, each entry's candidates computed (withCandidates)
// in the leader's engine with the entries before it in its eight not yet
// applied, then the eight applied on the leader. It answers them and the
// CPU time the candidates took.
func shippedLogs(tb testing.TB, logs []*raft.Log) ([]*raft.Log, time.Duration) {
	tb.Helper()
	leader := NewFSM(index.NewLive(benchEngine(tb)), index.DefaultConfig())
	out := make([]*raft.Log, len(logs))
	var spent time.Duration
	for i := 0; i < len(logs); i += 8 {
		var inFlight []Entry
		for j := i; j < min(i+8, len(logs)); j++ {
			e, err := DecodeEntry(logs[j].Data)
			if err != nil {
				tb.Fatal(err)
			}
			cpu := cpuTime()
			withCandidates(leader.live.Engine(), e, inFlight)
			spent += cpuTime() - cpu
			inFlight = append(inFlight, e)
			data, err := e.Encode()
			if err != nil {
				tb.Fatal(err)
			}
			out[j] = &raft.Log{Index: logs[j].Index, Type: raft.LogCommand, Data: data}
		}
		applyInEights(tb, leader, out[i:min(i+8, len(logs))])
	}
	return out, spent
}

func benchEngine(tb testing.TB) *index.Engine {
	e, err := index.New(index.DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	return e
}
