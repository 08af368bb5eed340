package server

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/sostenuto/sostenuto/server/auth"
)

// bodies are the request bodies of every JSON endpoint, with their
// validation where the handler validates in one function.
var bodies = []struct {
	name     string
	new      func() any
	validate func(any) error
}{
	{"register", func() any { return &auth.Registration{} }, nil},
	{"login", func() any { return &loginRequest{} }, nil},
	{"refresh", func() any { return &refreshRequest{} }, nil},
	{"relationship", func() any { return &relationshipRequest{} }, nil},
	{"createProject", func() any { return &createProjectRequest{} }, nil},
	{"patchProject", func() any { return &patchProjectRequest{} }, nil},
	{"confirm", func() any { return &confirmRequest{} }, nil},
	{"grant", func() any { return &grantRequest{} }, nil},
	{"createAnnotation", func() any { return &createAnnotationRequest{} }, nil},
	{"patchAnnotation", func() any { return &patchAnnotationRequest{} }, nil},
	{"createDocument", func() any { return &createDocumentRequest{} }, nil},
	{"search", func() any { return &searchRequest{} }, func(v any) error { _, err := v.(*searchRequest).validate(); return err }},
	{"embedding", func() any { return &embeddingRequest{} }, nil},
	{"createSession", func() any { return &createSessionRequest{} }, nil},
	{"chat", func() any { return &chatRequest{} }, func(v any) error { _, err := v.(*chatRequest).validate(); return err }},
	{"join", func() any { return &joinRequest{} }, func(v any) error { return v.(*joinRequest).validate() }},
	{"repair", func() any { return &repairRequest{} }, nil},
}

// FuzzDecodeBodies: any bytes, decoded as each endpoint's body, give the
// value or a 4xx problem — never a panic, never a 5xx — and so does the
// endpoint's validation.
func FuzzDecodeBodies(f *testing.F) {
	for _, s := range []string{
		`{"email":"a@example.com","password":"correct horse battery","display_name":"A","role":"teacher"}`,
		`{"query":"pedal","k":5,"mode":"hybrid","min_lsn":"0/1A2B"}`,
		`{"query":"When?","session_id":"6f1c2a3e-4b5d-4e6f-8a9b-0c1d2e3f4a5b","k":3}`,
		`{"project_id":"6f1c2a3e-4b5d-4e6f-8a9b-0c1d2e3f4a5b","page":2,"type":"note","content":{"text":"x","x":0.5,"y":0.5}}`,
		`{"title":"T","source_type":"text","content":"abc","is_public":true}`,
		`{"id":"n2","raft_addr":"127.0.0.1:7001","api_url":"http://127.0.0.1:8081"}`,
		`{"k":-1}`, `{"k":1e400}`, `[]`, `null`, `"x"`, `{"a":` + string(bytes.Repeat([]byte("["), 64)), `{"query":"\ud800"}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, b := range bodies {
			req := httptest.NewRequest("POST", "/", bytes.NewReader(data))
			req.Header.Set("Content-Type", "application/json")
			v := b.new()
			err := DecodeJSON(httptest.NewRecorder(), req, 64<<10, v)
			if err == nil && b.validate != nil {
				err = b.validate(v)
			}
			if err == nil {
				continue
			}
			p, ok := err.(*Problem)
			if !ok || p.Status < 400 || p.Status >= 500 {
				t.Fatalf("%s: %T %v", b.name, err, err)
			}
		}
	})
}

// FuzzAnnotationContent: content is accepted in a canonical form that is
// itself accepted unchanged, bounded in size, or refused with a problem.
func FuzzAnnotationContent(f *testing.F) {
	for _, s := range []struct{ typ, raw string }{
		{"highlight", `{"rects":[{"x":0.1,"y":0.2,"w":0.3,"h":0.05}],"color":"#ffcc00"}`},
		{"note", `{"text":"Lift the pedal here","x":0.5,"y":0.5}`},
		{"drawing", `{"paths":[{"points":[[0.1,0.1],[0.2,0.25]],"width":2}]}`},
		{"highlight", `{"rects":[{"X":1,"Y":1,"W":1,"H":1}]}`},
		{"note", `{"text":"` + string(bytes.Repeat([]byte("a"), 5000)) + `"}`},
		{"drawing", `{"paths":[{"points":[[1e308,-1e308]]}]}`},
		{"bogus", `{}`},
	} {
		f.Add(s.typ, []byte(s.raw))
	}
	f.Fuzz(func(t *testing.T, typ string, raw []byte) {
		out, err := validateContent(typ, json.RawMessage(raw))
		if err != nil {
			if p := problemOf(err); p == nil || p.Status >= 500 {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		if len(out) > 64<<10 {
			t.Fatalf("canonical content of %d bytes", len(out))
		}
		again, err := validateContent(typ, out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("canonical form %s is not stable: %s, %v", out, again, err)
		}
	})
}
