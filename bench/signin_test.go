package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
)

// BenchmarkSignInFlood measures whether an account's owner can sign in
// while one address floods wrong passwords for the owner's email at full
// speed. One real node (default argon2id cost) serves; the flood comes from
// 127.0.0.2 over SOSTENUTO_BENCH_FLOODERS (16) keep-alive connections; 3 s
// later the owner starts signing in from 127.0.0.3, every 500 ms (waiting
// for each answer; 120 a minute, what rate-limit-auth lets one address do).
// Each run lasts SOSTENUTO_BENCH_SECONDS (20) and starts from an empty
// throttle table; SOSTENUTO_BENCH_RUNS (3) runs, medians reported. Two node
// configurations: the request-rate limits (token buckets per address) off,
// so every flood request reaches the failure throttle in PostgreSQL, and
// their defaults (rate-limit-ip 100/s:200, rate-limit-auth 120/m:60). A
// baseline without flood comes first.
//
//	SOSTENUTO_TEST_DATABASE_URL_FILE=$PWD/.data/test/database_url \
//	  go test ./bench -run '^$' -bench SignInFlood -benchtime 1x -timeout 20m
func BenchmarkSignInFlood(b *testing.B) {
	for b.Loop() {
		signInFlood(b)
	}
}

const (
	floodHeadStart = 3 * time.Second
	floodVictim    = "victim@example.com"
	floodPassword  = "correct horse battery"
	floodAttacker  = "127.0.0.2"
	floodOwner     = "127.0.0.3"
)

func signInFlood(b *testing.B) {
	seconds, runs, flooders := envInt("SOSTENUTO_BENCH_SECONDS", 20), envInt("SOSTENUTO_BENCH_RUNS", 3), envInt("SOSTENUTO_BENCH_FLOODERS", 16)
	db := pgtest.NewEmptyDB(b, "")
	bin := build(b, "../cmd/sostenuto")
	dataDir := b.TempDir()
	migrate := exec.Command(bin, "migrate")
	migrate.Env = append(cleanEnv(), "SOSTENUTO_DATABASE_URL="+db.URL, "SOSTENUTO_DATA_DIR="+dataDir)
	if out, err := migrate.CombinedOutput(); err != nil {
		b.Fatalf("migrate: %v\n%s", err, out)
	}
	logf(b, "| node | phase | owner sign-ins | owner 200 | owner p50 | owner p95 | flood req/s | flood 429 (throttle) | flood 429 (bucket) | flood 401s | flood other |")
	logf(b, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, cfg := range []struct {
		name string
		env  []string
	}{
		{"rate limits off", nil},
		{"default rate limits", []string{"SOSTENUTO_RATE_LIMIT_IP=100/s:200", "SOSTENUTO_RATE_LIMIT_AUTH=120/m:60"}},
	} {
		base, stop := startNode(b, bin, db.URL, dataDir, cfg.env...)
		registerOwner(b, base)
		d := time.Duration(seconds) * time.Second
		var quiet, flooded []floodRun
		for range runs {
			clearThrottle(b, db.URL)
			quiet = append(quiet, runFlood(b, base, 0, d))
			clearThrottle(b, db.URL)
			flooded = append(flooded, runFlood(b, base, flooders, d))
		}
		logf(b, "%s", medianRun(quiet).row(cfg.name, "no flood"))
		logf(b, "%s", medianRun(flooded).row(cfg.name, fmt.Sprintf("flood, %d connections", flooders)))
		stop()
	}
}

// floodRun is what one run saw.
type floodRun struct {
	ownerTotal, ownerOK int
	ownerP50, ownerP95  float64 // ms
	floodRate           float64 // requests/s
	throttled, bucket   float64 // shares of the flood's answers
	unauthenticated     float64 // the flood's 401s (wrong guesses judged, but the last)
	rest                float64 // share of other answers
}

func (r floodRun) row(node, phase string) string {
	pct := func(v float64) string { return fmt.Sprintf("%.1f %%", 100*v) }
	if r.floodRate == 0 {
		return fmt.Sprintf("| %s | %s | %d | %s | %.1f ms | %.1f ms | — | — | — | — | — |", node, phase, r.ownerTotal,
			pct(float64(r.ownerOK)/float64(max(r.ownerTotal, 1))), r.ownerP50, r.ownerP95)
	}
	return fmt.Sprintf("| %s | %s | %d | %s | %.1f ms | %.1f ms | %.0f | %s | %s | %.0f | %s |", node, phase, r.ownerTotal,
		pct(float64(r.ownerOK)/float64(max(r.ownerTotal, 1))), r.ownerP50, r.ownerP95, r.floodRate,
		pct(r.throttled), pct(r.bucket), r.unauthenticated, pct(r.rest))
}

// runFlood floods from the attacker's address with flooders connections
// (none: a quiet baseline) while the owner signs in every 500 ms, for d.
// The flood has a head start of floodHeadStart, so the owner arrives at an
// account already under fire (otherwise the owner's own successes, every
// 500 ms, would keep clearing a count the flood is still building).
func runFlood(b *testing.B, base string, flooders int, d time.Duration) floodRun {
	head := time.Duration(0)
	if flooders > 0 {
		head = floodHeadStart
	}
	ctx, cancel := context.WithTimeout(context.Background(), head+d)
	defer cancel()
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
	)
	attacker := clientFrom(floodAttacker, flooders)
	for i := range flooders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				kind := floodAnswer(ctx, attacker, base, fmt.Sprintf("wrong guess %d-%d", i, n))
				mu.Lock()
				counts[kind]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(head)
	run := ownerSignIns(ctx, b, base)
	wg.Wait()
	total := 0
	for k, n := range counts {
		if k != "cancelled" {
			total += n
		}
	}
	if total > 0 {
		share := func(k string) float64 { return float64(counts[k]) / float64(total) }
		run.floodRate = float64(total) / (head + d).Seconds()
		run.throttled, run.bucket, run.rest = share("throttle"), share("bucket"), share("other")
		run.unauthenticated = float64(counts["401"])
	}
	return run
}

