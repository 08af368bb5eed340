package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Title string `json:"title"`
		Pages int    `json:"pages"`
	}
	cases := []struct {
		name, ct, in string
		status       int
		field        string
	}{
		{"ok", "application/json", `{"title":"Etude","pages":3}`, 0, ""},
		{"ok without content type", "", `{"title":"Etude"}`, 0, ""},
		{"ok charset", "application/json; charset=utf-8", `{"title":"Etude"}`, 0, ""},
		{"unknown field", "application/json", `{"title":"Etude","admin":true}`, 400, "admin"},
		{"wrong type", "application/json", `{"pages":"three"}`, 400, "pages"},
		{"malformed", "application/json", `{"title":`, 400, ""},
		{"syntax error", "application/json", `{"title" "x"}`, 400, ""},
		{"empty", "application/json", ``, 400, ""},
		{"two values", "application/json", `{"title":"a"}{"title":"b"}`, 400, ""},
		{"trailing garbage", "application/json", `{"title":"a"} x`, 400, ""},
		{"too large", "application/json", `{"title":"` + strings.Repeat("a", 200) + `"}`, 413, ""},
		{"not json", "text/plain", `{"title":"a"}`, 415, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/", strings.NewReader(tc.in))
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			var dst body
			err := DecodeJSON(httptest.NewRecorder(), req, 100, &dst)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("DecodeJSON: %v", err)
				}
				return
			}
			p, ok := err.(*Problem)
			if !ok {
				t.Fatalf("error %v is not a *Problem", err)
			}
			if p.Status != tc.status {
				t.Errorf("status %d, want %d (%s)", p.Status, tc.status, p.Detail)
			}
			if tc.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tc.field) {
				t.Errorf("field errors %+v, want one on %q", p.Errors, tc.field)
			}
		})
	}
}

func TestWriteErrorHidesInternals(t *testing.T) {
	s, logs := newTestServer(t, nil)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/x", nil)
	s.WriteError(rec, req, errString("pq: password authentication failed for user secret"))
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "secret") {
		t.Errorf("internal error answered %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "password authentication failed") {
		t.Error("internal error not logged")
	}
	rec = httptest.NewRecorder()
	s.WriteError(rec, req, NewProblem(http.StatusConflict, CodeConflict, "taken"))
	if rec.Code != http.StatusConflict {
		t.Errorf("problem answered %d", rec.Code)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// Bodies too deep or too wide are refused before they are decoded.
func TestDecodeJSONShape(t *testing.T) {
	var dst map[string]any
	for name, c := range map[string]struct {
		in string
		ok bool
	}{
		"depth 32":         {strings.Repeat(`{"a":`, 31) + "1" + strings.Repeat("}", 31), true},
		"depth 33":         {strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33), false},
		"deep arrays":      {`{"a":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "}", false},
		"10,000 items":     {`{"a":[` + strings.TrimSuffix(strings.Repeat("1,", 10000), ",") + "]}", true},
		"10,001 items":     {`{"a":[` + strings.TrimSuffix(strings.Repeat("1,", 10001), ",") + "]}", false},
		"10,001 members":   {"{" + strings.TrimSuffix(strings.Repeat(`"k":1,`, 10001), ",") + "}", false},
		"unclosed, deep":   {strings.Repeat("[", 40), false},
		"a long string ok": {`{"a":"` + strings.Repeat("x", 500000) + `"}`, true},
	} {
		req := httptest.NewRequest("POST", "/", strings.NewReader(c.in))
		err := DecodeJSON(httptest.NewRecorder(), req, 1<<20, &dst)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", name, err)
		}
		if p, isProblem := err.(*Problem); err != nil && (!isProblem || p.Status != 400) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The largest valid bodies fit their routes' limits, however escaped.
func TestLargestValidBodiesFit(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	astral := strings.Repeat(`\ud834\udd1e`, 1) // 𝄞, escaped: 12 bytes
	desc := strings.Repeat(astral, 5000)
	title := strings.Repeat(astral, 200)
	r := a.call("POST", "/api/projects", tok, `{"title":"`+title+`","filename":"a.pdf","description":"`+desc+`"}`)
	if r.status != 201 {
		t.Errorf("a 5,000-character description, escaped: %d %s", r.status, r.body)
	}
	r = a.call("POST", "/api/embeddings/generate", tok, `{"text":"`+strings.Repeat(astral, 8000)+`"}`)
	if r.status == 413 {
		t.Errorf("an 8,000-character text, escaped: 413")
	}
	r = a.call("POST", "/api/search", tok, `{"query":"`+strings.Repeat(astral, 2000)+`"}`)
	if r.status == 413 {
		t.Errorf("a 2,000-character question, escaped: 413")
	}
}
