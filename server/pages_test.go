package server

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// renders reads sostenuto_page_renders_total{outcome} from /metrics.
func (a *testAPI) renders(outcome string) int {
	a.t.Helper()
	return a.metric(`sostenuto_page_renders_total{outcome="` + outcome + `"}`)
}

// metric reads one sample of /metrics by its full name and labels (0 when
// absent).
func (a *testAPI) metric(sample string) int {
	a.t.Helper()
	body := a.mustStatus(a.call("GET", "/metrics", "", nil), 200).body
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}

// pageImages lists the stored images of a project (both stores).
func (a *testAPI) pageImages(project uuid.UUID) []string {
	a.t.Helper()
	prefix := blob.PageImagePrefix(project.String())
	var keys []string
	if a.s3 != nil {
		for _, k := range a.s3.Objects() {
			if strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
		}
		return keys
	}
	filepath.Walk(filepath.Join(a.local, prefix), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, ".png") {
			keys = append(keys, p)
		}
		return nil
	})
	return keys
}

// waitPageImages waits until a project has want stored images.
func (a *testAPI) waitPageImages(project uuid.UUID, want int) {
	a.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(a.pageImages(project)) != want {
		if time.Now().After(deadline) {
			a.t.Fatalf("%d page images stored, want %d", len(a.pageImages(project)), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pngSize decodes a PNG answer's size.
func pngSize(t *testing.T, r response) (int, int) {
	t.Helper()
	if r.header.Get("Content-Type") != "image/png" {
		t.Fatalf("Content-Type %q: %.200s", r.header.Get("Content-Type"), r.body)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	return cfg.Width, cfg.Height
}

// A project's page comes back as a PNG of the asked width; the first
// request draws it, every later one (node or edge) sends the stored copy;
// the ETag revalidates (304); the edge sends the bytes from the store
// after the node's decision, never through the node; deleting the project
// deletes its images. Both stores.
func TestPageImages(t *testing.T) {
	for _, backend := range []string{"local", "s3"} {
		t.Run(backend, func(t *testing.T) {
			a := newAPIWith(t, apiSettings{s3: backend == "s3"})
			edgeURL := a.startEdge()
			tok := a.register("t@example.com", "teacher").AccessToken
			p := a.readyProject(tok, "Sonatina", 3)
			img := "/api/projects/" + p.ID.String() + "/pages/2/image"

			first := a.mustStatus(a.call("GET", img, tok, nil), 200)
			if w, h := pngSize(t, first); w != 1024 || h < 1448 || h > 1450 {
				t.Errorf("default width: %dx%d, want 1024x1449", w, h)
			}
			etag := first.header.Get("ETag")
			if etag == "" || !strings.Contains(first.header.Get("Cache-Control"), "private") {
				t.Errorf("ETag %q, Cache-Control %q", etag, first.header.Get("Cache-Control"))
			}
			again := a.mustStatus(a.call("GET", img, tok, nil), 200)
			if !bytes.Equal(again.body, first.body) || again.header.Get("ETag") != etag {
				t.Errorf("second answer differs: %d bytes, ETag %s", len(again.body), again.header.Get("ETag"))
			}
			if n := a.renders("ok"); n != 1 {
				t.Errorf("%d renders for two requests of one image, want 1", n)
			}
			if r := a.call("GET", img, tok, nil, "If-None-Match", etag); r.status != 304 || len(r.body) != 0 {
				t.Errorf("If-None-Match: %d, %d bytes", r.status, len(r.body))
			}
			small := a.mustStatus(a.call("GET", img+"?width=256", tok, nil), 200)
			if w, _ := pngSize(t, small); w != 256 || small.header.Get("ETag") == etag {
				t.Errorf("width 256: %d wide, ETag %s", w, small.header.Get("ETag"))
			}
			if n := len(a.pageImages(p.ID)); n != 2 || a.renders("ok") != 2 {
				t.Errorf("%d images stored after %d renders, want 2 and 2", n, a.renders("ok"))
			}
			a.checkEdgeImages(t, edgeURL, tok, p.ID, small)

			a.mustStatus(a.call("DELETE", "/api/projects/"+p.ID.String(), tok, nil), 204)
			a.waitPageImages(p.ID, 0)
			a.waitObjects(0)
		})
	}
}

// checkEdgeImages wants the edge to answer page images like the node, the
// bytes read from the store: a stored one without a render, a new one
// drawn by the node (its image/object route) and sent by the edge, 304
// on the ETag, 404 for a stranger; the node's image route never used.
func (a *testAPI) checkEdgeImages(t *testing.T, edgeURL, tok string, id uuid.UUID, stored response) {
	t.Helper()
	served := `http_requests_total{method="GET",route="/api/projects/{id}/pages/{n}/image",status="200"}`
	before, renders := a.metric(served), a.renders("ok")
	base := "/api/projects/" + id.String() + "/pages/"
	r := a.callAt(edgeURL, "GET", base+"2/image?width=256", tok, nil)
	if r.status != 200 || !bytes.Equal(r.body, stored.body) || r.header.Get("ETag") != stored.header.Get("ETag") ||
		r.header.Get("Content-Type") != "image/png" || r.header.Get("Cache-Control") != stored.header.Get("Cache-Control") {
		t.Errorf("edge, stored image: %d, %d bytes, ETag %s, headers %v", r.status, len(r.body), r.header.Get("ETag"), r.header)
	}
	fresh := a.callAt(edgeURL, "GET", base+"3/image?width=64", tok, nil)
	if w, _ := pngSize(t, fresh); fresh.status != 200 || w != 64 {
		t.Errorf("edge, new image: %d, %d wide", fresh.status, w)
	}
	if a.renders("ok") != renders+1 {
		t.Errorf("the edge's requests drew %d images, want 1", a.renders("ok")-renders)
	}
	if r := a.callAt(edgeURL, "GET", base+"3/image?width=64", tok, nil, "If-None-Match", fresh.header.Get("ETag")); r.status != 304 {
		t.Errorf("edge If-None-Match: %d", r.status)
	}
	stranger := a.register("stranger@example.com", "teacher").AccessToken
	if r := a.callAt(edgeURL, "GET", base+"2/image?width=256", stranger, nil); r.status != 404 {
		t.Errorf("edge, stranger: %d", r.status)
	}
	if r := a.callAt(edgeURL, "GET", base+"9/image", tok, nil); r.status != 404 {
		t.Errorf("edge, page 9 of 3: %d", r.status)
	}
	if after := a.metric(served); after != before {
		t.Errorf("the node served %d images for the edge", after-before)
	}
}

// Bad page numbers and widths answer 400 with the field, a page past the
// last 404, a project without its PDF 409, someone without view 404:
// nothing is drawn and nothing stored.
func TestPageImageRefusals(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	p := a.readyProject(tok, "Etude", 3)
	base := "/api/projects/" + p.ID.String() + "/pages/"
	for path, field := range map[string]string{
		"0/image": "page", "-1/image": "page", "x/image": "page", "1.5/image": "page", "99999999999/image": "page",
		"1/image?width=63": "width", "1/image?width=2049": "width", "1/image?width=abc": "width",
		"1/image?width=": "width", "1/image?width=1e3": "width", "1/image/object?width=0": "width",
	} {
		pr := a.mustStatus(a.call("GET", base+path, tok, nil), 400).problem(t)
		if pr.Code != CodeInvalidInput || len(pr.Errors) != 1 || pr.Errors[0].Field != field {
			t.Errorf("%s: %+v", path, pr)
		}
	}
	if pr := a.mustStatus(a.call("GET", base+"4/image", tok, nil), 404).problem(t); pr.Code != CodeNotFound {
		t.Errorf("page 4 of 3: %+v", pr)
	}
	pending := a.newProject(tok, "Pending").Project.ID.String()
	if pr := a.mustStatus(a.call("GET", "/api/projects/"+pending+"/pages/1/image", tok, nil), 409).problem(t); pr.Code != CodeConflict {
		t.Errorf("pending project: %+v", pr)
	}
	stranger := a.register("s@example.com", "student").AccessToken
	a.mustStatus(a.call("GET", base+"1/image", stranger, nil), 404)
	if n := a.renders("ok") + a.renders("failed"); n != 0 || len(a.pageImages(p.ID)) != 0 {
		t.Errorf("%d renders, %d images after refusals", n, len(a.pageImages(p.ID)))
	}
}

// storedProject makes a ready project directly in the database whose
// stored PDF is body, as a project confirmed by an older node (or bytes a
// future bug let through) would be: the renderer must cope on its own.
func (a *testAPI) storedProject(owner uuid.UUID, body []byte, pages int) uuid.UUID {
	a.t.Helper()
	id := uuid.New()
	key := fmt.Sprintf("projects/%s/%s/%s.pdf", id, uuid.New(), uuid.New())
	if err := a.blob.Put(t0(), key, pdfContentType, bytes.NewReader(body), int64(len(body))); err != nil {
		a.t.Fatal(err)
	}
	info, err := a.blob.Stat(t0(), key)
	if err != nil {
		a.t.Fatal(err)
	}
	_, err = a.db.Pool.Exec(t0(), `INSERT INTO projects (id, owner_id, title, filename, object_key, status, file_size_bytes, page_count, etag)
		VALUES ($1, $2, 'Stored', 'stored.pdf', $3, 'ready', $4, $5, $6)`, id, owner, key, info.Size, pages, info.ETag)
	if err != nil {
		a.t.Fatal(err)
	}
	return id
}

// hugePage is a one-page PDF with the given MediaBox.
func hugePage(box string) []byte {
	return pdftest.Raw("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox "+box+" /Contents 4 0 R >>",
		"<< /Length 17 >>\nstream\n0 0 m 10 10 l S\nendstream")
}

// heavyPDF is a one-page PDF that takes pdftoppm seconds to draw at 2048
// pixels (some 7 ms a stroke here: poppler strokes one path of many
// subpaths slowly).
func heavyPDF(strokes int) []byte {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	for i := range strokes {
		fmt.Fprintf(zw, "%d 0 m %d 842 l 0 %d m 595 %d l S\n", i%595, 595-i%595, i%842, 842-i%842)
	}
	zw.Close()
	return pdftest.Raw("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
		fmt.Sprintf("<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream", z.Len(), z.Bytes()))
}

// Hostile PDFs: huge page dimensions give an image of the asked width and
// a bounded height; a damaged PDF and a page slower than the wall clock
// answer 422 render_failed, store nothing, and are not tried again at
// once; the node answers on.
func TestPageImageHostile(t *testing.T) {
	a := newAPI(t)
	teacher := a.register("t@example.com", "teacher")
	tok := teacher.AccessToken
	for box, want := range map[string][2]int{"[0 0 14400 14400]": {512, 512}, "[0 0 9000000 9000000]": {512, 512}, "[0 0 3 200000]": {0, 8192}} {
		id := a.storedProject(teacher.User.ID, hugePage(box), 1)
		r := a.mustStatus(a.call("GET", "/api/projects/"+id.String()+"/pages/1/image?width=512", tok, nil), 200)
		if w, h := pngSize(t, r); (want[0] != 0 && w != want[0]) || h != want[1] {
			t.Errorf("MediaBox %s: %dx%d, want %v", box, w, h, want)
		}
	}
	good := pdftest.Pages(2)
	damaged := append(append([]byte{}, good[:len(good)/3]...), []byte("\nxref garbage\n%%EOF\n")...)
	a.server.pdf.Limits.Wall = 2 * time.Second
	for name, body := range map[string][]byte{"damaged": damaged, "too slow": heavyPDF(3000)} {
		id := a.storedProject(teacher.User.ID, body, 1)
		path := "/api/projects/" + id.String() + "/pages/1/image?width=2048"
		failed := a.renders("failed")
		start := time.Now()
		pr := a.mustStatus(a.call("GET", path, tok, nil), 422).problem(t)
		t.Logf("%s: %v: %s", name, time.Since(start).Round(time.Millisecond), pr.Detail)
		if pr.Code != CodeRenderFailed || strings.Contains(pr.Detail, "/tmp") {
			t.Errorf("%s: %+v", name, pr)
		}
		a.mustStatus(a.call("GET", path, tok, nil), 422)
		if n := a.renders("failed") - failed; n != 1 || len(a.pageImages(id)) != 0 {
			t.Errorf("%s: %d failed renders for two requests (want 1), %d images stored", name, n, len(a.pageImages(id)))
		}
	}
	a.mustStatus(a.call("GET", "/api/health", "", nil), 200)
}

// Concurrent requests for one image draw it once; all get the same bytes.
func TestPageImageRendersOnce(t *testing.T) {
	a := newAPI(t)
	tok := a.register("t@example.com", "teacher").AccessToken
	p := a.readyProject(tok, "Canon", 2)
	path := "/api/projects/" + p.ID.String() + "/pages/1/image?width=2048"
	var wg sync.WaitGroup
	answers := make([]response, 8)
	for i := range answers {
		wg.Add(1)
		go func() { defer wg.Done(); answers[i] = a.call("GET", path, tok, nil) }()
	}
	wg.Wait()
	for i, r := range answers {
		if r.status != 200 || !bytes.Equal(r.body, answers[0].body) || r.header.Get("ETag") != answers[0].header.Get("ETag") {
			t.Errorf("answer %d: %d, %d bytes, ETag %s", i, r.status, len(r.body), r.header.Get("ETag"))
		}
	}
	if n := a.renders("ok"); n != 1 {
		t.Errorf("%d renders for %d concurrent requests, want 1", n, len(answers))
	}
}

// A project deleted while one of its pages is being drawn keeps no image:
// the image stored after the folder's deletion goes too.
func TestPageImageOfDeletedProject(t *testing.T) {
	a := newAPI(t)
	teacher := a.register("t@example.com", "teacher")
	id := a.storedProject(teacher.User.ID, heavyPDF(300), 1)
	done := make(chan response)
	go func() {
		done <- a.call("GET", "/api/projects/"+id.String()+"/pages/1/image?width=2048", teacher.AccessToken, nil)
	}()
	time.Sleep(300 * time.Millisecond)
	a.mustStatus(a.call("DELETE", "/api/projects/"+id.String(), teacher.AccessToken, nil), 204)
	r := <-done
	t.Logf("the drawing request answered %d", r.status)
	time.Sleep(500 * time.Millisecond) // the folder's deletion job has run by now
	if n := a.renders("ok"); n != 1 {
		t.Fatalf("%d renders; the page was not drawn during the deletion", n)
	}
	a.waitPageImages(id, 0)
}

// A render that waited for a slot gets its whole deadline once it holds
// one: with every slot busy for nearly the request timeout, the page is
// still drawn and stored (the request itself may answer 503 meanwhile),
// and the next request has it; no failure is remembered.
func TestPageImageDeadlineAfterSlot(t *testing.T) {
	a := newAPIWith(t, apiSettings{limits: Limits{RequestTimeout: 2 * time.Second}})
	teacher := a.register("t@example.com", "teacher")
	id := a.storedProject(teacher.User.ID, pdftest.Pages(1), 1)
	path := "/api/projects/" + id.String() + "/pages/1/image"
	for range cap(a.server.pages.slots) {
		a.server.pages.slots <- struct{}{}
	}
	time.AfterFunc(1900*time.Millisecond, func() {
		for range cap(a.server.pages.slots) {
			<-a.server.pages.slots
		}
	})
	r := a.call("GET", path, teacher.AccessToken, nil)
	t.Logf("the request that waited for a slot answered %d", r.status)
	if r.status != 200 && r.status != 503 {
		t.Errorf("answered %d: %s", r.status, r.body)
	}
	a.waitPageImages(id, 1)
	a.mustStatus(a.call("GET", path, teacher.AccessToken, nil), 200)
	if n := a.renders("failed"); n != 0 {
		t.Errorf("%d failed renders", n)
	}
}

// A drawing stopped by its own deadline (not the renderer's wall clock)
// answers 503 with Retry-After, as problem+json, and is not remembered:
// the next request draws again instead of answering a cached 422.
func TestPageImageDeadlineNotCached(t *testing.T) {
	a := newAPIWith(t, apiSettings{limits: Limits{RequestTimeout: time.Second}})
	a.server.pdf.Limits.Wall = 30 * time.Second
	teacher := a.register("t@example.com", "teacher")
	id := a.storedProject(teacher.User.ID, heavyPDF(1000), 1)
	path := "/api/projects/" + id.String() + "/pages/1/image?width=2048"
	for attempt := 1; attempt <= 2; attempt++ {
		r := a.call("GET", path, teacher.AccessToken, nil)
		if r.status != 503 || r.header.Get("Retry-After") == "" || r.header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("attempt %d: %d, Retry-After %q, %s: %s", attempt, r.status, r.header.Get("Retry-After"), r.header.Get("Content-Type"), r.body)
		}
		if pr := r.problem(t); pr.Code != CodeUnavailable {
			t.Errorf("attempt %d: %+v", attempt, pr)
		}
		deadline := time.Now().Add(10 * time.Second)
		for a.renders("failed") < attempt && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if n := a.renders("failed"); n != attempt {
			t.Fatalf("after attempt %d: %d stopped renders, want %d (each request draws anew)", attempt, n, attempt)
		}
	}
}

// A page that fails at one width is not refused at another: a page too
// slow to draw 2048 pixels wide is drawn 64 wide.
func TestPageImageFailureByWidth(t *testing.T) {
	a := newAPI(t)
	a.server.pdf.Limits.Wall = 3 * time.Second
	teacher := a.register("t@example.com", "teacher")
	id := a.storedProject(teacher.User.ID, heavyPDF(2000), 1)
	path := "/api/projects/" + id.String() + "/pages/1/image?width="
	if pr := a.mustStatus(a.call("GET", path+"2048", teacher.AccessToken, nil), 422).problem(t); pr.Code != CodeRenderFailed {
		t.Fatalf("width 2048: %+v", pr)
	}
	r := a.mustStatus(a.call("GET", path+"64", teacher.AccessToken, nil), 200)
	if w, _ := pngSize(t, r); w != 64 {
		t.Errorf("width 64: %d wide", w)
	}
	a.mustStatus(a.call("GET", path+"2048", teacher.AccessToken, nil), 422)
}