// floodAnswer sends one wrong password and classifies the answer: 401, a
// 429 of the failure throttle or of the request-rate bucket, or other.
func floodAnswer(ctx context.Context, c *http.Client, base, password string) string {
	body, _ := json.Marshal(map[string]string{"email": floodVictim, "password": password})
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/api/auth/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "cancelled"
		}
		return "other"
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == 401:
		return "401"
	case resp.StatusCode == 429 && strings.Contains(string(raw), "failed sign-ins"):
		return "throttle"
	case resp.StatusCode == 429:
		return "bucket"
	}
	return "other"
}

// ownerSignIns signs the owner in every 500 ms until ctx ends.
func ownerSignIns(ctx context.Context, b *testing.B, base string) floodRun {
	owner := clientFrom(floodOwner, 1)
	body, _ := json.Marshal(map[string]string{"email": floodVictim, "password": floodPassword})
	var run floodRun
	var lat []float64
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			sort.Float64s(lat)
			if len(lat) > 0 {
				run.ownerP50, run.ownerP95 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*95/100)]
			}
			return run
		case <-tick.C:
		}
		start := time.Now()
		resp, err := owner.Post(base+"/api/auth/login", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatalf("owner sign-in: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lat = append(lat, float64(time.Since(start).Microseconds())/1000)
		run.ownerTotal++
		if resp.StatusCode == 200 {
			run.ownerOK++
		}
	}
}

// medianRun is the run of median owner success rate, with each figure the
// median of its own over the runs.
func medianRun(runs []floodRun) floodRun {
	med := func(f func(floodRun) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	ok := med(func(r floodRun) float64 { return float64(r.ownerOK) / float64(max(r.ownerTotal, 1)) })
	total := med(func(r floodRun) float64 { return float64(r.ownerTotal) })
	return floodRun{ownerTotal: int(total), ownerOK: int(ok*total + 0.5),
		ownerP50: med(func(r floodRun) float64 { return r.ownerP50 }), ownerP95: med(func(r floodRun) float64 { return r.ownerP95 }),
		floodRate: med(func(r floodRun) float64 { return r.floodRate }), throttled: med(func(r floodRun) float64 { return r.throttled }),
		bucket: med(func(r floodRun) float64 { return r.bucket }), unauthenticated: med(func(r floodRun) float64 { return r.unauthenticated }),
		rest: med(func(r floodRun) float64 { return r.rest })}
}

// clientFrom is an HTTP client whose connections leave from ip (a
// loopback address), so the node sees that client address.
func clientFrom(ip string, conns int) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext,
		MaxIdleConnsPerHost: max(conns, 1), MaxConnsPerHost: max(conns, 1)}}
}

func registerOwner(b *testing.B, base string) {
	body, _ := json.Marshal(map[string]string{"email": floodVictim, "password": floodPassword, "display_name": "Victim", "role": "student"})
	resp, err := http.Post(base+"/api/auth/register", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 && resp.StatusCode != 409 {
		b.Fatalf("register: %d", resp.StatusCode)
	}
}

// clearThrottle empties the failure counts, so each run starts alike.
func clearThrottle(b *testing.B, url string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DELETE FROM auth_throttle"); err != nil {
		b.Fatal(err)
	}
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		fmt.Sscan(v, &def)
	}
	return def
}
