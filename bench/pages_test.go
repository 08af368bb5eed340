package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/blob/blobtest"
	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// BenchmarkPageImages measures what a project's page image costs through
// the HTTP API of one node (the real binary, its sandboxed renderer):
// GET /api/projects/{id}/pages/{n}/image at widths 256 and 1024, first
// (drawn by pdftoppm in the child, then stored) and cached (read from the
// store), plus a 304 revalidation; local store and versitygw. The PDF is
// 12 pages of engraved-looking music: 12 staves of 5 lines, 36 bar lines,
// 156 note heads (Bézier ellipses) with stems, and a title, per page.
//
//	SOSTENUTO_TEST_DATABASE_URL_FILE=$PWD/.data/test/database_url \
//	  go test ./bench -run '^$' -bench PageImages -benchtime 1x
func BenchmarkPageImages(b *testing.B) {
	for b.Loop() {
		pageImagesBench(b)
	}
}

func pageImagesBench(b *testing.B) {
	bin := build(b, "../cmd/sostenuto")
	const pages = 12
	pdf := musicPDF(pages)
	fmt.Printf("\npage images (one node, %d-page PDF of %d KiB; median of %d pages, cached: of %d requests)\n", pages, len(pdf)>>10, pages, 3*pages)
	fmt.Printf("%-10s %6s %12s %12s %12s %10s\n", "store", "width", "first", "cached", "304", "PNG bytes")
	for _, store := range []string{"local", "s3"} {
		db := pgtest.NewEmptyDB(b, "")
		dataDir := b.TempDir()
		migrate := exec.Command(bin, "migrate")
		migrate.Env = append(cleanEnv(), "SOSTENUTO_DATABASE_URL="+db.URL, "SOSTENUTO_DATA_DIR="+dataDir)
		if out, err := migrate.CombinedOutput(); err != nil {
			b.Fatalf("migrate: %v\n%s", err, out)
		}
		env := []string{}
		if store == "s3" {
			s3 := blobtest.Start(b)
			env = []string{"SOSTENUTO_BLOB_BACKEND=s3", "SOSTENUTO_S3_ENDPOINT=" + s3.Config.Endpoint, "SOSTENUTO_S3_REGION=" + s3.Config.Region,
				"SOSTENUTO_S3_BUCKET=" + s3.Config.Bucket, "SOSTENUTO_S3_ACCESS_KEY_ID=" + s3.Config.AccessKeyID,
				"SOSTENUTO_S3_SECRET_ACCESS_KEY=" + s3.Config.SecretAccessKey, "SOSTENUTO_S3_PATH_STYLE=true"}
		}
		base, stop := startNode(b, bin, db.URL, dataDir, env...)
		tok, id := readyMusicProject(b, base, pdf)
		for _, width := range []int{256, 1024} {
			first, cached, revalidated, size := measurePageImages(b, base, tok, id, pages, width)
			fmt.Printf("%-10s %6d %12s %12s %12s %10d\n", store, width, first, cached, revalidated, size)
		}
		stop()
	}
}

// measurePageImages draws every page at width once (first), then asks for
// each three more times (cached) and once with its ETag (304).
func measurePageImages(b *testing.B, base, tok, id string, pages, width int) (first, cached, revalidated time.Duration, size int) {
	var f, c, r []time.Duration
	etags := map[int]string{}
	get := func(page int, hdr ...string) (int, http.Header, int, time.Duration) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/projects/%s/pages/%d/image?width=%d", base, id, page, width), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header, int(n), time.Since(start)
	}
	for p := 1; p <= pages; p++ {
		st, h, n, d := get(p)
		if st != 200 {
			b.Fatalf("page %d at %d: %d", p, width, st)
		}
		f, etags[p], size = append(f, d), h.Get("ETag"), size+n
	}
	for range 3 {
		for p := 1; p <= pages; p++ {
			if st, _, _, d := get(p); st == 200 {
				c = append(c, d)
			}
		}
	}
	for p := 1; p <= pages; p++ {
		if st, _, _, d := get(p, "If-None-Match", etags[p]); st == 304 {
			r = append(r, d)
		}
	}
	if len(c) != 3*pages || len(r) != pages {
		b.Fatalf("cached answers %d, 304s %d", len(c), len(r))
	}
	return pct(f, 50), pct(c, 50), pct(r, 50), size / pages
}

// readyMusicProject registers a teacher and confirms a project of pdf.
func readyMusicProject(b *testing.B, base string, pdf []byte) (token, id string) {
	call := func(method, url, tok string, body []byte, hdr map[string]string) []byte {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			b.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, out)
		}
		return out
	}
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(call("POST", base+"/api/auth/register", "", []byte(`{"email":"pages@example.com","password":"correct horse battery","display_name":"P","role":"teacher"}`), nil), &sess)
	var created struct {
		Project struct{ ID string } `json:"project"`
		Upload  struct {
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
		} `json:"upload"`
	}
	json.Unmarshal(call("POST", base+"/api/projects", sess.AccessToken, []byte(`{"title":"Etudes","filename":"etudes.pdf"}`), nil), &created)
	call("PUT", created.Upload.URL, "", pdf, created.Upload.Headers)
	call("POST", base+"/api/projects/"+created.Project.ID+"/confirm", sess.AccessToken, nil, nil)
	return sess.AccessToken, created.Project.ID
}

// musicPDF is n A4 pages that look like engraved music to a renderer:
// staves, bar lines, filled note heads with stems, a title.
func musicPDF(n int) []byte {
	objs := []string{"<< /Type /Catalog /Pages 2 0 R >>", "", "<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>"}
	var kids []string
	for p := range n {
		var c strings.Builder
		fmt.Fprintf(&c, "BT /F1 20 Tf 200 800 Td (Etude No. %d) Tj ET\n0.6 w\n", p+1)
		for s := range 12 {
			y := 760 - float64(s)*60
			for l := range 5 {
				fmt.Fprintf(&c, "50 %.1f m 545 %.1f l S\n", y-float64(l)*6, y-float64(l)*6)
			}
			for bar := range 3 {
				x := 50 + float64(bar+1)*165
				fmt.Fprintf(&c, "%.1f %.1f m %.1f %.1f l S\n", x, y, x, y-24)
			}
			for k := range 13 {
				x, ny := 70+float64(k)*36, y-24+float64((k*7+s*3+p)%9)*3
				fmt.Fprintf(&c, "%.1f %.1f m %.1f %.1f %.1f %.1f %.1f %.1f c %.1f %.1f %.1f %.1f %.1f %.1f c f\n",
					x-4, ny, x-4, ny+3.5, x+4, ny+3.5, x+4, ny, x+4, ny-3.5, x-4, ny-3.5, x-4, ny)
				fmt.Fprintf(&c, "%.1f %.1f m %.1f %.1f l S\n", x+3.6, ny, x+3.6, ny+20)
			}
		}
		kids = append(kids, fmt.Sprintf("%d 0 R", len(objs)+1))
		objs = append(objs, fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", len(objs)+2),
			fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", c.Len(), c.String()))
	}
	objs[1] = fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), n)
	return pdftest.Raw(objs...)
}
