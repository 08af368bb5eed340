package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The cluster benchmark's exact commit-to-searchable figures: every node
// logs (debug) a "searchable" line per transaction it makes searchable,
// and the benchmark reads them back, so its percentiles are order
// statistics of the 300 samples, not interpolations inside a histogram's
// bucket, and the slowest transactions can be shown with what happened
// around them.

// jsonLine is the part of a node's JSON log line the analysis reads.
type jsonLine struct {
	Time       time.Time `json:"time"`
	Msg        string    `json:"msg"`
	Index      uint64    `json:"index"`
	LSN        any       `json:"lsn"`
	CommitMs   int64     `json:"commit_ms"`
	LagMs      int64     `json:"lag_ms"`
	RunStartMs int64     `json:"run_start_ms"`
	RunEntries int       `json:"run_entries"`
	ApplyMs    int64     `json:"apply_ms"`
	ReceiveMs  int64     `json:"commit_to_receive_ms"`
	ProposeMs  int64     `json:"propose_ms"`
	StartedMs  int64     `json:"started"`
	Ms         int64     `json:"ms"`
	Entries    int       `json:"entries"`
	Bytes      int64     `json:"bytes"`
}

// parseLog reads the JSON lines of a node's log (other lines are passed by).
func parseLog(logs string) []jsonLine {
	var out []jsonLine
	for _, l := range strings.Split(logs, "\n") {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var ll jsonLine
		if json.Unmarshal([]byte(l), &ll) == nil {
			out = append(out, ll)
		}
	}
	return out
}

// lsnKey is a position as the log wrote it, for matching lines.
func lsnKey(v any) string { return fmt.Sprint(v) }

// searchables are a node's "searchable" lines of transactions committed
// at or after since, in Raft order.
func searchables(lines []jsonLine, since time.Time) []jsonLine {
	var out []jsonLine
	for _, l := range lines {
		if l.Msg == "searchable" && l.CommitMs >= since.UnixMilli() {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b jsonLine) int { return int(a.Index) - int(b.Index) })
	return out
}

// exactQuantile is the nearest-rank q-quantile of sorted: the smallest
// sample at or above which lies a fraction q of the samples.
func exactQuantile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return -1
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// writerTx is one transaction of the benchmark's steady writer: when its
// statement started and when its commit returned.
type writerTx struct{ start, end time.Time }

// lagReport prints a node's exact steady-phase lags and its slowest
// transactions, each with its run on this node, the leader's feed, the
// writer and the snapshots and slow log stores around it.
func lagReport(id string, lines, leader []jsonLine, tx []writerTx, since time.Time, worst int) {
	s := searchables(lines, since)
	lags := make([]int64, len(s))
	for i, l := range s {
		lags[i] = l.LagMs
	}
	sorted := slices.Clone(lags)
	slices.Sort(sorted)
	fmt.Printf("%s: steady, exact from %d per-transaction lines: commit-to-searchable p50 %d ms, p95 %d ms, p99 %d ms, max %d ms\n",
		id, len(s), exactQuantile(sorted, 0.5), exactQuantile(sorted, 0.95), exactQuantile(sorted, 0.99), exactQuantile(sorted, 1))
	order := make([]int, len(s))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return int(lags[b] - lags[a]) })
	for _, i := range order[:min(worst, len(order))] {
		fmt.Printf("  %s\n", describeTx(i, s[i], leader, tx, since))
	}
	for _, e := range nodeEvents(lines, since) {
		fmt.Printf("  %s event: %s\n", id, e)
	}
}

// describeTx tells one slow transaction's story.
func describeTx(i int, l jsonLine, leader []jsonLine, tx []writerTx, since time.Time) string {
	commit := time.UnixMilli(l.CommitMs)
	wait := l.RunStartMs - l.CommitMs
	b := fmt.Sprintf("tx %d (raft %d) committed at +%.3f s: searchable after %d ms = %d ms waiting + %d ms applying a run of %d",
		i, l.Index, commit.Sub(since).Seconds(), l.LagMs, wait, l.ApplyMs, l.RunEntries)
	for _, r := range leader {
		if r.Msg == "transaction replicated" && lsnKey(r.LSN) == lsnKey(l.LSN) {
			b += fmt.Sprintf("; leader received it %d ms after the commit, settled %d ms after", r.ReceiveMs, r.ProposeMs)
		}
	}
	if i < len(tx) {
		b += fmt.Sprintf("; the writer's statement took %d ms", tx[i].end.Sub(tx[i].start).Milliseconds())
	}
	return b
}

// nodeEvents are a node's snapshots and slow Raft log stores since the
// steady phase began, with times relative to it.
func nodeEvents(lines []jsonLine, since time.Time) []string {
	var out []string
	for _, l := range lines {
		if l.Time.Before(since) {
			continue
		}
		switch l.Msg {
		case "snapshot written":
			start := time.UnixMilli(l.StartedMs)
			out = append(out, fmt.Sprintf("snapshot %.0f MiB from +%.3f s to +%.3f s (%d ms)",
				float64(l.Bytes)/(1<<20), start.Sub(since).Seconds(), l.Time.Sub(since).Seconds(), l.Ms))
		case "slow raft log store":
			out = append(out, fmt.Sprintf("slow raft log store of %d entries, %d ms, ending +%.3f s", l.Entries, l.Ms, l.Time.Sub(since).Seconds()))
		}
	}
	return out
}

// slowWrites lists the steady writer's statements over bound.
func slowWrites(tx []writerTx, since time.Time, bound time.Duration) {
	for i, t := range tx {
		if d := t.end.Sub(t.start); d > bound {
			fmt.Printf("writer: tx %d at +%.3f s took %d ms\n", i, t.start.Sub(since).Seconds(), d.Milliseconds())
		}
	}
}

// steadyReport prints every node's exact lags and five slowest
// transactions of the steady phase (which began at since), read from the
// nodes' debug logs, and the writer's slow statements.
func steadyReport(c *testCluster, since time.Time, writes []writerTx) {
	var leader []jsonLine
	if l := c.leader(); l != nil {
		leader = parseLog(l.logs.String())
		fmt.Printf("steady: %s leads\n", l.id)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		lagReport(id, parseLog(c.nodes[id].logs.String()), leader, writes, since, 5)
	}
	slowWrites(writes, since, 50*time.Millisecond)
}
