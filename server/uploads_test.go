package server

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
	"github.com/sostenuto/sostenuto/server/store"
)

// A confirmed project serves exactly the bytes confirm checked, whatever
// is PUT to its upload URL afterwards (the URL cannot be recalled): the
// node's stream, the edge's stream from the store (after the node's
// GET /object), the object that key names and the download URL all give
// the confirmed PDF with its size and ETag, ranges included. A rejected
// upload can still be replaced through the same URL before confirming;
// deleting the project removes every object it left, the late PUT's too.
// Both stores.
func TestConfirmedUploadIsImmutable(t *testing.T) {
	for _, backend := range []string{"local", "s3"} {
		t.Run(backend, func(t *testing.T) {
			a := newAPIWith(t, apiSettings{s3: backend == "s3"})
			edgeURL := a.startEdge()
			tok := a.register("t@example.com", "teacher").AccessToken
			good := pdftest.Pages(3)
			pu := a.newProject(tok, "Etude")
			id := pu.Project.ID.String()
			confirm := "/api/projects/" + id + "/confirm"

			// The re-upload flow: a rejected file, then a good one.
			if st := a.upload(pu, []byte("<html>not a score</html>")); st != 200 {
				t.Fatalf("first PUT: %d", st)
			}
			a.mustStatus(a.call("POST", confirm, tok, nil), 422)
			if st := a.upload(pu, good); st != 200 {
				t.Fatalf("second PUT: %d", st)
			}
			var ready projectResponse
			a.mustStatus(a.call("POST", confirm, tok, nil), 200).decode(t, &ready)
			if ready.Status != store.StatusReady || *ready.FileSizeBytes != int64(len(good)) {
				t.Fatalf("confirmed %+v", ready)
			}
			etag := a.mustStatus(a.call("GET", "/api/projects/"+id+"/stream", tok, nil), 200).header.Get("ETag")

			// Other bytes to the same upload URL after confirm.
			evil := []byte("<html><script>alert(document.cookie)</script>" + strings.Repeat("<p>replaced</p>", 400) + "</html>")
			st := a.upload(pu, evil)
			t.Logf("PUT to the upload URL after confirm answered %d", st)
			a.mustStatus(a.call("POST", confirm, tok, nil), 200).decode(t, &ready)
			if *ready.FileSizeBytes != int64(len(good)) {
				t.Errorf("confirming again changed the size to %d", *ready.FileSizeBytes)
			}

			for name, base := range map[string]string{"node": a.url, "edge": edgeURL} {
				t.Run(name, func(t *testing.T) { a.checkServed(t, base, tok, id, good, etag) })
			}
			// The object the edge is told to read.
			var obj ProjectObject
			a.mustStatus(a.call("GET", "/api/projects/"+id+"/object", tok, nil), 200).decode(t, &obj)
			rc, info, err := a.blob.Open(t0(), obj.Key, nil)
			if err != nil {
				t.Fatal(err)
			}
			stored, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(stored, good) || info.ETag != etag || obj.ETag != etag || obj.Size != int64(len(good)) {
				t.Errorf("object %+v holds %d bytes (ETag %s), want the confirmed %d (ETag %s)", obj, len(stored), info.ETag, len(good), etag)
			}
			// The download URL.
			var view projectView
			a.mustStatus(a.call("GET", "/api/projects/"+id, tok, nil), 200).decode(t, &view)
			if status, body, _ := curl(t, view.Download.URL); status != 200 || !bytes.Equal(body, good) {
				t.Errorf("download: %d, %d bytes, want the confirmed %d", status, len(body), len(good))
			}

			// Deleting removes the served object and the upload's.
			a.mustStatus(a.call("DELETE", "/api/projects/"+id, tok, nil), 204)
			a.waitObjects(0)
			a.checkLateUploadCleaned(pu.Upload)
		})
	}
}

