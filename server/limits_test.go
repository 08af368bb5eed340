package server

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/rag"
	"github.com/sostenuto/sostenuto/server/ratelimit"
)

// Rate limits answer 429 problem+json with Retry-After, per client address,
// per user, on sign-in and on chat; each limit counts its own key.
func TestRateLimits(t *testing.T) {
	a := newAPIWith(t, apiSettings{limits: Limits{
		RateIP:   ratelimit.MustParse("120/h:40"), // refills slower than any machine drains it
		RateUser: ratelimit.MustParse("60/m:8"),
		RateAuth: ratelimit.MustParse("60/m:4"),
		RateChat: ratelimit.MustParse("60/m:2"),
	}})
	limited := func(r response, what string) {
		t.Helper()
		if r.status != 429 {
			t.Fatalf("%s: %d, want 429: %s", what, r.status, r.body)
		}
		p := r.problem(t)
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		if p.Code != CodeRateLimited || err != nil || secs < 1 || secs > 60 {
			t.Errorf("%s: %+v, Retry-After %q", what, p, r.header.Get("Retry-After"))
		}
	}
	// Sign-up/sign-in: 4 then 429 (the registrations spend the bucket).
	alice := a.register("alice@example.com", "teacher").AccessToken
	bob := a.register("bob@example.com", "student").AccessToken
	for i := 0; i < 2; i++ {
		a.call("POST", "/api/auth/login", "", map[string]string{"email": "alice@example.com", "password": "x"})
	}
	limited(a.call("POST", "/api/auth/login", "", map[string]string{"email": "alice@example.com", "password": "correct horse battery staple"}), "sign-in")
	// Per user: alice's bucket runs dry, bob's does not.
	for i := 0; i < 8; i++ {
		a.mustStatus(a.call("GET", "/api/projects", alice, nil), 200)
	}
	limited(a.call("GET", "/api/projects", alice, nil), "alice's 9th request")
	a.mustStatus(a.call("GET", "/api/projects", bob, nil), 200)
	// Chat: 2 questions, then 429 (bob's user bucket still has tokens).
	for i := 0; i < 2; i++ {
		a.mustStatus(a.call("POST", "/api/chat/query", bob, map[string]string{"query": "scales"}), 200)
	}
	limited(a.call("POST", "/api/chat/query", bob, map[string]string{"query": "scales"}), "bob's 3rd question")
	// Per address: health checks are never limited; the rest runs dry.
	for i := 0; i < 60; i++ {
		a.mustStatus(a.call("GET", "/api/health", "", nil), 200)
	}
	var last response
	for i := 0; i < 60 && last.status != 429; i++ {
		last = a.call("GET", "/api/openapi.json", "", nil)
	}
	limited(last, "the address")
	m := string(a.call("GET", "/metrics", "", nil).body)
	for _, l := range []string{"ip", "user", "auth", "chat"} {
		if !strings.Contains(m, `http_requests_limited_total{limit="`+l+`"}`) {
			t.Errorf("no %s limit in the metrics", l)
		}
	}
}

// CORS: listed origins get credentials, others nothing.
func TestCORSOnTheNode(t *testing.T) {
	a := newAPIWith(t, apiSettings{cors: []string{"https://app.example.com"}})
	r := a.call("OPTIONS", "/api/projects", "", nil, "Origin", "https://app.example.com", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization,content-type")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || r.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("preflight: %d %v", r.status, r.header)
	}
	r = a.call("GET", "/api/health", "", nil, "Origin", "https://evil.example.com")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("unlisted origin: %d %v", r.status, r.header)
	}
	r = a.call("GET", "/api/health", "", nil, "Origin", "https://app.example.com")
	if r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Errorf("listed origin: %v", r.header)
	}
}

// blockingAnswerer holds every answer until release is closed.
type blockingAnswerer struct{ release chan struct{} }

func (b blockingAnswerer) Answer(ctx context.Context, _ rag.Request, emit func(string) error) (rag.Answer, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
		return rag.Answer{}, ctx.Err()
	}
	return rag.Answer{Content: "Done.", Model: "blocking"}, emit("Done.")
}

