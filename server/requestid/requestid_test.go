package requestid

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMiddleware(t *testing.T) {
	var seen string
	h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = FromContext(r.Context())
		if r.Header.Get(Header) != seen {
			t.Errorf("the request header %q is not the id %q", r.Header.Get(Header), seen)
		}
	}))
	for in, keep := range map[string]bool{"trace-1:a.b_c": true, "": false, "has space": false, strings.Repeat("a", 129): false, "ünïcode": false} {
		req := httptest.NewRequest("GET", "/", nil)
		if in != "" {
			req.Header.Set(Header, in)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get(Header)
		if got != seen || got == "" || (got == in) != keep {
			t.Errorf("in %q: answered %q, context %q, kept %v", in, got, seen, keep)
		}
	}
}
