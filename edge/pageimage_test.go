package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/blob"
)

// A node that takes longer than the edge's old fixed 10 s to decide on a
// page image (it draws the page first, for up to its request timeout)
// still gets its image sent: the decision's timeout (DecisionTimeout, by
// default the upstream timeout and 10 s) covers a slow first render.
func TestPageImageSlowDecision(t *testing.T) {
	store, err := blob.NewLocal(t.TempDir(), "http://127.0.0.1", bytes.Repeat([]byte("s"), 32))
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	key := blob.PageImageKey(id.String(), "v1", 1, 1024)
	png := []byte("\x89PNG\r\n\x1a\n not really an image")
	if err := store.Put(context.Background(), key, "image/png", bytes.NewReader(png), int64(len(png))); err != nil {
		t.Fatal(err)
	}
	info, err := store.Stat(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	const draw = 11 * time.Second
	node := newFakeNode(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(draw)
		json.NewEncoder(w).Encode(object{Key: key, Size: info.Size, ETag: info.ETag, ContentType: "image/png", //nolint:errcheck
			ContentDisposition: `inline; filename="p-page-1.png"`})
	})
	_, srv := newEdge(t, func(c *Config) { c.Blob = store }, node)
	start := time.Now()
	resp := get(t, "GET", srv.URL+"/api/projects/"+id.String()+"/pages/1/image", token(t, uuid.NewString(), nil), nil)
	body := read(t, resp)
	if resp.StatusCode != 200 || body != string(png) {
		t.Fatalf("after %v: %d %q", time.Since(start).Round(time.Millisecond), resp.StatusCode, body)
	}
	if p := node.last(); p == nil || p.URL.Path != "/api/projects/"+id.String()+"/pages/1/image/object" {
		t.Errorf("the node was asked %v", p)
	}
}
