package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/rag"
)

// blobFix is what to check when the object store fails.
const blobFix = "check SOSTENUTO_S3_ENDPOINT, _BUCKET, _REGION and the keys (the bucket must exist, or SOSTENUTO_S3_CREATE_BUCKET=true), or DATA_DIR's permissions for the local store"

// blobStore writes, reads back, presigns (and, on S3, downloads through
// the presigned URL), then deletes a small object.
func (d *doctor) blobStore(ctx context.Context) checkResult {
	c := &d.cfg.serve
	st, err := c.blob.store(ctx, c.db.dataDir, c.listen)
	if err != nil {
		return fail("blob store", err, blobFix)
	}
	rnd := make([]byte, 8)
	rand.Read(rnd) //nolint:errcheck // never fails
	key := "doctor/" + hex.EncodeToString(rnd)
	body := []byte("sostenuto doctor " + key)
	if err := st.Put(ctx, key, "text/plain", bytes.NewReader(body), int64(len(body))); err != nil {
		return fail("blob store", fmt.Errorf("write: %w", err), blobFix)
	}
	r := d.blobRoundTrip(ctx, st, key, body)
	if err := st.Delete(ctx, key); err != nil && r.status == "ok" {
		return fail("blob store", fmt.Errorf("delete: %w", err), "the key needs delete rights on the bucket")
	}
	return r
}

// blobRoundTrip reads key back and checks its presigned download.
func (d *doctor) blobRoundTrip(ctx context.Context, st blob.Store, key string, body []byte) checkResult {
	rc, _, err := st.Open(ctx, key, nil)
	if err != nil {
		return fail("blob store", fmt.Errorf("read back: %w", err), blobFix)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, body) {
		return fail("blob store", fmt.Errorf("read back %d bytes, not the %d written (%v)", len(got), len(body), err), blobFix)
	}
	dl, err := st.PresignGet(ctx, key, "doctor.txt", "text/plain", time.Minute)
	if err != nil {
		return fail("blob store", fmt.Errorf("presign: %w", err), blobFix)
	}
	if d.cfg.serve.blob.backend != "s3" {
		return pass("blob store", "local: write, read, presign, delete ok (presigned URLs are served by the node at "+strings.SplitN(dl.URL, "/api/", 2)[0]+")")
	}
	if err := fetchEqual(ctx, dl.URL, body); err != nil {
		return fail("blob store", fmt.Errorf("presigned download: %w", err),
			"check SOSTENUTO_S3_REGION, this machine's clock, and that the endpoint is the URL clients reach")
	}
	return pass("blob store", "s3: write, read, presigned download, delete ok")
}

// fetchEqual GETs url and compares its body with want.
func fetchEqual(ctx context.Context, url string, want []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
		return fmt.Errorf("status %d, %d bytes", resp.StatusCode, len(got))
	}
	return nil
}

