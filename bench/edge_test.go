package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/blob/blobtest"
	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// BenchmarkEdge measures what sostenuto-edge costs and saves, against the
// same node reached directly, in one run: one node (embedded defaults,
// PDFs on versitygw) and one edge on this machine.
//
//	SOSTENUTO_TEST_DATABASE_URL_FILE=$PWD/.data/test/database_url \
//	  go test ./bench -run '^$' -bench Edge -benchtime 1x -timeout 30m
//
// Proxied request latency: GET /api/health and an authenticated GET
// /api/projects, 3,000 sequential requests each, direct and through the
// edge, interleaved (median and p99; the difference is the edge).
// Streaming throughput: a 64 MiB PDF read whole, 1 and 8 clients, from the
// node (which reads S3 and copies) and from the edge (which reads S3 after
// a node's kept decision). Answer cache: POST /api/chat/query answered by
// the node (its own answer cache hit) and by the edge (a kept answer
// revalidated, 304).
func BenchmarkEdge(b *testing.B) {
	for b.Loop() {
		edgeBench(b)
	}
}

func edgeBench(b *testing.B) {
	db := pgtest.NewEmptyDB(b, "")
	s3 := blobtest.Start(b)
	nodeBin, edgeBin := build(b, "../cmd/sostenuto"), build(b, "../cmd/sostenuto-edge")
	port := freePort
	s3env := func(prefix string) []string {
		return []string{prefix + "S3_ENDPOINT=" + s3.Config.Endpoint, prefix + "S3_REGION=" + s3.Config.Region, prefix + "S3_BUCKET=" + s3.Config.Bucket,
			prefix + "S3_ACCESS_KEY_ID=" + s3.Config.AccessKeyID, prefix + "S3_SECRET_ACCESS_KEY=" + s3.Config.SecretAccessKey, prefix + "S3_PATH_STYLE=true"}
	}
	run := func(bin string, args []string, env ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(cleanEnv(), env...)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	nodePort, edgePort := port(), port()
	direct, viaEdge := fmt.Sprintf("http://127.0.0.1:%d", nodePort), fmt.Sprintf("http://127.0.0.1:%d", edgePort)
	run(nodeBin, []string{"serve"}, append(append(append(s3env("SOSTENUTO_"), noRateLimits...), "SOSTENUTO_DATABASE_URL="+db.URL, fmt.Sprintf("SOSTENUTO_LISTEN=127.0.0.1:%d", nodePort),
		"SOSTENUTO_DATA_DIR="+b.TempDir(), fmt.Sprintf("SOSTENUTO_RAFT_BIND=127.0.0.1:%d", port()), "SOSTENUTO_BLOB_BACKEND=s3",
		"SOSTENUTO_RECALL_EVERY=0s", "SOSTENUTO_LOG_LEVEL=warn", "SOSTENUTO_TRUSTED_PROXIES=127.0.0.1"), raftTLS(b, nodeBin, b.TempDir(), "n1")...)...)
	waitReady(b, direct+"/api/ready")
	run(edgeBin, nil, append(s3env("SOSTENUTO_EDGE_"), fmt.Sprintf("SOSTENUTO_EDGE_LISTEN=127.0.0.1:%d", edgePort), "SOSTENUTO_EDGE_NODES="+direct,
		"SOSTENUTO_EDGE_BLOB_BACKEND=s3", "SOSTENUTO_EDGE_LOG_LEVEL=warn")...)
	waitReady(b, viaEdge+"/edge/health")

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	do := func(method, url, token string, body []byte, hdr ...string) (int, []byte, http.Header) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, _ := http.NewRequest(method, url, rd)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out, resp.Header
	}
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	_, raw, _ := do("POST", direct+"/api/auth/register", "", []byte(`{"email":"bench@example.com","password":"correct horse battery staple","display_name":"B","role":"teacher"}`))
	json.Unmarshal(raw, &sess)
	tok := sess.AccessToken

	fmt.Printf("\nedge benchmark (one node, one edge, versitygw, PostgreSQL; same machine)\n")
	// 1. Proxied latency.
	fmt.Printf("%-34s %10s %10s %10s %10s %12s\n", "request (3,000 sequential)", "direct p50", "edge p50", "direct p99", "edge p99", "added p50")
	for _, c := range []struct {
		name, path, token string
	}{{"GET /api/health", "/api/health", ""}, {"GET /api/projects (token)", "/api/projects", tok}} {
		var d, e []time.Duration
		for i := 0; i < 3000; i++ {
			for j, base := range []string{direct, viaEdge} {
				start := time.Now()
				if st, body, _ := do("GET", base+c.path, c.token, nil); st != 200 {
					b.Fatalf("%s: %d %s", c.path, st, body)
				}
				if j == 0 {
					d = append(d, time.Since(start))
				} else {
					e = append(e, time.Since(start))
				}
			}
		}
		fmt.Printf("%-34s %10s %10s %10s %10s %12s\n", c.name, pct(d, 50), pct(e, 50), pct(d, 99), pct(e, 99), pct(e, 50)-pct(d, 50))
	}

	// 2. Streaming throughput.
	page := strings.Repeat("Allegro con brio, the left hand steady under the melody. ", 2300) // ~130 KB a page
	pdf := pdftest.Generate(512, func(int) string { return page })
	var created struct {
		Project struct {
			ID string `json:"id"`
		} `json:"project"`
		Upload struct {
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
		} `json:"upload"`
	}
	_, raw, _ = do("POST", direct+"/api/projects", tok, []byte(`{"title":"Big","filename":"big.pdf"}`))
	json.Unmarshal(raw, &created)
	req, _ := http.NewRequest("PUT", created.Upload.URL, bytes.NewReader(pdf))
	for k, v := range created.Upload.Headers {
		req.Header.Set(k, v)
	}
	if resp, err := client.Do(req); err != nil || resp.StatusCode != 200 {
		b.Fatalf("upload: %v %v", resp, err)
	}
	if st, body, _ := do("POST", direct+"/api/projects/"+created.Project.ID+"/confirm", tok, nil); st != 200 {
		b.Fatalf("confirm: %d %s", st, body)
	}
	fmt.Printf("\n%-34s %14s %14s %8s\n", fmt.Sprintf("stream a %.0f MiB PDF (MiB/s)", float64(len(pdf))/(1<<20)), "direct (node)", "edge (S3)", "ratio")
	for _, clients := range []int{1, 8} {
		rate := func(base string) float64 {
			var rates []float64
			for round := 0; round < 5; round++ {
				start := time.Now()
				var wg sync.WaitGroup
				for c := 0; c < clients; c++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if st, body, _ := do("GET", base+"/api/projects/"+created.Project.ID+"/stream", tok, nil); st != 200 || len(body) != len(pdf) {
							b.Errorf("stream: %d, %d bytes", st, len(body))
						}
					}()
				}
				wg.Wait()
				rates = append(rates, float64(clients*len(pdf))/(1<<20)/time.Since(start).Seconds())
			}
			sort.Float64s(rates)
			return rates[len(rates)/2]
		}
		dr, er := rate(direct), rate(viaEdge)
		fmt.Printf("%-34s %14.0f %14.0f %7.2fx\n", fmt.Sprintf("%d client(s), median of 5", clients), dr, er, er/dr)
	}

	// 3. Answer cache.
	_, raw, _ = do("POST", direct+"/api/knowledge", tok, []byte(`{"title":"Pedalling","source_type":"text","content":"Change the damper pedal just after each new chord. Half pedalling keeps some resonance.","is_public":true}`))
	var doc struct {
		Document struct {
			ID string `json:"id"`
		} `json:"document"`
	}
	json.Unmarshal(raw, &doc)
	do("POST", direct+"/api/knowledge/"+doc.Document.ID+"/process", tok, nil)
	q := []byte(`{"query":"When do I change the damper pedal?"}`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body, _ := do("POST", direct+"/api/search", tok, []byte(`{"query":"damper pedal"}`))
		if bytes.Contains(body, []byte(`"source":"local"`)) && bytes.Contains(body, []byte("chunk_id")) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the document never reached the index: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	do("POST", direct+"/api/chat/query", tok, q)
	do("POST", viaEdge+"/api/chat/query", tok, q)
	var nodeHit, edgeHit, edgeMiss []time.Duration
	for i := 0; i < 2000; i++ {
		start := time.Now()
		do("POST", direct+"/api/chat/query", tok, q)
		nodeHit = append(nodeHit, time.Since(start))
		start = time.Now()
		_, _, h := do("POST", viaEdge+"/api/chat/query", tok, q)
		if h.Get("X-Edge-Cache") != "hit" {
			b.Fatalf("edge answer not a hit: %v", h)
		}
		edgeHit = append(edgeHit, time.Since(start))
		if i < 300 { // a new question each time: a miss at the edge and the node
			start = time.Now()
			do("POST", viaEdge+"/api/chat/query", tok, []byte(fmt.Sprintf(`{"query":"When do I change the damper pedal %d?"}`, i)))
			edgeMiss = append(edgeMiss, time.Since(start))
		}
	}
	fmt.Printf("\n%-48s %10s %10s\n", "POST /api/chat/query (2,000 sequential)", "p50", "p99")
	fmt.Printf("%-48s %10s %10s\n", "direct, the node's answer cache hit", pct(nodeHit, 50), pct(nodeHit, 99))
	fmt.Printf("%-48s %10s %10s\n", "edge, kept answer revalidated (304)", pct(edgeHit, 50), pct(edgeHit, 99))
	fmt.Printf("%-48s %10s %10s\n", "edge, new question (miss, 300)", pct(edgeMiss, 50), pct(edgeMiss, 99))
}

func waitReady(b *testing.B, url string) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("%s never ready", url)
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)].Round(time.Microsecond)
}
