package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// BenchmarkLoadUnderFaults runs 200 users (an open model: 200 requests a
// second, vegeta) against a three-node cluster behind sostenuto-edge for
// SOSTENUTO_BENCH_SECONDS (75): at 15 s PostgreSQL is stopped (immediate
// shutdown, a crash) and started again 3 s later; at 45 s the Raft leader
// is SIGKILLed and stays down. The requests are a student's day: their
// projects, the knowledge list, searches and chat questions. It prints the
// errors second by second, the window each fault's errors fall in and the
// time until every request succeeds again.
//
//	SOSTENUTO_TEST_DATABASE_URL_FILE=$PWD/.data/test/database_url \
//	  go test ./bench -run '^$' -bench LoadUnderFaults -benchtime 1x -timeout 30m
func BenchmarkLoadUnderFaults(b *testing.B) {
	for b.Loop() {
		loadUnderFaults(b)
	}
}

type faultProc struct {
	id, base string
	cmd      *exec.Cmd
	logs     *bytes.Buffer
}

func loadUnderFaults(b *testing.B) {
	seconds := 75
	if v := os.Getenv("SOSTENUTO_BENCH_SECONDS"); v != "" {
		fmt.Sscan(v, &seconds)
	}
	pgFault, leaderFault := 15*time.Second, 45*time.Second
	if seconds < 50 {
		leaderFault = time.Duration(seconds-5) * time.Second
	}
	pg := pgtest.NewCluster(b)
	nodeBin, edgeBin := build(b, "../cmd/sostenuto"), build(b, "../cmd/sostenuto-edge")
	port := freePort
	dataDir, certs := b.TempDir(), b.TempDir()
	var procs []*faultProc
	start := func(id, join string) *faultProc {
		p := &faultProc{id: id, base: fmt.Sprintf("http://127.0.0.1:%d", port()), logs: &bytes.Buffer{}}
		env := append(append(cleanEnv(), noRateLimits...), "SOSTENUTO_DATABASE_URL="+pg.URL(), "SOSTENUTO_LISTEN="+strings.TrimPrefix(p.base, "http://"),
			fmt.Sprintf("SOSTENUTO_RAFT_BIND=127.0.0.1:%d", port()), "SOSTENUTO_RAFT_DIR="+filepath.Join(b.TempDir(), "raft"), "SOSTENUTO_NODE_ID="+id,
			"SOSTENUTO_DATA_DIR="+dataDir, "SOSTENUTO_CLUSTER_SECRET=faults-cluster-secret-0123456789", "SOSTENUTO_LOG_LEVEL=info",
			"SOSTENUTO_RECALL_EVERY=0s", "SOSTENUTO_ANTI_ENTROPY_EVERY=0s", "SOSTENUTO_TRUSTED_PROXIES=127.0.0.1")
		env = append(env, raftTLS(b, nodeBin, certs, id)...)
		if join != "" {
			env = append(env, "SOSTENUTO_JOIN="+join)
		}
		p.cmd = exec.Command(nodeBin, "serve")
		p.cmd.Env = env
		p.cmd.Stderr = p.logs
		if err := p.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if p.cmd != nil {
				p.cmd.Process.Kill()
				p.cmd.Wait()
			}
			if dir := os.Getenv("SOSTENUTO_BENCH_LOGS"); dir != "" {
				os.WriteFile(filepath.Join(dir, "faults-"+p.id+".log"), p.logs.Bytes(), 0o644)
			}
		})
		waitReady(b, p.base+"/api/ready")
		procs = append(procs, p)
		return p
	}
	n1 := start("n1", "")
	start("n2", n1.base)
	start("n3", n1.base)
	edgeBase := fmt.Sprintf("http://127.0.0.1:%d", port())
	nodes := []string{}
	for _, p := range procs {
		nodes = append(nodes, p.base)
	}
	edge := exec.Command(edgeBin)
	edge.Env = append(cleanEnv(), "SOSTENUTO_EDGE_LISTEN="+strings.TrimPrefix(edgeBase, "http://"), "SOSTENUTO_EDGE_NODES="+strings.Join(nodes, ","),
		"SOSTENUTO_EDGE_HEALTH_INTERVAL=250ms", "SOSTENUTO_EDGE_LOG_LEVEL=warn")
	if err := edge.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { edge.Process.Kill(); edge.Wait() })
	waitReady(b, edgeBase+"/edge/health")

	// Data: 20 teachers with 50 documents of 100 CISI chunks (a third
	// public), 200 students each linked to two teachers.
	cisi, err := CISIDir()
	if err != nil {
		b.Fatal(err)
	}
	docs, _ := LoadCISI(cisi)
	queries, _ := LoadCISIQueries(cisi)
	sentences := CISISentences(docs)
	for i := range sentences {
		sentences[i] += "."
	}
	students := seedLibrary(b, pg.URL(), 20, 200, 50, 100, sentences).students
	adminToken := login(b, edgeBase, "admin0@example.com")
	status := func(p *faultProc) (st struct {
		Role   string `json:"role"`
		Chunks int    `json:"chunks"`
	}) {
		req, _ := http.NewRequest("GET", p.base+"/api/cluster/status", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		if resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req); err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		return st
	}
	tokens := make([]string, len(students))
	for i := range students {
		tokens[i] = login(b, edgeBase, fmt.Sprintf("student%d@example.com", i))
	}
	questions := make([]string, len(queries))
	for i, q := range queries {
		questions[i] = ContentWords(q.Text, 4)
	}
	// Every node has the 5,000 chunks before the load starts.
	for _, p := range procs {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if st := status(p); st.Chunks >= 5000 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// The load: 200 requests a second, a quarter each of the four kinds.
	var mu sync.Mutex
	tr := rand.New(rand.NewPCG(1, 2))
	targeter := func(t *vegeta.Target) error {
		mu.Lock()
		i, kind, q := tr.IntN(len(tokens)), tr.IntN(4), questions[tr.IntN(len(questions))]
		mu.Unlock()
		t.Header = http.Header{"Authorization": {"Bearer " + tokens[i]}, "Content-Type": {"application/json"}}
		switch kind {
		case 0:
			t.Method, t.URL, t.Body = "GET", edgeBase+"/api/projects", nil
		case 1:
			t.Method, t.URL, t.Body = "GET", edgeBase+"/api/knowledge?limit=20", nil
		case 2:
			t.Method, t.URL = "POST", edgeBase+"/api/search"
			t.Body, _ = json.Marshal(map[string]any{"query": q, "k": 10})
		default:
			t.Method, t.URL = "POST", edgeBase+"/api/chat/query"
			t.Body, _ = json.Marshal(map[string]any{"query": "What is known about " + q + "?"})
		}
		return nil
	}
	type outcome struct {
		at     time.Duration
		code   uint16
		lat    time.Duration
		kind   string
		errMsg string
	}
	var results []outcome
	began := time.Now()
	faults := map[string]time.Duration{}
	var leaderID string
	var fmu sync.Mutex // faults, leaderID
	mark := func(name string) {
		fmu.Lock()
		faults[name] = time.Since(began)
		fmu.Unlock()
	}
	go func() {
		time.Sleep(pgFault)
		mark("postgres stopped")
		pg.Stop()
		time.Sleep(3 * time.Second)
		pg.Start()
		mark("postgres started")
	}()
	go func() {
		time.Sleep(leaderFault)
		// The leader, found through the status of each node (a few tries:
		// an election may be under way).
		var victim *faultProc
		for attempt := 0; attempt < 20 && victim == nil; attempt++ {
			for _, p := range procs {
				if status(p).Role == "leader" {
					victim = p
					break
				}
			}
			if victim == nil {
				time.Sleep(250 * time.Millisecond)
			}
		}
		if victim != nil {
			fmu.Lock()
			leaderID = victim.id
			fmu.Unlock()
			victim.cmd.Process.Signal(syscall.SIGKILL)
			victim.cmd.Wait()
			victim.cmd = nil
		}
		mark("leader killed")
	}()
	attacker := vegeta.NewAttacker(vegeta.Timeout(30*time.Second), vegeta.KeepAlive(true), vegeta.MaxWorkers(2000))
	for res := range attacker.Attack(targeter, vegeta.Rate{Freq: 200, Per: time.Second}, time.Duration(seconds)*time.Second, "faults") {
		kind := res.Method + " " + strings.TrimPrefix(strings.SplitN(res.URL, "?", 2)[0], edgeBase)
		results = append(results, outcome{at: res.Timestamp.Sub(began), code: res.Code, lat: res.Latency, kind: kind, errMsg: res.Error})
	}

	// Report: per second, then per fault.
	fmu.Lock()
	defer fmu.Unlock()
	sort.Slice(results, func(i, j int) bool { return results[i].at < results[j].at })
	fmt.Printf("\nload under faults: 3 nodes + edge + PostgreSQL on this machine, 200 requests/s for %d s (open model)\n", seconds)
	if leaderID == "" {
		leaderID = "(none found: no leader)"
	}
	fmt.Printf("faults: PostgreSQL stopped at %s, started at %s; leader %s SIGKILLed at %s\n",
		faults["postgres stopped"].Round(100*time.Millisecond), faults["postgres started"].Round(100*time.Millisecond), leaderID, faults["leader killed"].Round(100*time.Millisecond))
	fmt.Printf("%6s %8s %8s %9s %9s  %s\n", "second", "requests", "errors", "p50", "p99", "errors by kind and status")
	bySecond := map[int][]outcome{}
	for _, o := range results {
		bySecond[int(o.at/time.Second)] = append(bySecond[int(o.at/time.Second)], o)
	}
	total, failed := 0, 0
	for s := 0; s <= seconds; s++ {
		sec := bySecond[s]
		if len(sec) == 0 {
			continue
		}
		var lats []time.Duration
		errs := map[string]int{}
		n := 0
		for _, o := range sec {
			lats = append(lats, o.lat)
			if o.code < 200 || o.code >= 300 {
				n++
				errs[fmt.Sprintf("%s %d", o.kind, o.code)]++
			}
		}
		total += len(sec)
		failed += n
		keys := make([]string, 0, len(errs))
		for k, v := range errs {
			keys = append(keys, fmt.Sprintf("%s×%d", k, v))
		}
		sort.Strings(keys)
		fmt.Printf("%6d %8d %8d %9s %9s  %s\n", s, len(sec), n, pct(lats, 50), pct(lats, 99), strings.Join(keys, ", "))
	}
	fmt.Printf("total: %d requests, %d failed (%.2f%%)\n", total, failed, 100*float64(failed)/float64(max(total, 1)))
	window := func(name string, from, to time.Duration) {
		var first, last time.Duration = -1, -1
		n := 0
		for _, o := range results {
			if o.at >= from && o.at < to && (o.code < 200 || o.code >= 300) {
				if first < 0 {
					first = o.at
				}
				last, n = o.at, n+1
			}
		}
		if n == 0 {
			fmt.Printf("%-18s no failed request\n", name)
			return
		}
		fmt.Printf("%-18s %d failed requests sent between %s and %s; every request sent %s after the fault succeeds\n",
			name, n, first.Round(10*time.Millisecond), last.Round(10*time.Millisecond), (last - from - time.Second).Round(10*time.Millisecond))
	}
	// A request sent just before a fault may be answered after it: each
	// window starts a second early (results are stamped when sent).
	window("before any fault", 0, faults["postgres stopped"]-time.Second)
	window("PostgreSQL restart", faults["postgres stopped"]-time.Second, faults["leader killed"]-time.Second)
	window("leader killed", faults["leader killed"]-time.Second, time.Duration(seconds+30)*time.Second)
}
