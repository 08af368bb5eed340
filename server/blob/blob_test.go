package blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/blob/blobtest"
)

// stores returns both implementations, each reachable over real HTTP.
func stores(t *testing.T) map[string]blob.Store {
	t.Helper()
	vg := blobtest.Start(t)
	s3, err := blob.NewS3(vg.Config)
	if err != nil {
		t.Fatal(err)
	}
	var local *blob.Local
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var status int
		var msg string
		if r.Method == http.MethodPut {
			status, msg = local.ServePut(w, r)
		} else {
			status, msg = local.ServeGet(w, r)
		}
		if status != 0 {
			http.Error(w, msg, status)
		}
	}))
	t.Cleanup(srv.Close)
	local, err = blob.NewLocal(t.TempDir(), srv.URL, bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]blob.Store{"s3": s3, "local": local}
}

func put(t *testing.T, up blob.Upload, body []byte, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(up.Method, up.URL, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestStores(t *testing.T) {
	ctx := context.Background()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			key := "projects/11111111-1111-1111-1111-111111111111/22222222-2222-2222-2222-222222222222.pdf"
			if _, err := st.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("Stat before upload: %v", err)
			}
			up, err := st.PresignPut(ctx, key, "application/pdf", 1<<20, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if time.Until(up.ExpiresAt) > blob.MaxUploadTTL+time.Second || up.Headers["Content-Type"] != "application/pdf" {
				t.Errorf("upload %+v: TTL over 15 min or headers wrong", up)
			}
			// A PUT with another content type than signed fails.
			if resp := put(t, up, []byte("%PDF-x"), map[string]string{"Content-Type": "text/html"}); resp.StatusCode < 400 {
				t.Errorf("PUT with the wrong content type: %d", resp.StatusCode)
			}
			body := []byte("%PDF-1.4 hello, world")
			if resp := put(t, up, body, up.Headers); resp.StatusCode != 200 {
				t.Fatalf("PUT: %d", resp.StatusCode)
			}
			info, err := st.Stat(ctx, key)
			if err != nil || info.Size != int64(len(body)) || info.ETag == "" {
				t.Fatalf("Stat = %+v, %v", info, err)
			}
			rc, _, err := st.Open(ctx, key, &blob.Range{Start: 6, End: 10})
			if err != nil {
				t.Fatal(err)
			}
			part, _ := io.ReadAll(rc)
			rc.Close()
			if string(part) != ".4 he" {
				t.Errorf("range read %q", part)
			}
			dl, err := st.PresignGet(ctx, key, `Für "Elise" ö.pdf`, "application/pdf", time.Hour)
			if err != nil || time.Until(dl.ExpiresAt) > blob.MaxDownloadTTL+time.Second {
				t.Fatalf("PresignGet = %+v, %v", dl, err)
			}
			resp, err := http.Get(dl.URL)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cd := resp.Header.Get("Content-Disposition")
			if resp.StatusCode != 200 || !bytes.Equal(got, body) || !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, "filename*=UTF-8''F%C3%BCr%20%22Elise%22%20%C3%B6.pdf") {
				t.Errorf("download %d %q, disposition %q", resp.StatusCode, got, cd)
			}
			if err := st.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			if err := st.Delete(ctx, key); err != nil {
				t.Errorf("deleting a missing key: %v", err)
			}
			if _, err := st.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Stat after delete: %v", err)
			}
		})
	}
}

func TestLocalSignedURLs(t *testing.T) {
	ctx := context.Background()
	st := stores(t)["local"].(*blob.Local)
	key := "projects/a/b.pdf"
	up, _ := st.PresignPut(ctx, key, "application/pdf", 10, time.Minute)
	// Over the signed size limit: refused, nothing stored.
	if resp := put(t, up, bytes.Repeat([]byte("x"), 11), up.Headers); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized PUT: %d", resp.StatusCode)
	}
	if _, err := st.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("an oversized upload left an object: %v", err)
	}
	for name, u := range map[string]string{
		"tampered key":     strings.Replace(up.URL, "b.pdf", "c.pdf", 1),
		"tampered limit":   strings.Replace(up.URL, "n=10", "n=99999", 1),
		"no signature":     up.URL[:strings.Index(up.URL, "&s=")],
		"GET with PUT sig": "",
	} {
		if u == "" {
			resp, _ := http.Get(up.URL)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: %d", name, resp.StatusCode)
			}
			continue
		}
		if resp := put(t, blob.Upload{URL: u, Method: "PUT"}, []byte("x"), up.Headers); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}
	expired, _ := st.PresignPut(ctx, key, "application/pdf", 10, -time.Minute)
	if resp := put(t, expired, []byte("x"), up.Headers); resp.StatusCode != http.StatusForbidden {
		t.Errorf("expired URL: %d", resp.StatusCode)
	}
	for _, bad := range []string{"../etc/passwd", "/abs", "projects/../../x", "projects/a/..", ""} {
		if _, err := st.PresignPut(ctx, bad, "application/pdf", 1, time.Minute); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}