// checkServed streams project id through base and wants exactly want:
// whole, a range, a suffix, and 304 for etag.
func (a *testAPI) checkServed(t *testing.T, base, tok, id string, want []byte, etag string) {
	t.Helper()
	stream := "/api/projects/" + id + "/stream"
	full := a.callAt(base, "GET", stream, tok, nil)
	if full.status != 200 || !bytes.Equal(full.body, want) || full.header.Get("ETag") != etag ||
		full.header.Get("Content-Length") != strconv.Itoa(len(want)) || full.header.Get("Content-Type") != pdfContentType {
		t.Errorf("stream: %d, %d bytes (%.20q), ETag %s, Content-Length %s; want %d bytes, ETag %s",
			full.status, len(full.body), full.body, full.header.Get("ETag"), full.header.Get("Content-Length"), len(want), etag)
	}
	part := a.callAt(base, "GET", stream, tok, nil, "Range", "bytes=10-19")
	if part.status != 206 || !bytes.Equal(part.body, want[10:20]) || part.header.Get("Content-Range") != fmt.Sprintf("bytes 10-19/%d", len(want)) {
		t.Errorf("range: %d %q %s", part.status, part.body, part.header.Get("Content-Range"))
	}
	tail := a.callAt(base, "GET", stream, tok, nil, "Range", "bytes=-6")
	if tail.status != 206 || !bytes.Equal(tail.body, want[len(want)-6:]) {
		t.Errorf("suffix range: %d %q", tail.status, tail.body)
	}
	if r := a.callAt(base, "GET", stream, tok, nil, "If-None-Match", etag); r.status != 304 {
		t.Errorf("If-None-Match: %d", r.status)
	}
}

// A knowledge upload is frozen when it is processed: a file PUT to the
// upload URL afterwards is never read, by this processing or any later
// one. Before processing, the file can be replaced. Deleting the document
// removes every object it left. Both stores.
func TestProcessedUploadIsFrozen(t *testing.T) {
	for _, backend := range []string{"local", "s3"} {
		t.Run(backend, func(t *testing.T) {
			a := newAPIWith(t, apiSettings{s3: backend == "s3"})
			tok := a.register("t@example.com", "teacher").AccessToken
			first := pdftest.Generate(1, func(int) string { return "Alphamarker: keep the fingers curved over the keys." })
			second := pdftest.Generate(1, func(int) string { return "Omegamarker: this text came after processing." })
			d := a.createDocument(tok, map[string]any{"title": "Method", "source_type": "pdf", "is_public": false})
			up := projectWithUpload{Upload: *d.Upload}
			for _, body := range [][]byte{second, first} { // replaced before processing
				if st := a.upload(up, body); st != 200 {
					t.Fatalf("PUT: %d", st)
				}
			}
			a.process(tok, d.Document.ID)
			if st := a.waitDocument(tok, d.Document.ID); st.Status != "completed" {
				t.Fatalf("first processing: %+v", st)
			}
			text := func() string {
				var b strings.Builder
				for _, c := range a.chunks(d.Document.ID) {
					b.WriteString(c.Text)
				}
				return b.String()
			}
			if got := text(); !strings.Contains(got, "Alphamarker") || strings.Contains(got, "Omegamarker") {
				t.Fatalf("first processing read %q", got)
			}

			st := a.upload(up, second)
			t.Logf("PUT to the upload URL after processing answered %d", st)
			a.process(tok, d.Document.ID)
			if st := a.waitDocument(tok, d.Document.ID); st.Status != "completed" {
				t.Fatalf("reprocessing: %+v", st)
			}
			if got := text(); !strings.Contains(got, "Alphamarker") || strings.Contains(got, "Omegamarker") {
				t.Errorf("reprocessing read %q, want the processed file's text", got)
			}

			a.mustStatus(a.call("DELETE", "/api/knowledge/"+d.Document.ID.String(), tok, nil), 204)
			a.waitObjects(0)
			a.checkLateUploadCleaned(*d.Upload)
		})
	}
}

// checkLateUploadCleaned PUTs to an upload URL that is still valid after
// its object was deleted, and wants the deletion scheduled for the URL's
// expiry (brought forward here) to remove what it left.
func (a *testAPI) checkLateUploadCleaned(up blob.Upload) {
	a.t.Helper()
	if st := a.uploadAs(up, pdftest.Pages(1)); st != 200 {
		a.t.Fatalf("late PUT: %d", st)
	}
	a.waitObjects(1)
	tag, err := a.db.Pool.Exec(t0(), `UPDATE jobs SET run_at = now() WHERE kind = 'blob.delete' AND status = 'queued' AND run_at > now() + interval '10 minutes'`)
	if err != nil || tag.RowsAffected() != 1 {
		a.t.Fatalf("the late-upload deletion: %v, %d scheduled", err, tag.RowsAffected())
	}
	a.waitObjects(0)
}