// A user holds at most MaxStreamsPerUser answer streams at once.
func TestStreamLimits(t *testing.T) {
	release := make(chan struct{})
	a := newAPIWith(t, apiSettings{limits: Limits{MaxStreamsPerUser: 2}, answerer: blockingAnswerer{release}})
	tok := a.register("t@example.com", "teacher").AccessToken
	other := a.register("o@example.com", "teacher").AccessToken
	stream := func(tok string) *http.Response {
		req, _ := http.NewRequest("POST", a.url+"/api/chat/query", strings.NewReader(`{"query":"scales"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var open []*http.Response
	for i := 0; i < 2; i++ {
		resp := stream(tok)
		if resp.StatusCode != 200 {
			t.Fatalf("stream %d: %d", i, resp.StatusCode)
		}
		open = append(open, resp)
	}
	third := stream(tok)
	body, _ := io.ReadAll(third.Body)
	third.Body.Close()
	if third.StatusCode != 429 || third.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "rate_limited") {
		t.Errorf("third stream: %d %s", third.StatusCode, body)
	}
	// Another user is not affected.
	o := stream(other)
	if o.StatusCode != 200 {
		t.Errorf("another user's stream: %d", o.StatusCode)
	}
	close(release)
	for _, resp := range append(open, o) {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "event: done") {
			t.Errorf("a held stream did not finish: %s", b)
		}
	}
	// The slots are free again.
	resp := stream(tok)
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after the streams ended: %d", resp.StatusCode)
	}
}

// The stream slots count exactly, under contention.
func TestStreamSlots(t *testing.T) {
	slots := &streamSlots{max: 3, open: map[uuid.UUID]int{}}
	u := uuid.New()
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if slots.take(u) {
				mu.Lock()
				got++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got != 3 {
		t.Fatalf("%d streams taken, want 3", got)
	}
	slots.release(u)
	if !slots.take(u) || slots.take(u) {
		t.Error("release did not free exactly one slot")
	}
}

// Load shedding: past MaxInFlight requests at once, 503 at once (health
// checks still answered); searches PostgreSQL must answer wait at most a
// moment for a slot, then 503.
func TestLoadShedding(t *testing.T) {
	release := make(chan struct{})
	a := newAPIWith(t, apiSettings{limits: Limits{MaxInFlight: 2, MaxFallbackSearches: 1}, answerer: blockingAnswerer{release}})
	tok := a.register("t@example.com", "teacher").AccessToken
	done := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() {
			req, _ := http.NewRequest("POST", a.url+"/api/chat/query", strings.NewReader(`{"query":"scales"}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.server.inflight.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	r := a.call("GET", "/api/projects", tok, nil)
	if r.status != 503 || r.header.Get("Retry-After") != "1" || r.problem(t).Code != CodeUnavailable {
		t.Errorf("past max-in-flight: %d %s", r.status, r.body)
	}
	a.mustStatus(a.call("GET", "/api/health", "", nil), 200)
	close(release)
	for i := 0; i < 2; i++ {
		if st := <-done; st != 200 {
			t.Errorf("a held request: %d", st)
		}
	}
	// The one PostgreSQL search slot is taken: the next search says 503
	// after a short wait instead of queueing.
	a.server.fallback <- struct{}{}
	start := time.Now()
	r = a.call("POST", "/api/search", tok, map[string]any{"query": "scales"})
	if r.status != 503 || time.Since(start) > 2*time.Second {
		t.Errorf("no fallback slot: %d after %s: %s", r.status, time.Since(start), r.body)
	}
	<-a.server.fallback
	a.mustStatus(a.call("POST", "/api/search", tok, map[string]any{"query": "scales"}), 200)
}

// While the index lags and PostgreSQL is too busy, a search is answered
// from the index as it is, marked lagging — unless the caller's min_lsn is
// beyond it.
func TestLaggingSearch(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true, limits: Limits{MaxFallbackSearches: 1}})
	tok := a.register("t@example.com", "teacher").AccessToken
	d := a.createDocument(tok, map[string]any{"title": "Scales", "source_type": "text", "content": "Play scales slowly with a relaxed thumb.", "is_public": true})
	a.process(tok, d.Document.ID)
	st := a.waitDocument(tok, d.Document.ID)
	var res searchResponse
	for deadline := time.Now().Add(10 * time.Second); len(res.Results) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		a.mustStatus(a.call("POST", "/api/search", tok, map[string]any{"query": "relaxed thumb"}), 200).decode(t, &res)
	}
	a.server.engineOK = func() bool { return false } // lagging from now on
	a.server.fallback <- struct{}{}                  // and PostgreSQL's slot taken
	defer func() { <-a.server.fallback }()
	res = searchResponse{}
	a.mustStatus(a.call("POST", "/api/search", tok, map[string]any{"query": "relaxed thumb", "min_lsn": *st.IndexLSN}), 200).decode(t, &res)
	if !res.Index.Lagging || res.Index.Source != SourceLocal || len(res.Results) == 0 {
		t.Errorf("lagging answer: %+v", res)
	}
	r := a.call("POST", "/api/search", tok, map[string]any{"query": "relaxed thumb", "min_lsn": "FFFF/0"})
	if r.status != 503 {
		t.Errorf("min_lsn beyond the index: %d %s", r.status, r.body)
	}
	// Chat too.
	var ans struct {
		Sources []any `json:"sources"`
	}
	a.mustStatus(a.call("POST", "/api/chat/query", tok, map[string]any{"query": "How should the thumb be?"}), 200).decode(t, &ans)
	if len(ans.Sources) == 0 {
		t.Error("the chat found nothing in the lagging index")
	}
}

