package replication

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/sostenuto/sostenuto/index"
)

// batchTestLogs is a log holding every kind: a base in parts (a repair of
// the serving engine between them), a member, transactions, keepalives,
// repairs, a transaction refused (a vector of the wrong length), a log
// that does not decode and a log that is no command.
func batchTestLogs(t *testing.T) []*raft.Log {
	t.Helper()
	d := newRaftTestData(rand.New(rand.NewPCG(8, 8)), 13, 20)
	at := func(i int) index.Ops { return index.Ops{Documents: d.docs[i : i+1], Upserts: d.chunks[i*20 : i*20+20]} }
	bad := index.Ops{Upserts: []index.Chunk{d.rewrite(0, 9)}, Position: index.Position{LSN: 150}}
	bad.Upserts[0].Vector = []float32{1}
	entries := []Entry{BaseBeginEntry(), BasePartEntry(at(0)), RepairEntry(at(12)), BasePartEntry(at(1)), BaseEndEntry(100, 1),
		MemberEntry(Member{ID: "n1", HTTPAddr: "http://n1"})}
	for i := 2; i < 10; i++ {
		ops := at(i)
		ops.Position = index.Position{LSN: index.LSN(100 + 10*i)}
		ops.Upserts = append(ops.Upserts, d.rewrite(i-2, int64(i)))
		entries = append(entries, ChangesEntry(ops, int64(i)), KeepaliveEntry(index.LSN(105+10*i), int64(i)+1))
	}
	entries = append(entries, ChangesEntry(bad, 50), RepairEntry(index.Ops{Deletes: []index.ID{d.chunks[3].ID}}),
		RepairEntry(at(10)), KeepaliveEntry(310, 61))
	var logs []*raft.Log
	for _, e := range entries {
		b, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogCommand, Data: b})
	}
	logs = append(logs[:7], append([]*raft.Log{{Index: 8, Type: raft.LogCommand, Data: []byte{0xff}},
		{Index: 9, Type: raft.LogNoop}}, logs[7:]...)...)
	for i, l := range logs {
		l.Index = uint64(i + 1)
	}
	return logs
}

// Raft hands over committed entries in runs (BatchingFSM); applying them
// in runs of any length answers every log as Apply does and leaves the
// same index and FSM state — a refused transaction changes nothing, a
// log replayed at or before the applied index is skipped, and every
// entry is reported to OnApply once.
func TestApplyBatchMatchesApply(t *testing.T) {
	logs := batchTestLogs(t)
	one, runs := newTestFSMWith(t, raftTestIndexConfig()), newTestFSMWith(t, raftTestIndexConfig())
	var reportedOne, reportedRuns int
	one.OnApply = func(byte, int, error) { reportedOne++ }
	runs.OnApply = func(byte, int, error) { reportedRuns++ }
	var want []string
	for _, l := range logs {
		want = append(want, fmt.Sprint(one.Apply(l)))
	}
	r := rand.New(rand.NewPCG(9, 9))
	var got []string
	for i := 0; i < len(logs); {
		n := min(1+r.IntN(12), len(logs)-i)
		for _, a := range runs.ApplyBatch(logs[i : i+n]) {
			got = append(got, fmt.Sprint(a))
		}
		i += n
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("log %d: %s, Apply answered %s", i+1, got[i], want[i])
		}
	}
	if got := runs.ApplyBatch(logs[10:14]); got[0] != nil || got[1] != nil {
		t.Fatalf("replayed logs answered %v", got)
	}
	q := newRaftTestData(rand.New(rand.NewPCG(8, 8)), 1, 1).queries()
	if st := runs.State(); st.Position.LSN != 310 || st.CommitTime != 61 || !st.Based || len(st.Members) != 1 {
		t.Fatalf("state after the runs: %+v", st)
	}
	if a, b := digest(runs, q), digest(one, q); a != b || reportedRuns != reportedOne+4 {
		t.Fatalf("runs (%d reported)\n%s\none by one (%d reported)\n%s", reportedRuns, a, reportedOne, b)
	}
}