// raftPeers dials each peer's Raft address with this node's certificate.
func (d *doctor) raftPeers(ctx context.Context) checkResult {
	peers := hostList(d.cfg.peersRaft)
	if len(peers) == 0 {
		return skip("raft peers", "none given (--doctor-raft-peers host:port,...)")
	}
	if !d.cfg.serve.indexEnabled || (d.raftTLS == nil && !d.cfg.serve.raftInsecure) {
		return skip("raft peers", "needs a valid Raft configuration")
	}
	var bad []string
	for _, p := range peers {
		if err := d.dialPeer(ctx, p); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if len(bad) > 0 {
		return fail("raft peers", errors.New(strings.Join(bad, "; ")),
			"open the Raft port between the nodes; give every node a certificate of the same CA naming its Raft address (`sostenuto cluster certs`, docs/CLUSTER.md)")
	}
	return pass("raft peers", fmt.Sprintf("%d reachable over mutual TLS with a node certificate of the cluster", len(peers)))
}

func (d *doctor) dialPeer(ctx context.Context, addr string) error {
	if d.raftTLS != nil {
		return d.raftTLS.Verify(ctx, addr)
	}
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// embedder embeds one word with the configured embedder, once.
func (d *doctor) embedder(ctx context.Context) checkResult {
	ic := d.cfg.serve.ingest
	ic.embedTimeout = d.cfg.timeout
	e, err := ic.embedder()
	if err != nil {
		return fail("embedder", err, "correct the SOSTENUTO_EMBED_* settings")
	}
	switch x := e.(type) {
	case *embed.OpenAI:
		x.Retry.Attempts = 1
	case *embed.WorkersAI:
		x.Retry.Attempts = 1
	default:
		return pass("embedder", e.Model()+" (built in, nothing to reach)")
	}
	vs, err := e.Embed(ctx, []string{"piano"})
	if err != nil {
		return fail("embedder", err, "check SOSTENUTO_EMBED_URL, _MODEL and _API_KEY, and that this machine reaches the provider")
	}
	if len(vs) != 1 || len(vs[0]) != 768 {
		return fail("embedder", fmt.Errorf("%s returned %d vectors of %d dimensions", e.Model(), len(vs), dims(vs)), "use a 768-dimension model (or SOSTENUTO_EMBED_DIMENSIONS=768)")
	}
	return pass("embedder", e.Model()+" answered: 768 dimensions")
}

func dims(vs [][]float32) int {
	if len(vs) == 0 {
		return 0
	}
	return len(vs[0])
}

// llm asks the configured hosted model one tiny question, once.
func (d *doctor) llm(ctx context.Context) checkResult {
	lc := d.cfg.serve.llm
	if lc.provider == "extractive" {
		return pass("llm", "extractive (built in, nothing to reach)")
	}
	x, err := rag.NewExtractive()
	if err != nil {
		return fail("llm", err, "")
	}
	chat, err := lc.chat(x)
	if err != nil {
		return fail("llm", err, "correct the SOSTENUTO_LLM_* settings")
	}
	chat.Timeout, chat.Attempts = d.cfg.timeout, 1
	req := rag.Request{Question: "What is a scale?", Passages: []rag.Passage{{N: 1, Title: "Scales", Text: "A scale is a series of notes in order of pitch."}}}
	a, err := chat.Answer(ctx, req, func(string) error { return nil })
	if err != nil {
		return fail("llm", err, "check SOSTENUTO_LLM_URL, _MODEL and _API_KEY, and that this machine reaches the provider")
	}
	return pass("llm", fmt.Sprintf("%s answered (%d characters)", chat.ModelName, len(a.Content)))
}

// clockSkew compares each peer's HTTP Date with this machine's clock.
func (d *doctor) clockSkew(ctx context.Context) checkResult {
	urls := hostList(d.cfg.peersHTTP)
	if len(urls) == 0 && d.cfg.serve.join != "" {
		urls = []string{d.cfg.serve.join}
	}
	if len(urls) == 0 {
		return skip("clock skew", "no peers given (--doctor-peer-urls http://node:8080,...)")
	}
	var worst time.Duration
	var bad []string
	for _, u := range urls {
		skew, err := peerSkew(ctx, strings.TrimSuffix(u, "/"))
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s: %v", u, err))
		case skew.Abs() > d.cfg.maxSkew:
			bad = append(bad, fmt.Sprintf("%s is %s off", u, skew.Round(100*time.Millisecond)))
		}
		worst = max(worst, skew.Abs())
	}
	if len(bad) > 0 {
		return fail("clock skew", errors.New(strings.Join(bad, "; ")), "run NTP (chrony or systemd-timesyncd) on every node")
	}
	return pass("clock skew", fmt.Sprintf("%d peers within %s (largest %s)", len(urls), d.cfg.maxSkew, worst.Round(100*time.Millisecond)))
}

// peerSkew is the peer's clock minus this one, from the Date header of
// its /api/health, against the middle of the request.
func peerSkew(ctx context.Context, base string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/health", nil)
	if err != nil {
		return 0, err
	}
	sent := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	mid := sent.Add(time.Since(sent) / 2)
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return 0, errors.New("no Date header")
	}
	// The header has whole seconds: compare with the middle of that second.
	return date.Add(500 * time.Millisecond).Sub(mid), nil
}
