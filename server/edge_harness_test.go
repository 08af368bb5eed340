package server

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/sostenuto/sostenuto/edge"
)

// startEdge runs sostenuto's edge in process in front of this node, as
// deployed: tokens checked with the node's published keys, PDFs streamed
// from the node's own blob store (local or S3) after the node's
// GET /api/projects/{id}/object, JSON answers kept per user and
// revalidated. It returns the edge's base URL.
func (a *testAPI) startEdge() string {
	a.t.Helper()
	node, err := url.Parse(a.url)
	if err != nil {
		a.t.Fatal(err)
	}
	return a.serveEdge(edge.Config{Nodes: []*url.URL{node}, Issuers: []string{"sostenuto"}, Audiences: []string{"sostenuto-api"},
		Blob: a.blob, CacheEntries: 100, HealthInterval: 100 * time.Millisecond, AuthzTTL: time.Second})
}

// serveEdge runs an edge with cfg in process until the test ends and
// returns its base URL.
func (a *testAPI) serveEdge(cfg edge.Config) string {
	a.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := edge.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		a.t.Fatal(err)
	}
	e.Start(ctx)
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }() //nolint:errcheck // no cache file to save
	srv := httptest.NewServer(e.Handler())
	a.t.Cleanup(func() { srv.Close(); cancel(); <-done })
	return srv.URL
}
