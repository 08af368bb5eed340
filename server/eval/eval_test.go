package eval

import (
	"bufio"
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/embed"
	"github.com/sostenuto/sostenuto/server/ingest"
)

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReaders(t *testing.T) {
	docs, err := ReadDocs(write(t, "d.trec", "<DOC>\n<DOCNO> D1 </DOCNO>\n<TITLE>Pedals</TITLE>\n<TEXT>\nUse the damper.\n</TEXT>\n</DOC>\n<DOC><DOCNO>D2</DOCNO><TEXT>Scales.</TEXT></DOC>"))
	if err != nil || len(docs) != 2 || docs[0] != (Doc{ID: "D1", Title: "Pedals", Text: "Use the damper."}) || docs[1].ID != "D2" {
		t.Errorf("TREC documents %+v %v", docs, err)
	}
	docs, err = ReadDocs(write(t, "d.all", ".I 1\n.T\nA title\n.A\nSomeone\n.W\nThe text\nwraps.\n.I 2\n.W\nMore.\n"))
	if err != nil || len(docs) != 2 || docs[0] != (Doc{ID: "1", Title: "A title", Text: "The text\nwraps."}) {
		t.Errorf("SMART documents %+v %v", docs, err)
	}
	qs, err := ReadQueries(write(t, "topics", "<top>\n<num> Number: 51\n<title> Topic: pedal  technique\n<desc> Description:\nHow to pedal.\n</top>\n"))
	if err != nil || len(qs) != 1 || qs[0] != (Query{ID: "51", Text: "pedal technique"}) {
		t.Errorf("topics %+v %v", qs, err)
	}
	qs, err = ReadQueries(write(t, "q.tsv", "# comment\nq1\twhen to pedal\nq2\tscales\n"))
	if err != nil || len(qs) != 2 || qs[1] != (Query{ID: "q2", Text: "scales"}) {
		t.Errorf("tabbed %+v %v", qs, err)
	}
	if _, err := ReadQueries(write(t, "bad", "no tab here\n")); err == nil {
		t.Error("a line without a tab was accepted")
	}
	qrels, err := ReadQrels(write(t, "qrels", "q1 0 D1 2\nq1 0 D2 0\n"))
	if err != nil || qrels["q1"]["D1"] != 2 || qrels.Relevant("q1") != 1 {
		t.Errorf("TREC qrels %+v %v", qrels, err)
	}
	qrels, err = ReadQrels(write(t, "CISI.REL", "     1     28\t0\t0.000000\n"))
	if err != nil || qrels["1"]["28"] != 1 {
		t.Errorf("CISI qrels %+v %v", qrels, err)
	}
}

func TestScore(t *testing.T) {
	judged := map[string]int{"a": 1, "b": 2, "z": 1} // z is never retrieved
	s := Score([]string{"x", "a", "y", "b"}, judged)
	// AP = (1/2 + 2/4) / 3; RR = 1/2; recall@50 = 2/3.
	if math.Abs(s.AP-1.0/3) > 1e-12 || s.RR != 0.5 || math.Abs(s.Recall50-2.0/3) > 1e-12 {
		t.Errorf("%+v", s)
	}
	dcg := 1/math.Log2(3) + 2/math.Log2(5)
	ideal := 2/math.Log2(2) + 1/math.Log2(3) + 1/math.Log2(4)
	if math.Abs(s.NDCG10-dcg/ideal) > 1e-12 {
		t.Errorf("nDCG@10 %v, want %v", s.NDCG10, dcg/ideal)
	}
	if s := Score([]string{"a"}, map[string]int{"a": 0}); s != (Scores{}) {
		t.Errorf("no relevant document: %+v", s)
	}
}

