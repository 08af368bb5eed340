package conformance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

type tokenVector struct {
	Name    string         `json:"name"`
	Alg     string         `json:"alg"`
	Claims  map[string]any `json:"claims"`
	Header  string         `json:"header"`
	Path    string         `json:"path"`
	Want    string         `json:"want"`
	Subject string         `json:"subject"`
}

// authHeader makes the vector's Authorization header (times are seconds
// from now).
func (s *stand) authHeader(t *testing.T, v tokenVector) string {
	t.Helper()
	if v.Header != "" {
		return strings.Replace(v.Header, "@REPEAT_A_9000", strings.Repeat("a", 9000), 1)
	}
	if v.Alg == "" {
		return ""
	}
	c := jwt.MapClaims{}
	for k, val := range v.Claims {
		if n, ok := val.(float64); ok && (k == "exp" || k == "iat" || k == "nbf") {
			val = time.Now().Unix() + int64(n)
		}
		c[k] = val
	}
	return "Bearer " + s.sign(t, v.Alg, c)
}

func (s *stand) sign(t *testing.T, alg string, c jwt.MapClaims) string {
	t.Helper()
	var tok *jwt.Token
	var key any
	switch alg {
	case "EdDSA", "EdDSA-nokid", "EdDSA-foreign", "EdDSA-nokid-foreign":
		tok, key = jwt.NewWithClaims(jwt.SigningMethodEdDSA, c), s.keys.k1
		if strings.HasSuffix(alg, "foreign") {
			_, key, _ = ed25519.GenerateKey(nil)
		}
		if !strings.Contains(alg, "nokid") {
			tok.Header["kid"] = "k1"
		}
	case "EdDSA-kid-hs": // an HS256 token naming the published Ed25519 key
		tok, key = jwt.NewWithClaims(jwt.SigningMethodHS256, c), []byte("anything-0123456789abcdef0123456789")
		tok.Header["kid"] = "k1"
	case "EdDSA-rotated":
		tok, key = jwt.NewWithClaims(jwt.SigningMethodEdDSA, c), s.keys.k2
		tok.Header["kid"] = "k2"
	case "HS256", "HS256-wrong":
		tok, key = jwt.NewWithClaims(jwt.SigningMethodHS256, c), []byte(secret)
		if alg == "HS256-wrong" {
			key = []byte("another-secret-0123456789abcdef0123")
		}
	case "none":
		tok, key = jwt.NewWithClaims(jwt.SigningMethodNone, c), jwt.UnsafeAllowNoneSignatureType
	default:
		t.Fatalf("unknown alg %q", alg)
	}
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// tokenOrder puts the rotated-key vectors right after the first one: the
// edges then hold the first key set, and the rotation is the first unknown
// key id they meet (each refreshes at most every 10 s on one).
func tokenOrder(vs []tokenVector) []tokenVector {
	var rot, rest []tokenVector
	for _, v := range vs {
		if v.Alg == "EdDSA-rotated" {
			rot = append(rot, v)
		} else {
			rest = append(rest, v)
		}
	}
	return append(append(rest[:1:1], rot...), rest[1:]...)
}

func (s *stand) tokens(t *testing.T) {
	var file struct{ Vectors []tokenVector }
	load(t, "tokens.json", &file)
	for _, v := range tokenOrder(file.Vectors) {
		if v.Alg == "EdDSA-rotated" {
			s.keys.published2.Store(true)
		}
		hdr := s.authHeader(t, v)
		for _, e := range s.edges {
			t.Run(e.name+"/"+v.Name, func(t *testing.T) { s.token(t, e, v, hdr) })
		}
	}
}

func (s *stand) token(t *testing.T, e edgeUnderTest, v tokenVector, hdr string) {
	s.a.reset()
	s.b.reset()
	resp, body := s.do(t, "GET", e.url+v.Path, hdr, "")
	hits := s.a.hits.Load() + s.b.hits.Load()
	if v.Want == "refused" {
		wantProblem(t, resp, body, 401, "unauthenticated")
		if !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
		}
		if hits != 0 {
			t.Errorf("a refused token reached a node (%d requests)", hits)
		}
		return
	}
	if resp.StatusCode != 200 || hits != 1 {
		t.Fatalf("status %d, %d requests at the nodes; want 200 and 1: %s", resp.StatusCode, hits, body)
	}
	seen := s.a.last()
	if seen == nil {
		seen = s.b.last()
	}
	want := hdr
	if v.Want == "dropped" {
		want = ""
	}
	if got := seen.Header.Get("Authorization"); got != want {
		t.Errorf("the node saw Authorization %.40q, want %.40q", got, want)
	}
}

