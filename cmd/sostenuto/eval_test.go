package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestEvalCommand runs `sostenuto eval` end to end on a subset of CISI
// (the first 300 documents and the queries judged on them) in TREC
// format: real chunker, hash embedder, engine; one table row per mode.
func TestEvalCommand(t *testing.T) {
	dir := t.TempDir()
	src := cisiSubset(t, dir, 300)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"eval", "--docs", src.docs, "--queries", src.queries, "--qrels", src.qrels, "--k", "50"},
		nil, nil, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	row := regexp.MustCompile(`(?m)^\| (\S+)[^|]* \| (\d+) \| (0\.\d{3}) \| (0\.\d{3}) \| (0\.\d{3}) \| (0\.\d{3}) \| \S+ \| \S+ \|$`)
	rows := row.FindAllStringSubmatch(out.String(), -1)
	if len(rows) != 5 {
		t.Fatalf("%d mode rows, want 5:\n%s", len(rows), out.String())
	}
	for _, r := range rows {
		if r[2] == "0" || r[3] == "0.000" {
			t.Errorf("mode %s: %s queries, MAP %s", r[1], r[2], r[3])
		}
	}
	if !strings.Contains(out.String(), "hybrid (default: convex minmax v=0.02 b=0.98)") {
		t.Errorf("the default fusion is not named:\n%s", out.String())
	}
	if code := run(context.Background(), []string{"eval", "--docs", src.docs}, nil, nil, &out, &errOut); code != 2 {
		t.Errorf("without queries: exit %d, want 2", code)
	}
}

// TestEvalCommandRerank runs `sostenuto eval` with a reranker configured
// (a local server speaking Cohere's /rerank, scoring by shared words):
// hybrid+rerank joins the table, and the server hears exactly one request
// per judged query, of at most --rerank-top-n passages.
func TestEvalCommandRerank(t *testing.T) {
	src := cisiSubset(t, t.TempDir(), 300)
	var calls, tooMany atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var body struct {
			Query     string   `json:"query"`
			Documents []string `json:"documents"`
		}
		if r.URL.Path != "/rerank" || r.Header.Get("Authorization") != "Bearer k" || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, `{"message":"bad request"}`, http.StatusBadRequest)
			return
		}
		if len(body.Documents) > 20 {
			tooMany.Add(1)
		}
		type result struct {
			Index int     `json:"index"`
			Score float64 `json:"relevance_score"`
		}
		res := []result{}
		for i, d := range body.Documents {
			res = append(res, result{i, sharedWords(body.Query, d)})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": "x", "results": res}) //nolint:errcheck,errchkjson // test server
	}))
	t.Cleanup(srv.Close)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"eval", "--docs", src.docs, "--queries", src.queries, "--qrels", src.qrels, "--k", "50",
		"--rerank-provider", "cohere", "--rerank-url", srv.URL, "--rerank-api-key", "k", "--rerank-model", "m", "--rerank-top-n", "20", "--rerank-timeout", "30s"},
		nil, nil, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	row := regexp.MustCompile(`(?m)^\| (\S+)[^|]* \| (\d+) \| (0\.\d{3}) \| (0\.\d{3}) \| (0\.\d{3}) \| (0\.\d{3}) \| \S+ \| \S+ \|$`)
	rows := row.FindAllStringSubmatch(out.String(), -1)
	if len(rows) != 6 || rows[5][1] != "hybrid+rerank" {
		t.Fatalf("%d mode rows, want 6 ending with hybrid+rerank:\n%s", len(rows), out.String())
	}
	queries, _ := strconv.Atoi(rows[5][2])
	if queries == 0 || rows[5][3] == "0.000" || calls.Load() != int64(queries) || tooMany.Load() != 0 {
		t.Errorf("hybrid+rerank: %s queries, MAP %s; %d requests (want one per query), %d over top-n", rows[5][2], rows[5][3], calls.Load(), tooMany.Load())
	}
	t.Logf("\n%s", out.String())
}

// sharedWords scores a passage by the query's distinct words it holds.
func sharedWords(query, passage string) float64 {
	has := map[string]bool{}
	for _, w := range strings.Fields(strings.ToLower(passage)) {
		has[w] = true
	}
	n := 0.0
	seen := map[string]bool{}
	for _, w := range strings.Fields(strings.ToLower(query)) {
		if len(w) > 3 && has[w] && !seen[w] {
			seen[w] = true
			n++
		}
	}
	return n
}

type subset struct{ docs, queries, qrels string }

// cisiSubset writes the first n CISI documents as a TREC file, the
// queries judged on them as id<TAB>text lines, and their qrels.
func cisiSubset(t *testing.T, dir string, n int) subset {
	t.Helper()
	cisi := cisiDirFor(t)
	all, _ := os.ReadFile(filepath.Join(cisi, "CISI.ALL"))
	var docs strings.Builder
	kept := map[string]bool{}
	for _, rec := range strings.Split(string(all), "\n.I ")[:n] {
		id, rest, _ := strings.Cut(strings.TrimPrefix(rec, ".I "), "\n")
		id = strings.TrimSpace(id)
		_, text, _ := strings.Cut(rest, ".W\n")
		text, _, _ = strings.Cut(text, "\n.X")
		kept[id] = true
		fmt.Fprintf(&docs, "<DOC>\n<DOCNO>%s</DOCNO>\n<TEXT>\n%s\n</TEXT>\n</DOC>\n", id, text)
	}
	rel, _ := os.ReadFile(filepath.Join(cisi, "CISI.REL"))
	var qrels strings.Builder
	judged := map[string]bool{}
	for _, line := range strings.Split(string(rel), "\n") {
		if fs := strings.Fields(line); len(fs) == 4 && kept[fs[1]] {
			fmt.Fprintf(&qrels, "%s 0 %s 1\n", fs[0], fs[1])
			judged[fs[0]] = true
		}
	}
	qry, _ := os.ReadFile(filepath.Join(cisi, "CISI.QRY"))
	var queries strings.Builder
	for _, rec := range strings.Split(string(qry), "\n.I ") {
		id, rest, _ := strings.Cut(strings.TrimPrefix(rec, ".I "), "\n")
		if _, text, ok := strings.Cut(rest, ".W\n"); ok && judged[strings.TrimSpace(id)] {
			text, _, _ = strings.Cut(text, "\n.")
			fmt.Fprintf(&queries, "%s\t%s\n", strings.TrimSpace(id), strings.Join(strings.Fields(text), " "))
		}
	}
	s := subset{filepath.Join(dir, "docs.trec"), filepath.Join(dir, "queries.tsv"), filepath.Join(dir, "qrels")}
	for p, body := range map[string]string{s.docs: docs.String(), s.queries: queries.String(), s.qrels: qrels.String()} {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// cisiDirFor finds ../shared/datasets/cisi above the working directory
// (or SOSTENUTO_CISI_DIR, or /work/shared/datasets/cisi); it fails without.
func cisiDirFor(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("SOSTENUTO_CISI_DIR"); d != "" {
		return d
	}
	for dir, _ := os.Getwd(); filepath.Dir(dir) != dir; dir = filepath.Dir(dir) {
		if p := filepath.Join(dir, "..", "shared", "datasets", "cisi"); fileExists(filepath.Join(p, "CISI.ALL")) {
			return p
		}
	}
	if fileExists("/work/shared/datasets/cisi/CISI.ALL") {
		return "/work/shared/datasets/cisi"
	}
	t.Fatal("the CISI collection (../shared/datasets/cisi) is missing: set SOSTENUTO_CISI_DIR")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
