package server

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/store"
)

// ipv6Site serves an article on IPv6 loopback only ([::1], never 127.0.0.1)
// and counts the requests it receives. IPv6 loopback exists wherever the
// tests run (here and in CI); its absence fails the test.
func ipv6Site(t *testing.T) (uint16, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("IPv6 loopback [::1] is unavailable: %v", err)
	}
	var hits atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<html><head><title>Internal</title></head><body><article><h1>Internal service</h1>
			<p>This page is served on IPv6 loopback only. If its words reach the knowledge base, the SSRF guard let a zoned literal through.</p>
			<p>Loopback-only services trust their callers: admin consoles, metrics, sidecars and metadata proxies.</p></article></body></html>`))
	})}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return uint16(ln.Addr().(*net.TCPAddr).Port), &hits
}

// docError is the failure part of GET /api/knowledge/{id}/status.
type docError struct {
	Status    string  `json:"status"`
	Error     *string `json:"error"`
	ErrorCode *string `json:"error_code"`
}

func (a *testAPI) documentError(token string, id uuid.UUID) docError {
	a.t.Helper()
	a.waitDocument(token, id)
	var e docError
	a.mustStatus(a.call("GET", "/api/knowledge/"+id.String()+"/status", token, nil), 200).decode(a.t, &e)
	return e
}

// A web source naming IPv6 loopback with a zone (http://[::1%25lo]:PORT/)
// never reaches a service listening only there: its creation is refused,
// and a document that holds such a URL anyway (stored before the guard knew
// zones) fails with blocked_address, and the service sees no request.
func TestIngestSSRFZonedIPv6(t *testing.T) {
	port, hits := ipv6Site(t)
	p := strconv.Itoa(int(port))
	// The site is real: a plain client reaches it on [::1].
	resp, err := http.Get("http://[::1]:" + p + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the IPv6 site does not answer: %v", err)
	}
	resp.Body.Close()
	hits.Store(0)

	// The site's port is allowed, so only the address decides.
	a := newAPIWith(t, apiSettings{fetchPorts: []uint16{80, 443, port}})
	teacher := a.register("t@example.com", "teacher")
	tok := teacher.AccessToken
	zoned := []string{"http://[::1%25lo]:" + p + "/", "http://[::1%251]:" + p + "/", "http://[0:0:0:0:0:0:0:1%25lo]:" + p + "/",
		"http://[::ffff:127.0.0.1%25lo]:" + p + "/", "http://[fe80::1%25eth0]/", "http://[fd00:ec2::254%25eth0]/latest/meta-data/"}
	for _, u := range zoned {
		r := a.call("POST", "/api/knowledge", tok, map[string]any{"title": "x", "source_type": "web", "source_url": u})
		if r.status != 400 {
			t.Errorf("%s: created (%d %s), want 400", u, r.status, r.body)
			continue
		}
		if pr := r.problem(t); len(pr.Errors) != 1 || pr.Errors[0].Field != "source_url" || !strings.Contains(pr.Errors[0].Message, "zone") {
			t.Errorf("%s: problem %+v does not say the zone is refused", u, pr)
		}
	}
	// Documents that hold such URLs already: processing refuses them.
	for _, u := range zoned[:2] {
		id := uuid.New()
		if _, err := a.store.CreateDocument(context.Background(), store.NewDocument{ID: id, OwnerID: teacher.User.ID,
			Title: "Stored before the fix", SourceType: store.SourceWeb, SourceURL: &u}); err != nil {
			t.Fatal(err)
		}
		a.process(tok, id)
		e := a.documentError(tok, id)
		if e.Status != "failed" || e.ErrorCode == nil || *e.ErrorCode != "blocked_address" || e.Error == nil {
			t.Errorf("%s: %+v, want failed with blocked_address", u, e)
		} else if strings.Contains(*e.Error, "::1") || strings.Contains(*e.Error, "lo]") {
			t.Errorf("%s: the error %q repeats the address", u, *e.Error)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback-only site received %d requests", n)
	}
	if chunks := a.rowCount("chunks"); chunks != 0 {
		t.Errorf("%d chunks stored from the loopback-only site", chunks)
	}
}