type rangeVector struct {
	Name        string  `json:"name"`
	Size        int64   `json:"size"`
	Range       string  `json:"range"`
	IfNoneMatch string  `json:"if_none_match"`
	IfRange     string  `json:"if_range"`
	WantStatus  int     `json:"want_status"`
	WantRange   []int64 `json:"want_range"`
}

// storeObject puts size bytes in the store and has the nodes name them as
// the project's PDF; it returns the bytes and their ETag.
func (s *stand) storeObject(t *testing.T, size int64) ([]byte, string) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	key := "projects/" + projectID + "/sealed.pdf"
	if err := s.store.Put(context.Background(), key, "application/pdf", bytes.NewReader(data), size); err != nil {
		t.Fatal(err)
	}
	info, err := s.store.Stat(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := json.Marshal(map[string]any{"key": key, "size": size, "etag": info.ETag,
		"content_type": "application/pdf", "content_disposition": `inline; filename="etude.pdf"`})
	s.a.object.Store(obj)
	s.b.object.Store(obj)
	return data, info.ETag
}

func (s *stand) ranges(t *testing.T) {
	var file struct{ Vectors []rangeVector }
	load(t, "ranges.json", &file)
	data, etag := s.storeObject(t, 1000)
	auth := "Bearer " + s.sign(t, "HS256", jwt.MapClaims{"iss": "sostenuto", "aud": "sostenuto-api", "sub": "reader",
		"exp": time.Now().Add(time.Hour).Unix()})
	sub := func(h string) string { return strings.ReplaceAll(h, `"e1"`, etag) }
	for _, v := range file.Vectors {
		for _, e := range s.edges {
			t.Run(e.name+"/"+v.Name, func(t *testing.T) {
				resp, body := s.do(t, "GET", e.url+"/api/projects/"+projectID+"/stream", auth, "",
					"Range", v.Range, "If-None-Match", sub(v.IfNoneMatch), "If-Range", sub(v.IfRange))
				checkServed(t, v, resp, body, data, etag)
			})
		}
	}
	for _, e := range s.edges {
		t.Run(e.name+"/HEAD", func(t *testing.T) {
			resp, body := s.do(t, "HEAD", e.url+"/api/projects/"+projectID+"/stream", auth, "")
			if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Length") != "1000" || resp.Header.Get("ETag") != etag {
				t.Errorf("HEAD: %d, %d bytes, Content-Length %s", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
			}
		})
		t.Run(e.name+"/no token", func(t *testing.T) {
			resp, body := s.do(t, "GET", e.url+"/api/projects/"+projectID+"/stream", "", "")
			wantProblem(t, resp, body, 401, "unauthenticated")
		})
		t.Run(e.name+"/not an id", func(t *testing.T) {
			resp, body := s.do(t, "GET", e.url+"/api/projects/nope/stream", auth, "")
			wantProblem(t, resp, body, 404, "not_found")
		})
	}
}

