package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// curl runs the real curl, as a client author would.
func curl(t *testing.T, args ...string) (status int, body []byte, headers string) {
	t.Helper()
	dir := t.TempDir()
	out, hdr := filepath.Join(dir, "body"), filepath.Join(dir, "headers")
	cmd := exec.Command("curl", append([]string{"-sS", "-o", out, "-D", hdr, "-w", "%{http_code}"}, args...)...)
	code, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	status, _ = strconv.Atoi(string(code))
	body, _ = os.ReadFile(out)
	h, _ := os.ReadFile(hdr)
	return status, body, string(h)
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "upload.pdf")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newProject creates a project and returns it with its upload.
func (a *testAPI) newProject(token, title string) projectWithUpload {
	a.t.Helper()
	var pu projectWithUpload
	a.mustStatus(a.call("POST", "/api/projects", token, map[string]any{"title": title, "filename": title + ".pdf"}), 201).decode(a.t, &pu)
	return pu
}

// upload PUTs bytes with curl to a project's upload URL.
func (a *testAPI) upload(pu projectWithUpload, body []byte) int {
	a.t.Helper()
	return a.uploadAs(pu.Upload, body)
}

// uploadAs PUTs bytes with curl as an Upload says.
func (a *testAPI) uploadAs(up blob.Upload, body []byte) int {
	a.t.Helper()
	args := []string{"-X", "PUT", "--data-binary", "@" + writeTemp(a.t, body)}
	for k, v := range up.Headers {
		args = append(args, "-H", k+": "+v)
	}
	status, _, _ := curl(a.t, append(args, up.URL)...)
	return status
}

// readyProject creates, uploads and confirms a project of n pages.
func (a *testAPI) readyProject(token, title string, pages int) projectResponse {
	a.t.Helper()
	pu := a.newProject(token, title)
	if st := a.upload(pu, pdftest.Pages(pages)); st != 200 {
		a.t.Fatalf("upload: %d", st)
	}
	var p projectResponse
	a.mustStatus(a.call("POST", "/api/projects/"+pu.Project.ID.String()+"/confirm", token, nil), 200).decode(a.t, &p)
	return p
}

// objectCount counts stored objects (both stores).
func (a *testAPI) objectCount() int {
	if a.s3 != nil {
		return len(a.s3.Objects())
	}
	n := 0
	filepath.Walk(a.localDir(), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, ".pdf") {
			n++
		}
		return nil
	})
	return n
}