// TestFeedbackQrels: up makes the cited documents relevant, down not,
// read page by page from a server speaking GET /api/chat/feedback.
func TestFeedbackQrels(t *testing.T) {
	pages := map[string]string{
		"": `{"items":[{"message_id":"m1","question":"When  to pedal?","answer":"…","rating":"up","comment":null,"created_at":"2026-11-30T00:00:00Z",
		       "sources":[{"n":1,"document_id":"d1","title":"Pedals"},{"n":2,"document_id":"d2"}]}],"next_cursor":"c2"}`,
		"c2": `{"items":[{"message_id":"m2","question":"Scales?","rating":"down","sources":[{"n":1,"document_id":"d3"}]},
		        {"message_id":"m3","question":"No sources","rating":"up","sources":[]}],"next_cursor":null}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/chat/feedback" || r.Header.Get("Authorization") != "Bearer tok" || r.URL.Query().Get("limit") != "100" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(pages[r.URL.Query().Get("cursor")]))
	}))
	defer srv.Close()
	items, err := FetchFeedback(context.Background(), srv.Client(), srv.URL, "tok")
	if err != nil || len(items) != 3 {
		t.Fatalf("%d items, %v", len(items), err)
	}
	qs, qrels := FeedbackJudgements(items)
	if len(qs) != 2 || qs[0] != (Query{ID: "m1", Text: "When to pedal?"}) {
		t.Errorf("queries %+v", qs)
	}
	var b strings.Builder
	w := bufio.NewWriter(&b)
	qrels.Write(w)
	if want := "m1 0 d1 1\nm1 0 d2 1\nm2 0 d3 0\n"; b.String() != want {
		t.Errorf("qrels\n%s\nwant\n%s", b.String(), want)
	}
	if _, err := FetchFeedback(context.Background(), srv.Client(), srv.URL, "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("refused: %v", err)
	}
}

// cisiDir finds the CISI collection as the benchmarks do:
// SOSTENUTO_CISI_DIR, ../shared/datasets/cisi above the working directory,
// or /work/shared/datasets/cisi. It fails, never skips, without it.
func cisiDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("SOSTENUTO_CISI_DIR"); d != "" {
		return d
	}
	dir, _ := os.Getwd()
	for ; ; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "..", "shared", "datasets", "cisi")
		if _, err := os.Stat(filepath.Join(p, "CISI.ALL")); err == nil {
			return p
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	if _, err := os.Stat("/work/shared/datasets/cisi/CISI.ALL"); err == nil {
		return "/work/shared/datasets/cisi"
	}
	t.Fatal("the CISI collection (../shared/datasets/cisi) is missing: set SOSTENUTO_CISI_DIR")
	return ""
}

// TestCISIDefaultFusionAtLeastBM25: on CISI with the built-in embedder,
// the default hybrid scores at least BM25's MAP and nDCG@10, and stays
// within 1 point of the better list; equal-weight RRF (the old default)
// does not — the measure can tell them apart. Quality, not timing.
func TestCISIDefaultFusionAtLeastBM25(t *testing.T) {
	dir := cisiDir(t)
	ctx := context.Background()
	docs, err := ReadDocs(filepath.Join(dir, "CISI.ALL"))
	if err != nil {
		t.Fatal(err)
	}
	qs, err := ReadQueries(filepath.Join(dir, "CISI.QRY"))
	if err != nil {
		t.Fatal(err)
	}
	qrels, err := ReadQrels(filepath.Join(dir, "CISI.REL"))
	if err != nil {
		t.Fatal(err)
	}
	chunker, err := ingest.NewChunker(512, 128)
	if err != nil {
		t.Fatal(err)
	}
	e, keys, err := Build(ctx, docs, chunker, embed.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	def := index.Fusion{Method: index.FusionConvex, Weights: index.Weights{Vector: 0.02, BM25: 0.98}}
	rs, err := Run(ctx, Config{Engine: e, Embedder: embed.Hash{}, Queries: qs, Qrels: qrels, Modes: Modes(def, false), DocKeys: keys})
	if err != nil {
		t.Fatal(err)
	}
	bm, vec, hybrid, rrf := rs[0], rs[1], rs[2], rs[3]
	t.Logf("bm25 %.4f/%.4f vector %.4f/%.4f default %.4f/%.4f rrf %.4f/%.4f (MAP/nDCG@10)", bm.MAP, bm.NDCG10, vec.MAP, vec.NDCG10, hybrid.MAP, hybrid.NDCG10, rrf.MAP, rrf.NDCG10)
	if bm.Queries != 76 {
		t.Errorf("%d judged queries, want 76", bm.Queries)
	}
	if hybrid.MAP < bm.MAP || hybrid.NDCG10 < bm.NDCG10 {
		t.Errorf("default hybrid %.4f/%.4f below BM25 %.4f/%.4f", hybrid.MAP, hybrid.NDCG10, bm.MAP, bm.NDCG10)
	}
	if rrf.MAP >= bm.MAP-0.01 {
		t.Errorf("equal-weight RRF %.4f within a point of BM25 %.4f: the test cannot tell the fusions apart", rrf.MAP, bm.MAP)
	}
}