func checkServed(t *testing.T, v rangeVector, resp *http.Response, body, data []byte, etag string) {
	t.Helper()
	h := resp.Header
	if resp.StatusCode != v.WantStatus {
		t.Fatalf("status %d, want %d (%.80s)", resp.StatusCode, v.WantStatus, body)
	}
	if h.Get("ETag") != etag || h.Get("Vary") != "Authorization" {
		t.Errorf("ETag %q Vary %q", h.Get("ETag"), h.Get("Vary"))
	}
	switch v.WantStatus {
	case 304:
		if len(body) != 0 || h.Get("Cache-Control") != "private, no-cache" {
			t.Errorf("304 with %d bytes, Cache-Control %q", len(body), h.Get("Cache-Control"))
		}
	case 416:
		wantProblem(t, resp, body, 416, "range_not_satisfiable")
		if h.Get("Content-Range") != fmt.Sprintf("bytes */%d", v.Size) {
			t.Errorf("Content-Range %q", h.Get("Content-Range"))
		}
	case 206:
		s, e := v.WantRange[0], v.WantRange[1]
		if !bytes.Equal(body, data[s:e+1]) || h.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", s, e, v.Size) ||
			h.Get("Content-Length") != fmt.Sprint(e-s+1) {
			t.Errorf("206: %d bytes, Content-Range %q, Content-Length %q", len(body), h.Get("Content-Range"), h.Get("Content-Length"))
		}
	case 200:
		if !bytes.Equal(body, data) || h.Get("Content-Length") != fmt.Sprint(v.Size) || h.Get("Content-Range") != "" ||
			h.Get("Content-Type") != "application/pdf" || h.Get("Accept-Ranges") != "bytes" || h.Get("Cache-Control") != "private, no-cache" {
			t.Errorf("200: %d bytes, headers %v", len(body), h)
		}
	}
}

type answerStep struct {
	Name      string `json:"name"`
	User      string `json:"user"`
	Path      string `json:"path"`
	Body      string `json:"body"`
	Accept    string `json:"accept"`
	Bump      bool   `json:"bump"`
	WantINM   bool   `json:"want_inm"`
	WantCache string `json:"want_cache"`
}

func (s *stand) answers(t *testing.T) {
	var file struct{ Steps []answerStep }
	load(t, "answers.json", &file)
	users := map[string]string{}
	for _, u := range []string{"a", "b"} {
		users[u] = "Bearer " + s.sign(t, "HS256", jwt.MapClaims{"iss": "sostenuto", "aud": "sostenuto-api", "sub": "user-" + u,
			"exp": time.Now().Add(time.Hour).Unix()})
	}
	for _, e := range s.edges {
		for _, st := range file.Steps {
			if st.Bump {
				s.a.version.Add(1)
				s.b.version.Add(1)
			}
			t.Run(e.name+"/"+st.Name, func(t *testing.T) { s.answer(t, e, st, users[st.User]) })
		}
	}
}

func (s *stand) answer(t *testing.T, e edgeUnderTest, st answerStep, auth string) {
	s.a.reset()
	s.b.reset()
	resp, body := s.do(t, "POST", e.url+st.Path, auth, st.Body, "Content-Type", "application/json", "Accept", st.Accept)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	seen := s.a.last()
	if seen == nil {
		seen = s.b.last()
	}
	if got := seen != nil && seen.Header.Get("If-None-Match") != ""; got != st.WantINM {
		t.Errorf("the node saw If-None-Match: %v, want %v", got, st.WantINM)
	}
	if resp.Header.Get("X-Sostenuto-Node") == "" {
		t.Error("no X-Sostenuto-Node")
	}
	if got := resp.Header.Get("X-Edge-Cache"); got != st.WantCache {
		t.Errorf("X-Edge-Cache %q, want %q", got, st.WantCache)
	}
	if st.Accept != "" {
		return
	}
	var got struct{ For, Path, Body string }
	if err := json.Unmarshal(body, &got); err != nil || got.For != auth || got.Path != st.Path || got.Body != st.Body {
		t.Errorf("the answer was made for %.30q %s %s (%v), want this caller's", got.For, got.Path, got.Body, err)
	}
}