func (a *testAPI) waitObjects(want int) {
	a.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for a.objectCount() != want {
		if time.Now().After(deadline) {
			a.t.Fatalf("%d objects stored, want %d", a.objectCount(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (a *testAPI) rowCount(table string) int {
	var n int
	a.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n)
	return n
}

// The whole cycle, with plain curl for the bytes, against both stores:
// create → PUT → confirm → get → download → stream with Range → annotate
// (all three types) → edit with If-Match → delete leaves nothing behind.
func TestProjectCycle(t *testing.T) {
	for _, backend := range []string{"local", "s3"} {
		t.Run(backend, func(t *testing.T) {
			a := newAPIWith(t, apiSettings{s3: backend == "s3"})
			teacher := a.register("teacher@example.com", "teacher")
			tok := teacher.AccessToken
			pdfBytes := pdftest.Pages(4)

			pu := a.newProject(tok, "Minuet in G")
			p := pu.Project
			if p.Status != "pending_upload" || p.OwnerID != teacher.User.ID || pu.Upload.Method != "PUT" ||
				time.Until(pu.Upload.ExpiresAt) > 15*time.Minute+time.Second {
				t.Fatalf("created %+v", pu)
			}
			// Stream before the upload is confirmed: 409.
			a.mustStatus(a.call("GET", "/api/projects/"+p.ID.String()+"/stream", tok, nil), 409)
			if st := a.upload(pu, pdfBytes); st != 200 {
				t.Fatalf("curl PUT: %d", st)
			}
			var ready projectResponse
			a.mustStatus(a.call("POST", "/api/projects/"+p.ID.String()+"/confirm", tok, map[string]any{"page_count": 99}), 200).decode(t, &ready)
			if ready.Status != "ready" || *ready.PageCount != 4 || *ready.FileSizeBytes != int64(len(pdfBytes)) {
				t.Fatalf("confirmed %+v (the page_count hint must not win)", ready)
			}
			// Confirming again is harmless.
			a.mustStatus(a.call("POST", "/api/projects/"+p.ID.String()+"/confirm", tok, nil), 200)

			var view projectView
			a.mustStatus(a.call("GET", "/api/projects/"+p.ID.String(), tok, nil), 200).decode(t, &view)
			if view.Permission != "admin" || view.Download == nil || time.Until(view.Download.ExpiresAt) > 5*time.Minute+time.Second {
				t.Fatalf("view %+v", view)
			}
			status, body, hdr := curl(t, view.Download.URL)
			if status != 200 || sha256.Sum256(body) != sha256.Sum256(pdfBytes) || !strings.Contains(strings.ToLower(hdr), "content-disposition: attachment") {
				t.Fatalf("curl download: %d, %d bytes, headers %s", status, len(body), hdr)
			}

			// Stream: whole, a range, a suffix, 304, 416.
			stream := "/api/projects/" + p.ID.String() + "/stream"
			full := a.mustStatus(a.call("GET", stream, tok, nil), 200)
			etag := full.header.Get("ETag")
			if string(full.body) != string(pdfBytes) || etag == "" || full.header.Get("Cache-Control") != "private, no-cache" ||
				full.header.Get("Content-Type") != "application/pdf" || full.header.Get("Accept-Ranges") != "bytes" {
				t.Fatalf("stream headers %v", full.header)
			}
			part := a.mustStatus(a.call("GET", stream, tok, nil, "Range", "bytes=0-4"), 206)
			if string(part.body) != "%PDF-" || part.header.Get("Content-Range") != fmt.Sprintf("bytes 0-4/%d", len(pdfBytes)) {
				t.Errorf("range: %q %s", part.body, part.header.Get("Content-Range"))
			}
			tail := a.mustStatus(a.call("GET", stream, tok, nil, "Range", "bytes=-6"), 206)
			if string(tail.body) != "%%EOF\n" {
				t.Errorf("suffix range: %q", tail.body)
			}
			a.mustStatus(a.call("GET", stream, tok, nil, "If-None-Match", etag), 304)
			a.mustStatus(a.call("GET", stream, tok, nil, "Range", fmt.Sprintf("bytes=%d-", len(pdfBytes)+10)), 416)
			a.mustStatus(a.call("GET", stream, tok, nil, "Range", "bytes=0-4", "If-Range", `"stale"`), 200)

			// Annotations of all three types, then an edit under If-Match.
			notes := map[string]any{
				"highlight": map[string]any{"rects": []map[string]float64{{"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.05}}, "color": "#ffcc00"},
				"note":      map[string]any{"text": "Lift the pedal here", "x": 0.5, "y": 0.5},
				"drawing":   map[string]any{"paths": []map[string]any{{"points": [][]float64{{0.1, 0.1}, {0.2, 0.25}, {0.3, 0.2}}, "width": 2}}},
			}
			var noteAnn annotationResponse
			for typ, content := range notes {
				var ann annotationResponse
				r := a.mustStatus(a.call("POST", "/api/annotations", tok, map[string]any{"project_id": p.ID, "page": 2, "type": typ, "content": content}), 201)
				r.decode(t, &ann)
				if ann.Version != 1 || r.header.Get("ETag") != `"1"` || ann.Type != typ {
					t.Errorf("created %+v, ETag %s", ann, r.header.Get("ETag"))
				}
				if typ == "note" {
					noteAnn = ann
				}
			}
			id := "/api/annotations/" + noteAnn.ID.String()
			patch := map[string]any{"content": map[string]any{"text": "Half pedal", "x": 0.4, "y": 0.6}}
			a.mustStatus(a.call("PATCH", id, tok, patch), 428)
			var edited annotationResponse
			a.mustStatus(a.call("PATCH", id, tok, patch, "If-Match", `"1"`), 200).decode(t, &edited)
			if edited.Version != 2 || !strings.Contains(string(edited.Content), "Half pedal") {
				t.Errorf("edited %+v", edited)
			}
			a.mustStatus(a.call("PATCH", id, tok, map[string]any{"page": 3}, "If-Match", `"1"`), 412)
			a.mustStatus(a.call("PATCH", id, tok, map[string]any{"page": 5}, "If-Match", `"2"`), 400) // past the last page
			var list List[annotationResponse]
			a.mustStatus(a.call("GET", "/api/annotations?project_id="+p.ID.String()+"&page=2", tok, nil), 200).decode(t, &list)
			if len(list.Items) != 3 {
				t.Errorf("%d annotations on page 2", len(list.Items))
			}

			// Delete leaves nothing behind, in the database or the store.
			if a.objectCount() != 1 {
				t.Fatalf("%d objects before delete", a.objectCount())
			}
			a.mustStatus(a.call("DELETE", "/api/projects/"+p.ID.String(), tok, nil), 204)
			a.mustStatus(a.call("GET", "/api/projects/"+p.ID.String(), tok, nil), 404)
			a.waitObjects(0)
			for _, table := range []string{"projects", "annotations", "project_grants"} {
				if n := a.rowCount(table); n != 0 {
					t.Errorf("%d rows left in %s", n, table)
				}
			}
		})
	}
}

// Malformed, hostile and oversized uploads answer 422, are deleted, and
// leave the project awaiting a good upload; the node keeps serving.
func TestConfirmRejectsBadUploads(t *testing.T) {
	for _, backend := range []string{"local", "s3"} {
		t.Run(backend, func(t *testing.T) {
			a := newAPIWith(t, apiSettings{s3: backend == "s3", maxUpload: 64 << 10})
			tok := a.register("t@example.com", "teacher").AccessToken
			good := pdftest.Pages(3)
			cases := map[string][]byte{
				"not a pdf":   []byte("<html><body>definitely sheet music</body></html>"),
				"truncated":   good[:len(good)/2],
				"header only": []byte("%PDF-1.7\n"),
				"empty":       {},
				"malformed":   append([]byte("%PDF-1.4\n"), []byte(strings.Repeat("garbage ", 100))...),
				"oversized":   append(append([]byte{}, good...), make([]byte, 64<<10)...),
				"binary noise": func() []byte {
					b := make([]byte, 4096)
					for i := range b {
						b[i] = byte(i * 7)
					}
					return b
				}(),
			}
			for name, body := range cases {
				t.Run(name, func(t *testing.T) {
					pu := a.newProject(tok, "bad")
					st := a.upload(pu, body)
					if name == "oversized" && backend == "local" {
						// The local store refuses it while streaming.
						if st != http.StatusRequestEntityTooLarge {
							t.Fatalf("oversized PUT: %d", st)
						}
					}
					r := a.call("POST", "/api/projects/"+pu.Project.ID.String()+"/confirm", tok, nil)
					if r.status != 422 {
						t.Fatalf("confirm: %d %s", r.status, r.body)
					}
					if p := r.problem(t); p.Code != CodeInvalidUpload {
						t.Errorf("code %q", p.Code)
					}
					var view projectView
					a.mustStatus(a.call("GET", "/api/projects/"+pu.Project.ID.String(), tok, nil), 200).decode(t, &view)
					if view.Project.Status != "pending_upload" || view.Download != nil {
						t.Errorf("after a rejected upload: %+v", view)
					}
				})
			}
			a.waitObjects(0)
			// Confirm with nothing uploaded.
			pu := a.newProject(tok, "never uploaded")
			a.mustStatus(a.call("POST", "/api/projects/"+pu.Project.ID.String()+"/confirm", tok, nil), 422)
			a.mustStatus(a.call("GET", "/api/health", "", nil), 200)
		})
	}
}

// Deleting while the store is down: the answer is 204 at once and the
// object goes when the store returns (a durable, retried job).
func TestDeleteSurvivesStoreOutage(t *testing.T) {
	a := newAPIWith(t, apiSettings{s3: true})
	tok := a.register("t@example.com", "teacher").AccessToken
	p := a.readyProject(tok, "Gymnopédie", 2)
	a.s3.Stop()
	a.mustStatus(a.call("DELETE", "/api/projects/"+p.ID.String(), tok, nil), 204)
	// The jobs due now (the served copy and the upload key) fail while the
	// store is down and are retried (a failed attempt moves run_at a
	// backoff ahead); one more waits for the upload URL's expiry.
	var attempts, later int
	for deadline := time.Now().Add(10 * time.Second); attempts < 2 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		a.db.Pool.QueryRow(context.Background(), `SELECT coalesce(max(attempts), 0) FROM jobs
			WHERE kind = 'blob.delete' AND run_at < now() + interval '10 minutes'`).Scan(&attempts)
	}
	if attempts < 2 {
		t.Errorf("%d deletion attempts while the store was down, want retries", attempts)
	}
	a.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM jobs WHERE kind = 'blob.delete' AND run_at > now() + interval '10 minutes'`).Scan(&later)
	if later != 1 {
		t.Errorf("%d deletions scheduled after the upload URL's expiry, want 1", later)
	}
	a.s3.Start()
	a.waitObjects(0)
	pending := -1
	deadline := time.Now().Add(10 * time.Second)
	for pending != 0 && time.Now().Before(deadline) {
		a.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM jobs WHERE kind = 'blob.delete' AND run_at <= now() AND status <> 'succeeded'`).Scan(&pending)
		time.Sleep(50 * time.Millisecond)
	}
	if pending != 0 {
		t.Errorf("%d deletion jobs not done", pending)
	}
}

func TestProjectValidationAndListing(t *testing.T) {
	a := newAPI(t)
	teacher := a.register("t@example.com", "teacher")
	student := a.register("s@example.com", "student")
	tok := teacher.AccessToken
	for name, tc := range map[string]struct {
		body   any
		status int
		field  string
	}{
		"no title":          {map[string]any{"filename": "a.pdf"}, 400, "title"},
		"long title":        {map[string]any{"title": strings.Repeat("t", 201), "filename": "a.pdf"}, 400, "title"},
		"path in filename":  {map[string]any{"title": "T", "filename": "../../etc/passwd"}, 400, "filename"},
		"not a pdf":         {map[string]any{"title": "T", "filename": "a.exe", "content_type": "application/x-msdownload"}, 400, "content_type"},
		"too big declared":  {map[string]any{"title": "T", "filename": "a.pdf", "file_size_bytes": 200 << 20}, 400, "file_size_bytes"},
		"control character": {map[string]any{"title": "T\x00", "filename": "a.pdf"}, 400, "title"},
		"unknown field":     {map[string]any{"title": "T", "filename": "a.pdf", "owner_id": student.User.ID}, 400, "owner_id"},
	} {
		t.Run(name, func(t *testing.T) {
			r := a.call("POST", "/api/projects", tok, tc.body)
			if r.status != tc.status {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if p := r.problem(t); len(p.Errors) == 0 || p.Errors[0].Field != tc.field {
				t.Errorf("errors %+v", p.Errors)
			}
		})
	}
	if n := a.rowCount("projects"); n != 0 {
		t.Fatalf("%d projects after bad input", n)
	}
	a.mustStatus(a.call("POST", "/api/projects", student.AccessToken, map[string]any{"title": "T", "filename": "a.pdf"}), 403)

	// Listing: scope, q, pagination (newest first).
	for _, title := range []string{"Bach Invention 1", "Bach Invention 2", "Chopin Nocturne", "100% Scales_"} {
		a.newProject(tok, title)
	}
	other := a.register("o@example.com", "teacher")
	shared := a.newProject(other.AccessToken, "Shared Sonata")
	a.mustStatus(a.call("POST", "/api/projects/"+shared.Project.ID.String()+"/access", other.AccessToken, map[string]any{"user_id": teacher.User.ID, "permission": "view"}), 201)
	count := func(q string) int {
		var l List[projectResponse]
		a.mustStatus(a.call("GET", "/api/projects?"+q, tok, nil), 200).decode(t, &l)
		return len(l.Items)
	}
	for q, want := range map[string]int{"": 5, "scope=owned": 4, "scope=shared": 1, "scope=all&q=bach": 2, "q=100%25": 1, "q=_": 1, "q=nothing": 0} {
		if got := count(q); got != want {
			t.Errorf("?%s: %d projects, want %d", q, got, want)
		}
	}
	a.mustStatus(a.call("GET", "/api/projects?scope=mine", tok, nil), 400)
	var p1, p2 List[projectResponse]
	a.mustStatus(a.call("GET", "/api/projects?limit=3", tok, nil), 200).decode(t, &p1)
	a.mustStatus(a.call("GET", "/api/projects?limit=3&cursor="+*p1.NextCursor, tok, nil), 200).decode(t, &p2)
	if len(p1.Items) != 3 || len(p2.Items) != 2 || p2.NextCursor != nil || !p1.Items[0].CreatedAt.After(p2.Items[0].CreatedAt) {
		t.Errorf("pages %d + %d", len(p1.Items), len(p2.Items))
	}
	// Patch an owned project; the shared one (view only) refuses.
	var owned List[projectResponse]
	a.mustStatus(a.call("GET", "/api/projects?scope=owned&limit=1", tok, nil), 200).decode(t, &owned)
	mine := owned.Items[0]
	var patched projectResponse
	a.mustStatus(a.call("PATCH", "/api/projects/"+mine.ID.String(), tok, map[string]any{"description": "For Monday"}), 200).decode(t, &patched)
	if patched.Description != "For Monday" || patched.Title != mine.Title || !patched.UpdatedAt.After(mine.UpdatedAt) {
		t.Errorf("patched %+v", patched)
	}
	a.mustStatus(a.call("PATCH", "/api/projects/"+mine.ID.String(), tok, map[string]any{"title": ""}), 400)
	a.mustStatus(a.call("PATCH", "/api/projects/"+shared.Project.ID.String(), tok, map[string]any{"title": "Mine now"}), 403)
}

func TestGrants(t *testing.T) {
	a := newAPI(t)
	owner := a.register("owner@example.com", "teacher")
	editor := a.register("editor@example.com", "student")
	viewer := a.register("viewer@example.com", "student")
	padmin := a.register("padmin@example.com", "teacher")
	p := a.readyProject(owner.AccessToken, "Etude", 2)
	access := "/api/projects/" + p.ID.String() + "/access"
	var g grantResponse
	a.mustStatus(a.call("POST", access, owner.AccessToken, map[string]any{"email": "EDITOR@example.com", "permission": "edit"}), 201).decode(t, &g)
	if g.UserID != editor.User.ID || g.Permission != "edit" || *g.GrantedBy != owner.User.ID {
		t.Errorf("grant %+v", g)
	}
	a.mustStatus(a.call("POST", access, owner.AccessToken, map[string]any{"user_id": editor.User.ID, "permission": "view"}), 200)
	a.mustStatus(a.call("POST", access, owner.AccessToken, map[string]any{"user_id": editor.User.ID, "permission": "edit"}), 200)
	a.mustStatus(a.call("POST", access, owner.AccessToken, map[string]any{"user_id": padmin.User.ID, "permission": "admin"}), 201)
	a.mustStatus(a.call("POST", access, owner.AccessToken, map[string]any{"user_id": owner.User.ID, "permission": "view"}), 400)
	a.mustStatus(a.call("POST", access, owner.AccessToken, map[string]any{"user_id": viewer.User.ID, "permission": "owner"}), 400)
	a.mustStatus(a.call("POST", access, owner.AccessToken, map[string]any{"email": "ghost@example.com", "permission": "view"}), 404)
	// An editor can see the project but not grant: 403. A project admin
	// grants up to admin.
	a.mustStatus(a.call("POST", access, editor.AccessToken, map[string]any{"user_id": viewer.User.ID, "permission": "view"}), 403)
	a.mustStatus(a.call("POST", access, padmin.AccessToken, map[string]any{"user_id": viewer.User.ID, "permission": "view"}), 201)
	var list List[grantResponse]
	a.mustStatus(a.call("GET", access, padmin.AccessToken, nil), 200).decode(t, &list)
	if len(list.Items) != 3 {
		t.Errorf("%d grants", len(list.Items))
	}
	a.mustStatus(a.call("GET", access, viewer.AccessToken, nil), 403)
	// The editor annotates; the viewer may not.
	note := map[string]any{"project_id": p.ID, "page": 1, "type": "note", "content": map[string]any{"text": "x", "x": 0.1, "y": 0.1}}
	a.mustStatus(a.call("POST", "/api/annotations", editor.AccessToken, note), 201)
	a.mustStatus(a.call("POST", "/api/annotations", viewer.AccessToken, note), 403)
	// Revoking ends access at once.
	a.mustStatus(a.call("DELETE", access+"/"+viewer.User.ID.String(), owner.AccessToken, nil), 204)
	a.mustStatus(a.call("DELETE", access+"/"+viewer.User.ID.String(), owner.AccessToken, nil), 404)
	a.mustStatus(a.call("GET", "/api/projects/"+p.ID.String()+"/stream", viewer.AccessToken, nil), 404)
}

func TestAnnotationContentValidation(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	p := a.readyProject(tok, "Etude", 3)
	post := func(page int, typ string, content any) response {
		return a.call("POST", "/api/annotations", tok, map[string]any{"project_id": p.ID, "page": page, "type": typ, "content": content})
	}
	manyPoints := make([][]float64, 5001)
	for i := range manyPoints {
		manyPoints[i] = []float64{0.5, 0.5}
	}
	for name, tc := range map[string]struct {
		page    int
		typ     string
		content any
	}{
		"page zero":           {0, "note", map[string]any{"text": "x", "x": 0.1, "y": 0.1}},
		"page past the end":   {4, "note", map[string]any{"text": "x", "x": 0.1, "y": 0.1}},
		"unknown type":        {1, "sticker", map[string]any{}},
		"note without text":   {1, "note", map[string]any{"x": 0.1, "y": 0.1}},
		"note too long":       {1, "note", map[string]any{"text": strings.Repeat("a", 5001), "x": 0.1, "y": 0.1}},
		"note off the page":   {1, "note", map[string]any{"text": "x", "x": 1.5, "y": 0.1}},
		"note extra field":    {1, "note", map[string]any{"text": "x", "x": 0.1, "y": 0.1, "script": "alert(1)"}},
		"highlight no rects":  {1, "highlight", map[string]any{"rects": []any{}}},
		"highlight overflow":  {1, "highlight", map[string]any{"rects": []map[string]float64{{"x": 0.9, "y": 0.1, "w": 0.5, "h": 0.1}}}},
		"highlight bad color": {1, "highlight", map[string]any{"rects": []map[string]float64{{"x": 0.1, "y": 0.1, "w": 0.1, "h": 0.1}}, "color": "red; background:url(x)"}},
		"drawing bad point":   {1, "drawing", map[string]any{"paths": []map[string]any{{"points": [][]float64{{0.1}}}}}},
		"drawing negative":    {1, "drawing", map[string]any{"paths": []map[string]any{{"points": [][]float64{{-0.1, 0.2}}}}}},
		"drawing too many":    {1, "drawing", map[string]any{"paths": []map[string]any{{"points": manyPoints}}}},
		"drawing fat stroke":  {1, "drawing", map[string]any{"paths": []map[string]any{{"points": [][]float64{{0.1, 0.2}}, "width": 500}}}},
		"content not object":  {1, "note", "just text"},
		"content missing":     {1, "note", nil},
	} {
		t.Run(name, func(t *testing.T) {
			r := post(tc.page, tc.typ, tc.content)
			if r.status != 400 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			r.problem(t)
		})
	}
	if n := a.rowCount("annotations"); n != 0 {
		t.Errorf("%d annotations stored from bad input", n)
	}
}
