package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/edge/worker/workertest"
	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/blob/blobtest"
	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// BenchmarkEdgeWorker measures the Cloudflare Worker (edge/worker, in
// Miniflare's workerd on this machine) against the Go edge and the node
// reached directly, in one run: one node (PDFs on versitygw), one
// sostenuto-edge reading versitygw, one Worker reading local R2 (filled
// once from the node's store through a mirror).
//
//	make bench-worker   # = go test ./bench -run '^$' -bench EdgeWorker -benchtime 1x
//
// Latency: GET /api/health and an authenticated GET /api/projects, 1,000
// sequential requests each on every path, interleaved (median, p95, p99).
// Throughput: a 64 MiB PDF read whole by 1 and 4 clients (median of 5
// rounds, MiB/s).
func BenchmarkEdgeWorker(b *testing.B) {
	for b.Loop() {
		workerBench(b)
	}
}

// benchPaths are the three ways to the node.
type benchPaths struct{ direct, goEdge, worker string }

func (p benchPaths) all() []string { return []string{p.direct, p.goEdge, p.worker} }

func workerBench(b *testing.B) {
	paths, tok := startWorkerBench(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	fmt.Printf("\nWorker benchmark (one node, the Go edge, the Worker in workerd, versitygw/local R2, PostgreSQL; same machine)\n")
	fmt.Printf("%-28s %-9s %9s %9s %9s %11s\n", "request (1,000 sequential)", "path", "p50", "p95", "p99", "added p50")
	for _, c := range []struct{ name, path, token string }{{"GET /api/health", "/api/health", ""}, {"GET /api/projects (token)", "/api/projects", tok}} {
		lat := make([][]time.Duration, 3)
		for i := 0; i < 1000; i++ {
			for j, base := range paths.all() {
				start := time.Now()
				if st, n := fetch(b, client, base+c.path, c.token); st != 200 || n == 0 {
					b.Fatalf("%s: %d", base+c.path, st)
				}
				lat[j] = append(lat[j], time.Since(start))
			}
		}
		for j, name := range []string{"direct", "go edge", "worker"} {
			fmt.Printf("%-28s %-9s %9s %9s %9s %11s\n", c.name, name, pct(lat[j], 50), pct(lat[j], 95), pct(lat[j], 99), pct(lat[j], 50)-pct(lat[0], 50))
		}
	}
	id, size := bigProject(b, client, paths.direct, tok)
	for _, base := range paths.all() { // warm: decisions kept, the Worker's R2 filled
		if st, n := fetch(b, client, base+"/api/projects/"+id+"/stream", tok); st != 200 || n != size {
			b.Fatalf("stream at %s: %d, %d bytes", base, st, n)
		}
	}
	fmt.Printf("\n%-30s %10s %10s %10s\n", fmt.Sprintf("stream a %d MiB PDF (MiB/s)", size>>20), "direct", "go edge", "worker")
	for _, clients := range []int{1, 4} {
		var r [3]float64
		for j, base := range paths.all() {
			r[j] = streamRate(b, client, base+"/api/projects/"+id+"/stream", tok, clients, size)
		}
		fmt.Printf("%-30s %10.0f %10.0f %10.0f\n", fmt.Sprintf("%d client(s), median of 5", clients), r[0], r[1], r[2])
	}
}

// startWorkerBench starts the node, the Go edge and the Worker, and
// registers a teacher; it returns the three base URLs and the token.
func startWorkerBench(b *testing.B) (benchPaths, string) {
	db := pgtest.NewEmptyDB(b, "")
	s3 := blobtest.Start(b)
	nodeBin, edgeBin := build(b, "../cmd/sostenuto"), build(b, "../cmd/sostenuto-edge")
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
	nodePort, edgePort := freePort(), freePort()
	p := benchPaths{direct: fmt.Sprintf("http://127.0.0.1:%d", nodePort), goEdge: fmt.Sprintf("http://127.0.0.1:%d", edgePort)}
	run(nodeBin, []string{"serve"}, append(append(append(s3env("SOSTENUTO_"), noRateLimits...), "SOSTENUTO_DATABASE_URL="+db.URL, fmt.Sprintf("SOSTENUTO_LISTEN=127.0.0.1:%d", nodePort),
		"SOSTENUTO_DATA_DIR="+b.TempDir(), fmt.Sprintf("SOSTENUTO_RAFT_BIND=127.0.0.1:%d", freePort()), "SOSTENUTO_BLOB_BACKEND=s3",
		"SOSTENUTO_RECALL_EVERY=0s", "SOSTENUTO_LOG_LEVEL=warn", "SOSTENUTO_TRUSTED_PROXIES=127.0.0.1"), raftTLS(b, nodeBin, b.TempDir(), "n1")...)...)
	waitReady(b, p.direct+"/api/ready")
	run(edgeBin, nil, append(s3env("SOSTENUTO_EDGE_"), fmt.Sprintf("SOSTENUTO_EDGE_LISTEN=127.0.0.1:%d", edgePort), "SOSTENUTO_EDGE_NODES="+p.direct,
		"SOSTENUTO_EDGE_BLOB_BACKEND=s3", "SOSTENUTO_EDGE_LOG_LEVEL=warn")...)
	waitReady(b, p.goEdge+"/edge/health")
	store, err := blob.NewS3(s3.Config)
	if err != nil {
		b.Fatal(err)
	}
	p.worker = workertest.Start(b, map[string]string{"NODES": p.direct, "BLOB_MIRROR": mirror(b, store)})
	waitReady(b, p.worker+"/edge/health")
	body := `{"email":"bench@example.com","password":"correct horse battery staple","display_name":"B","role":"teacher"}`
	resp, err := http.Post(p.direct+"/api/auth/register", "application/json", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&sess) //nolint:errcheck // checked by the first request
	return p, sess.AccessToken
}

// mirror serves store read-only with its ETags (the Worker's BLOB_MIRROR).
func mirror(b *testing.B, store blob.Store) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc, info, err := store.Open(r.Context(), strings.TrimPrefix(r.URL.Path, "/"), nil)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer rc.Close()
		w.Header().Set("ETag", info.ETag)
		w.Header().Set("Content-Length", fmt.Sprint(info.Size))
		io.Copy(w, rc) //nolint:errcheck // the Worker went away
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

// bigProject uploads and confirms a 64 MiB PDF; it returns its id and size.
func bigProject(b *testing.B, client *http.Client, direct, tok string) (string, int) {
	page := strings.Repeat("Allegro con brio, the left hand steady under the melody. ", 2300)
	pdf := pdftest.Generate(512, func(int) string { return page })
	req, _ := http.NewRequest("POST", direct+"/api/projects", strings.NewReader(`{"title":"Big","filename":"big.pdf"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	var created struct {
		Project struct{ ID string } `json:"project"`
		Upload  struct {
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
		} `json:"upload"`
	}
	json.NewDecoder(resp.Body).Decode(&created) //nolint:errcheck // checked below
	resp.Body.Close()
	put, _ := http.NewRequest("PUT", created.Upload.URL, bytes.NewReader(pdf))
	for k, v := range created.Upload.Headers {
		put.Header.Set(k, v)
	}
	if resp, err := client.Do(put); err != nil || resp.StatusCode != 200 {
		b.Fatalf("upload: %v %v", resp, err)
	}
	conf, _ := http.NewRequest("POST", direct+"/api/projects/"+created.Project.ID+"/confirm", nil)
	conf.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := client.Do(conf); err != nil || resp.StatusCode != 200 {
		b.Fatalf("confirm: %v %v", resp, err)
	}
	return created.Project.ID, len(pdf)
}

// fetch GETs u and reads the body: the status and the body's length.
func fetch(b *testing.B, client *http.Client, u, tok string) (int, int) {
	req, _ := http.NewRequest("GET", u, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, int(n)
}

// streamRate is the median over 5 rounds of clients reading u whole at once (MiB/s).
func streamRate(b *testing.B, client *http.Client, u, tok string, clients, size int) float64 {
	var rates []float64
	for round := 0; round < 5; round++ {
		start := time.Now()
		var wg sync.WaitGroup
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if st, n := fetch(b, client, u, tok); st != 200 || n != size {
					b.Errorf("stream: %d, %d bytes", st, n)
				}
			}()
		}
		wg.Wait()
		rates = append(rates, float64(clients*size)/(1<<20)/time.Since(start).Seconds())
	}
	sort.Float64s(rates)
	return rates[len(rates)/2]
}