// events: the first event of a stream reaches the client while the node
// is still writing (the node waits 700 ms before the next).
func (s *stand) events(t *testing.T) {
	auth := "Bearer " + s.sign(t, "HS256", jwt.MapClaims{"iss": "sostenuto", "aud": "sostenuto-api", "sub": "listener",
		"exp": time.Now().Add(time.Hour).Unix()})
	for _, e := range s.edges {
		t.Run(e.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.url+"/api/chat/query", strings.NewReader(`{"query":"q"}`))
			req.Header.Set("Authorization", auth)
			req.Header.Set("Accept", "text/event-stream")
			start := time.Now()
			resp, err := s.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			buf := make([]byte, 256)
			n, _ := resp.Body.Read(buf)
			first := time.Since(start)
			if !strings.HasPrefix(string(buf[:n]), "event: sources") || first > 500*time.Millisecond {
				t.Errorf("first event %q after %v; want it before the node's next (700 ms)", buf[:n], first)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

type retryVector struct {
	Name   string   `json:"name"`
	Method string   `json:"method"`
	Path   string   `json:"path"`
	Body   string   `json:"body"`
	Nodes  []string `json:"nodes"`
	Want   struct {
		Status   int  `json:"status"`
		Attempts *int `json:"attempts"`
	} `json:"want"`
	Worker *struct {
		StatusIn    []int  `json:"status_in"`
		Attempts    *int   `json:"attempts"`
		MaxAttempts int    `json:"max_attempts"`
		Why         string `json:"why"`
	} `json:"worker"`
}

func (s *stand) retries(t *testing.T) {
	var file struct{ Vectors []retryVector }
	load(t, "retries.json", &file)
	for _, v := range file.Vectors {
		for _, e := range s.edges {
			t.Run(e.name+"/"+v.Name, func(t *testing.T) {
				s.a.setMode("ok")
				s.b.setMode("ok")
				s.settle(t, e) // every node healthy again
				s.a.setMode(v.Nodes[0])
				s.b.setMode(v.Nodes[1])
				time.Sleep(150 * time.Millisecond) // a health round sees a node down
				s.a.reset()
				s.b.reset()
				resp, body := s.do(t, v.Method, e.url+v.Path, "", v.Body, "Content-Type", "application/json")
				attempts := int(s.a.hits.Load() + s.b.hits.Load())
				statuses, want := []int{v.Want.Status}, v.Want.Attempts
				if e.name == "worker" && v.Worker != nil {
					statuses, want = v.Worker.StatusIn, v.Worker.Attempts
					t.Logf("the Worker may differ: %s", v.Worker.Why)
				}
				if e.name == "worker" && v.Worker != nil && v.Worker.MaxAttempts > 0 && attempts > v.Worker.MaxAttempts {
					t.Errorf("%d attempts, want at most %d", attempts, v.Worker.MaxAttempts)
				}
				if !slices.Contains(statuses, resp.StatusCode) || (want != nil && attempts != *want) {
					t.Errorf("status %d after %d attempts, want %v after %v: %s", resp.StatusCode, attempts, statuses, ptr(want), body)
				}
			})
		}
	}
	s.a.setMode("ok")
	s.b.setMode("ok")
}

// settle waits until the edge says both nodes are healthy.
func (s *stand) settle(t *testing.T, e edgeUnderTest) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(30 * time.Millisecond) {
		resp, body := s.do(t, "GET", e.url+"/edge/health", "", "")
		var h struct {
			NodesHealthy int `json:"nodes_healthy"`
		}
		if resp.StatusCode == 200 && json.Unmarshal(body, &h) == nil && h.NodesHealthy == 2 {
			return
		}
	}
	t.Fatal("the nodes never became healthy at the edge")
}

func ptr(p *int) any {
	if p == nil {
		return "any"
	}
	return *p
}
