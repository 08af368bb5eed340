package embed

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func cosine(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestHashEmbedder(t *testing.T) {
	h := Hash{}
	ctx := context.Background()
	vs, err := h.Embed(ctx, []string{
		"Practise scales slowly with a metronome to build even finger technique.",
		"Slow scale practice with a metronome builds even finger technique.",
		"The sustain pedal should be changed with every harmony.",
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if len(v) != Dim {
			t.Fatalf("dim %d", len(v))
		}
		if n := cosine(v, v); math.Abs(n-1) > 1e-5 {
			t.Errorf("vector %d has norm² %v", i, n)
		}
	}
	near, far := cosine(vs[0], vs[1]), cosine(vs[0], vs[2])
	t.Logf("shared wording %.3f, unrelated %.3f", near, far)
	if near < 0.4 || far > 0.2 || near < 2*far {
		t.Errorf("shared wording %.3f is not clearly nearer than unrelated text %.3f", near, far)
	}
	again, _ := h.Embed(ctx, []string{"Practise scales slowly with a metronome to build even finger technique."})
	for i := range again[0] {
		if again[0][i] != vs[0][i] {
			t.Fatal("not deterministic")
		}
	}
	if _, err := h.Embed(ctx, []string{"  ...  "}); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty text: %v", err)
	}
}

func vec(seed int) []float32 {
	v := make([]float32, Dim)
	v[seed%Dim] = 3
	v[(seed+1)%Dim] = 4
	return v
}

var fastRetry = RetryPolicy{Attempts: 4, Base: 5 * time.Millisecond, Max: 50 * time.Millisecond, Timeout: 300 * time.Millisecond}

// A server speaking Workers AI's wire format, with failures injected.
func workersAIServer(t *testing.T, fail []int, calls *atomic.Int32) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(calls.Add(1))
		if r.Method != "POST" || r.URL.Path != "/client/v4/accounts/acc123/ai/run/@cf/baai/bge-base-en-v1.5" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"success":false,"errors":[{"code":7003,"message":"bad route"}]}`, 404)
			return
		}
		if n <= len(fail) {
			if fail[n-1] == 429 {
				w.Header().Set("Retry-After", "0")
			}
			code := fail[n-1]
			if code == -1 { // hang past the timeout
				time.Sleep(time.Second)
				code = 500
			}
			w.WriteHeader(code)
			return
		}
		var in struct{ Text []string }
		json.NewDecoder(r.Body).Decode(&in)
		data := make([][]float32, len(in.Text))
		for i := range in.Text {
			data[i] = vec(i)
		}
		json.NewEncoder(w).Encode(map[string]any{"result": map[string]any{"shape": []int{len(data), Dim}, "data": data}, "success": true, "errors": []any{}, "messages": []any{}})
	}))
}

func TestWorkersAI(t *testing.T) {
	for name, tc := range map[string]struct {
		fail  []int
		ok    bool
		calls int32
	}{
		"ok":                  {nil, true, 1},
		"429 then ok":         {[]int{429}, true, 2},
		"503, 500 then ok":    {[]int{503, 500}, true, 3},
		"timeout then ok":     {[]int{-1}, true, 2},
		"400 is not retried":  {[]int{400}, false, 1},
		"always 503 gives up": {[]int{503, 503, 503, 503, 503}, false, 4},
	} {
		t.Run(name, func(t *testing.T) {
			var calls atomic.Int32
			srv := workersAIServer(t, tc.fail, &calls)
			defer srv.Close()
			w := &WorkersAI{BaseURL: srv.URL + "/client/v4", AccountID: "acc123", Token: "tok", Retry: fastRetry}
			vs, err := w.Embed(context.Background(), []string{"a", "b", "c"})
			if (err == nil) != tc.ok || calls.Load() != tc.calls {
				t.Fatalf("err %v after %d calls; want ok=%v after %d", err, calls.Load(), tc.ok, tc.calls)
			}
			if tc.ok && (len(vs) != 3 || math.Abs(cosine(vs[1], vs[1])-1) > 1e-6 || vs[1][2] != 0.8) {
				t.Errorf("vectors not normalized or out of order: %v", vs[1][:4])
			}
		})
	}
}

func TestOpenAICompatible(t *testing.T) {
	var calls atomic.Int32
	var dims atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/v1/embeddings" || r.Header.Get("Authorization") != "Bearer sk-test" {
			w.WriteHeader(401)
			return
		}
		var in struct {
			Model      string   `json:"model"`
			Input      []string `json:"input"`
			Dimensions int      `json:"dimensions"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		dims.Store(int32(in.Dimensions))
		if calls.Load() == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(429)
			return
		}
		// Answer out of order, as the API allows: the index says where.
		var data []map[string]any
		for i := len(in.Input) - 1; i >= 0; i-- {
			data = append(data, map[string]any{"object": "embedding", "index": i, "embedding": vec(i)})
		}
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "model": in.Model, "data": data})
	}))
	defer srv.Close()
	o := &OpenAI{BaseURL: srv.URL, APIKey: "sk-test", ModelName: "nomic-embed-text", Dimensions: 768, Retry: fastRetry}
	vs, err := o.Embed(context.Background(), []string{"x", "y"})
	if err != nil || len(vs) != 2 || vs[0][0] != 0.6 || vs[1][1] != 0.6 || dims.Load() != 768 {
		t.Fatalf("vs %v err %v dims %d", len(vs), err, dims.Load())
	}
	bad := &OpenAI{BaseURL: srv.URL, APIKey: "wrong", ModelName: "m", Retry: fastRetry}
	before := calls.Load()
	if _, err := bad.Embed(context.Background(), []string{"x"}); err == nil || calls.Load()-before != 1 {
		t.Errorf("401 retried or accepted: %v", err)
	}
}

func TestWrongDimensionRejected(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"data": []map[string]any{{"index": 0, "embedding": []float32{1, 2, 3}}}})
	}))
	defer srv.Close()
	_, err := (&OpenAI{BaseURL: srv.URL, ModelName: "tiny", Retry: fastRetry}).Embed(context.Background(), []string{"x"})
	if err == nil || !strings.Contains(err.Error(), "3 dimensions, want 768") {
		t.Errorf("err %v", err)
	}
}

func TestBatched(t *testing.T) {
	var sizes []int
	e := recordingEmbedder{sizes: &sizes}
	texts := make([]string, 120)
	for i := range texts {
		texts[i] = "text"
	}
	var progress []int
	vs, err := Batched(context.Background(), e, texts, func(done int) { progress = append(progress, done) })
	if err != nil || len(vs) != 120 || len(sizes) != 3 || sizes[0] != 50 || sizes[2] != 20 || progress[2] != 120 {
		t.Errorf("batches %v progress %v err %v", sizes, progress, err)
	}
}

type recordingEmbedder struct{ sizes *[]int }

func (r recordingEmbedder) Model() string { return "rec" }
func (r recordingEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	*r.sizes = append(*r.sizes, len(texts))
	out := make([][]float32, len(texts))
	for i := range out {
		out[i] = vec(i)
	}
	return out, nil
}
