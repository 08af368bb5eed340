package conformance

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sostenuto/sostenuto/edge/rules"
	"github.com/sostenuto/sostenuto/edge/worker/workertest"
	"github.com/sostenuto/sostenuto/server/blob"
)

// wasmRules runs the Worker's rules binary (build/rules.wasm) under Node.
type wasmRules struct {
	in  *json.Encoder
	out *bufio.Scanner
}

func startWasmRules(t *testing.T) *wasmRules {
	t.Helper()
	if err := workertest.Build(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(workertest.Node(), filepath.Join("test", "rules-cli.mjs"))
	cmd.Dir = workertest.Dir()
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatalf("node (run make worker-deps): %v", err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() }) //nolint:errcheck // ends with stdin
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &wasmRules{in: json.NewEncoder(stdin), out: sc}
}

func (w *wasmRules) call(t *testing.T, op string, args, out any) {
	t.Helper()
	if err := w.in.Encode(map[string]any{"op": op, "args": args}); err != nil {
		t.Fatal(err)
	}
	if !w.out.Scan() {
		t.Fatalf("the wasm rules ended: %v", w.out.Err())
	}
	if err := json.Unmarshal(w.out.Bytes(), out); err != nil {
		t.Fatalf("%s: %s: %v", op, w.out.Bytes(), err)
	}
}

// The range vectors hold for the node's parser (server/blob), the shared
// rules in Go and the same rules in the Worker's Wasm.
func TestRangeRules(t *testing.T) {
	var file struct{ Vectors []rangeVector }
	load(t, "ranges.json", &file)
	w := startWasmRules(t)
	for _, v := range file.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			var want *rules.Range
			if v.WantRange != nil {
				want = &rules.Range{Start: v.WantRange[0], End: v.WantRange[1]}
			}
			inm, ir := v.IfNoneMatch, v.IfRange
			got := rules.ServeObject(inm, v.Range, ir, `"e1"`, v.Size)
			if got.Status != v.WantStatus || !reflect.DeepEqual(got.Range, want) {
				t.Errorf("rules: %d %+v, want %d %+v", got.Status, got.Range, v.WantStatus, want)
			}
			var wg rules.Serve
			w.call(t, "serve", map[string]any{"if_none_match": inm, "range": v.Range, "if_range": ir, "etag": `"e1"`, "size": v.Size}, &wg)
			if !reflect.DeepEqual(wg, got) {
				t.Errorf("wasm: %+v, go: %+v", wg, got)
			}
			if inm == "" && ir == "" { // the node's own parser
				nr, ns := blob.ParseRange(v.Range, v.Size)
				if ns != v.WantStatus || !reflect.DeepEqual((*rules.Range)(nr), want) {
					t.Errorf("node: %d %+v, want %d %+v", ns, nr, v.WantStatus, want)
				}
			}
		})
	}
}

type planVector struct {
	Name        string `json:"name"`
	Method      string `json:"method"`
	Path        string `json:"path"`
	Subject     string `json:"subject"`
	Accept      string `json:"accept"`
	IfNoneMatch string `json:"if_none_match"`
	Body        string `json:"body"`
	Kept        bool   `json:"kept"`
	Want        rules.Plan
}

// The plans (idempotence, caching, cache keys) agree in Go and in Wasm,
// and the keys are SHA-256 of subject, route and body as documented.
func TestPlanRules(t *testing.T) {
	var file struct{ Vectors []planVector }
	load(t, "plans.json", &file)
	w := startWasmRules(t)
	for _, v := range file.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			want := v.Want
			if want.Key == "@KEY" {
				sum := sha256.Sum256([]byte(v.Subject + "\x00" + v.Path + "\x00" + v.Body))
				want.Key = hex.EncodeToString(sum[:])
			}
			in := rules.Request{Method: v.Method, Path: v.Path, Subject: v.Subject, Accept: v.Accept, IfNoneMatch: v.IfNoneMatch,
				Body: []byte(v.Body), Kept: v.Kept}
			if got := rules.PlanFor(in); got != want {
				t.Errorf("go: %+v, want %+v", got, want)
			}
			var got rules.Plan
			w.call(t, "plan", map[string]any{"Method": v.Method, "Path": v.Path, "Subject": v.Subject, "Accept": v.Accept,
				"IfNoneMatch": v.IfNoneMatch, "Body": base64.StdEncoding.EncodeToString([]byte(v.Body)), "Kept": v.Kept}, &got)
			if got != want {
				t.Errorf("wasm: %+v, want %+v", got, want)
			}
		})
	}
}

// The Worker keeps tokens whose signature it verified, and checks their
// claims again on every use: a kept token past its expiry is refused, and
// a new key set drops what was kept.
func TestWasmKeptTokensRechecked(t *testing.T) {
	w := startWasmRules(t)
	k := newKeys()
	s := &stand{keys: k}
	now := time.Now()
	tok := s.sign(t, "EdDSA", jwt.MapClaims{"iss": "sostenuto", "aud": "sostenuto-api", "sub": "u", "exp": now.Add(time.Hour).Unix()})
	var ok bool
	w.call(t, "configure", map[string]any{"issuers": []string{"sostenuto"}, "audiences": []string{"sostenuto-api"}, "leeway_ms": 30000, "jwks": true}, &ok)
	var n int
	w.call(t, "keys", []string{string(k.jwks())}, &n)
	verify := func(at time.Time) string {
		var res struct{ Outcome string }
		w.call(t, "verify", map[string]any{"authorization": "Bearer " + tok, "path": "/api/projects", "now_ms": at.UnixMilli()}, &res)
		return res.Outcome
	}
	if got := verify(now); got != "valid" {
		t.Fatalf("fresh token: %s", got)
	}
	if got := verify(now); got != "valid" {
		t.Fatalf("kept token: %s", got)
	}
	if got := verify(now.Add(2 * time.Hour)); got != "refused" {
		t.Errorf("a kept token past its expiry: %s, want refused", got)
	}
	other := newKeys() // the key rotated away: k1 is no longer published
	w.call(t, "keys", []string{string(other.jwks())}, &n)
	if got := verify(now); got != "refused" {
		t.Errorf("a kept token after its key was withdrawn: %s, want refused", got)
	}
}