// The read deadline covers the body, not the handler: a request whose
// answer takes longer than ReadTimeout is answered, and the next request
// on the same kept-alive connection is served normally.
func TestReadDeadlineCoversTheBodyOnly(t *testing.T) {
	release := make(chan struct{})
	a := newAPIWith(t, apiSettings{limits: Limits{ReadTimeout: 300 * time.Millisecond}, answerer: blockingAnswerer{release}})
	tok := a.register("t@example.com", "teacher").AccessToken
	go func() { time.Sleep(900 * time.Millisecond); close(release) }()
	start := time.Now()
	r := a.call("POST", "/api/chat/query", tok, map[string]any{"query": "scales"})
	if r.status != 200 || time.Since(start) < 800*time.Millisecond {
		t.Fatalf("a slow answer: %d after %s: %s", r.status, time.Since(start), r.body)
	}
	time.Sleep(400 * time.Millisecond) // past the last request's read deadline
	a.mustStatus(a.call("GET", "/api/projects", tok, nil), 200)
	a.mustStatus(a.call("POST", "/api/search", tok, map[string]any{"query": "scales"}), 200)
}

// Searches waiting for the index to reach their min_lsn are bounded: past
// MaxLSNWaiters the next one answers 503 with Retry-After at once, while a
// search the index already holds needs no slot.
func TestMinLSNWaitersBounded(t *testing.T) {
	a := newAPIWith(t, apiSettings{engine: true, limits: Limits{MaxLSNWaiters: 2}})
	tok := a.register("t@example.com", "teacher").AccessToken
	lsn := a.ingestText(tok, "Scales", true, "Play scales slowly with a relaxed thumb.")
	var res searchResponse
	a.mustStatus(a.call("POST", "/api/search", tok, map[string]any{"query": "thumb", "min_lsn": lsn}), 200).decode(t, &res)
	for range cap(a.server.waiters) {
		a.server.waiters <- struct{}{}
	}
	start := time.Now()
	r := a.call("POST", "/api/search", tok, map[string]any{"query": "thumb", "min_lsn": "FFFF/0"})
	if r.status != 503 || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "waiting for this node's index") {
		t.Errorf("past the waiters' bound: %d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("refused after %s: it queued", waited)
	}
	res = searchResponse{}
	a.mustStatus(a.call("POST", "/api/search", tok, map[string]any{"query": "thumb", "min_lsn": lsn}), 200).decode(t, &res)
	if res.Index.Source != SourceLocal || len(res.Results) != 1 {
		t.Errorf("a position already applied: %+v", res)
	}
	for range cap(a.server.waiters) {
		<-a.server.waiters
	}
	// With a slot free, a position beyond every write waits its bound, then
	// PostgreSQL says why it cannot be reached.
	r = a.call("POST", "/api/search", tok, map[string]any{"query": "thumb", "min_lsn": "FFFF/0"})
	if r.status != 503 || !strings.Contains(string(r.body), "ahead of the database") {
		t.Errorf("beyond every write: %d %s", r.status, r.body)
	}
}