// Copy makes a sealed copy no upload URL reaches: a PUT to the upload key
// afterwards leaves the copy as it was. A missing source is ErrNotFound.
func TestCopySeals(t *testing.T) {
	ctx := context.Background()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			upload := "documents/11111111-1111-1111-1111-111111111111/22222222-2222-2222-2222-222222222222.pdf"
			sealed := blob.SealedKey(upload, "33333333-3333-3333-3333-333333333333")
			if sealed != "documents/11111111-1111-1111-1111-111111111111/22222222-2222-2222-2222-222222222222/33333333-3333-3333-3333-333333333333.pdf" ||
				!blob.IsSealed(sealed) || blob.IsSealed(upload) || blob.UploadKeyOf(sealed) != upload || blob.UploadKeyOf(upload) != upload {
				t.Fatalf("sealed key %q of %q", sealed, upload)
			}
			if err := st.Copy(ctx, upload, sealed); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("Copy of a missing object: %v", err)
			}
			up, err := st.PresignPut(ctx, upload, "application/pdf", 1<<20, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			first := []byte("%PDF-1.4 the accepted bytes")
			if resp := put(t, up, first, up.Headers); resp.StatusCode != 200 {
				t.Fatalf("PUT: %d", resp.StatusCode)
			}
			if err := st.Copy(ctx, upload, sealed); err != nil {
				t.Fatal(err)
			}
			before, err := st.Stat(ctx, sealed)
			if err != nil || before.Size != int64(len(first)) {
				t.Fatalf("Stat of the copy = %+v, %v", before, err)
			}
			if resp := put(t, up, []byte("<html>later bytes, longer than the first</html>"), up.Headers); resp.StatusCode != 200 {
				t.Fatalf("second PUT: %d", resp.StatusCode)
			}
			rc, info, err := st.Open(ctx, sealed, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, first) || info != before {
				t.Errorf("the copy changed: %q %+v, want %q %+v", got, info, first, before)
			}
		})
	}
}

// DeletePrefix removes a folder of keys, more than one listing page and
// the neighbours of nothing: a key beside the folder, or one whose name
// merely starts like it, stays. Both stores.
func TestDeletePrefix(t *testing.T) {
	ctx := context.Background()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			dir := "page-images/33333333-3333-3333-3333-333333333333/"
			var keys []string
			for v := range 3 {
				for p := range 400 {
					keys = append(keys, fmt.Sprintf("%sv%d/%d-256.png", dir, v, p+1))
				}
			}
			keep := []string{"page-images/33333333-3333-3333-3333-333333333333x/v0/1-256.png",
				"page-images/44444444-4444-4444-4444-444444444444/v0/1-256.png"}
			for _, k := range append(append([]string{}, keys...), keep...) {
				if err := st.Put(ctx, k, "image/png", strings.NewReader("png"), 3); err != nil {
					t.Fatal(err)
				}
			}
			for _, bad := range []string{"", "/", "page-images", "page-images/../x/", "../"} {
				if err := st.DeletePrefix(ctx, bad); err == nil {
					t.Errorf("DeletePrefix(%q) accepted", bad)
				}
			}
			if err := st.DeletePrefix(ctx, dir); err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if _, err := st.Stat(ctx, k); !errors.Is(err, blob.ErrNotFound) {
					t.Fatalf("%s after DeletePrefix: %v", k, err)
				}
			}
			for _, k := range keep {
				if _, err := st.Stat(ctx, k); err != nil {
					t.Errorf("%s is gone: %v", k, err)
				}
			}
			if err := st.DeletePrefix(ctx, dir); err != nil {
				t.Errorf("deleting an empty folder: %v", err)
			}
		})
	}
}