// A project confirmed before uploads were sealed serves its upload key; if
// that object changes, the node and both edges (the Go edge, the Worker)
// refuse to stream it rather than send other bytes under the confirmed
// size and ETag.
func TestStreamRefusesChangedObject(t *testing.T) {
	a := newAPI(t)
	edgeURL := a.startEdge()
	teacher := a.register("t@example.com", "teacher")
	id := uuid.New()
	key := fmt.Sprintf("projects/%s/%s.pdf", id, uuid.New())
	up, err := a.blob.PresignPut(t0(), key, pdfContentType, 1<<20, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	good := pdftest.Pages(2)
	if st := a.uploadAs(up, good); st != 200 {
		t.Fatalf("PUT: %d", st)
	}
	info, err := a.blob.Stat(t0(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.db.Pool.Exec(t0(), `INSERT INTO projects (id, owner_id, title, filename, object_key, status, file_size_bytes, page_count, etag)
		VALUES ($1, $2, 'Legacy', 'legacy.pdf', $3, 'ready', $4, 2, $5)`, id, teacher.User.ID, key, info.Size, info.ETag); err != nil {
		t.Fatal(err)
	}
	tok := teacher.AccessToken
	a.checkServed(t, a.url, tok, id.String(), good, info.ETag)
	if st := a.uploadAs(up, bytes.Repeat([]byte("<html>"), 400)); st != 200 {
		t.Fatalf("second PUT: %d", st)
	}
	workerURL := a.startEdgeKind("worker", a.url) // its local R2 filled from the store: the changed object
	for base, want := range map[string]int{a.url: 500, edgeURL: 502, workerURL: 502} {
		for _, rng := range []string{"", "bytes=0-9"} {
			r := a.callAt(base, "GET", "/api/projects/"+id.String()+"/stream", tok, nil, "Range", rng)
			if r.status != want || bytes.Contains(r.body, []byte("<html>")) {
				t.Errorf("%s stream (Range %q) of a changed object: %d %.60q", base, rng, r.status, r.body)
			}
		}
	}
}

// Racing confirms of one upload: every one answers the same ready project
// (one copy wins, the others' copies are deleted), and one object is left.
func TestConcurrentConfirms(t *testing.T) {
	for _, backend := range []string{"local", "s3"} {
		t.Run(backend, func(t *testing.T) {
			a := newAPIWith(t, apiSettings{s3: backend == "s3"})
			tok := a.register("t@example.com", "teacher").AccessToken
			pu := a.newProject(tok, "Race")
			if st := a.upload(pu, pdftest.Pages(2)); st != 200 {
				t.Fatalf("PUT: %d", st)
			}
			const n = 6
			results := make(chan response, n)
			for range n {
				go func() {
					results <- a.call("POST", "/api/projects/"+pu.Project.ID.String()+"/confirm", tok, nil)
				}()
			}
			var key string
			for range n {
				r := <-results
				var p projectResponse
				if r.status != 200 {
					t.Errorf("confirm: %d %s", r.status, r.body)
					continue
				}
				r.decode(t, &p)
				var raw map[string]any
				r.decode(t, &raw)
				_, etag := raw["etag"]
				_, objectKey := raw["object_key"]
				if p.Status != store.StatusReady || etag || objectKey {
					t.Errorf("confirmed %s", r.body)
				}
			}
			p, err := a.store.ProjectByID(t0(), pu.Project.OwnerID, pu.Project.ID)
			if err != nil {
				t.Fatal(err)
			}
			key = p.ObjectKey
			if !blob.IsSealed(key) {
				t.Errorf("serves %s, not a sealed key", key)
			}
			a.waitObjects(1)
			if _, err := a.blob.Stat(t0(), key); err != nil {
				t.Errorf("the recorded object: %v", err)
			}
		})
	}
}
