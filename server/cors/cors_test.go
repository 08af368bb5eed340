package cors

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCORS(t *testing.T) {
	origins, err := ParseOrigins("https://app.example.com, http://localhost:3000")
	if err != nil {
		t.Fatal(err)
	}
	var reached int
	h := Handler(origins, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++; w.WriteHeader(204) }))
	pre := func(origin string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("OPTIONS", "/api/projects", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := pre("https://app.example.com")
	if w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" || w.Header().Get("Access-Control-Allow-Credentials") != "true" ||
		w.Header().Get("Access-Control-Allow-Methods") != "POST" || reached != 0 {
		t.Errorf("listed origin preflight: %v (reached %d)", w.Header(), reached)
	}
	if w := pre("https://evil.example.com"); w.Header().Get("Access-Control-Allow-Origin") != "" || w.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("unlisted origin: %v", w.Header())
	}
	r := httptest.NewRequest("GET", "/api/projects", nil)
	r.Header.Set("Origin", "http://localhost:3000")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Header().Get("Access-Control-Allow-Origin") != "http://localhost:3000" || rec.Header().Get("Access-Control-Expose-Headers") == "" || reached != 1 {
		t.Errorf("simple request: %v", rec.Header())
	}
	// "*" never carries credentials.
	any, _ := ParseOrigins("*")
	h = Handler(any, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	w = httptest.NewRecorder()
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Origin", "https://anyone.example")
	h.ServeHTTP(w, r)
	if w.Header().Get("Access-Control-Allow-Origin") != "*" || w.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("wildcard: %v", w.Header())
	}
	for _, bad := range []string{"app.example.com", "https://x.example/path", "ftp://x"} {
		if _, err := ParseOrigins(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
