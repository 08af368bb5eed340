// Package eval measures retrieval quality on judged questions: it reads a
// TREC-style collection (documents, queries, relevance judgements), ranks
// every query in every search mode through the real engine, and reports
// MAP, nDCG@10, recall@50 and MRR with latency (`sostenuto eval`). It also
// turns collected chat feedback into judgements.
package eval

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Doc is a document of a collection.
type Doc struct {
	ID    string // the id the judgements use
	Title string
	Text  string
}

// Query is a judged question.
type Query struct {
	ID   string
	Text string
}

// Qrels are the judgements: query id → document id → relevance (> 0 is
// relevant).
type Qrels map[string]map[string]int

// ReadDocs reads documents from path: a directory (one document per file,
// its id the file name without extension), a CISI/SMART file (".I id",
// ".T" title, ".W" text), or a TREC file (<DOC><DOCNO>…</DOCNO>
// [<TITLE>…</TITLE>]<TEXT>…</TEXT></DOC>).
func ReadDocs(path string) ([]Doc, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("eval: documents: %w", err)
	}
	if st.IsDir() {
		return readDir(path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("eval: documents: %w", err)
	}
	if strings.Contains(string(raw), "<DOC>") {
		return readTRECDocs(string(raw))
	}
	recs := readSMART(string(raw))
	docs := make([]Doc, 0, len(recs))
	for _, r := range recs {
		docs = append(docs, Doc{ID: r.id, Title: r.fields["T"], Text: r.fields["W"]})
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("eval: %s: no documents (expected .I records or <DOC> elements)", path)
	}
	return docs, nil
}

func readDir(dir string) ([]Doc, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("eval: documents: %w", err)
	}
	var docs []Doc
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("eval: documents: %w", err)
		}
		id := strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
		docs = append(docs, Doc{ID: id, Title: id, Text: string(raw)})
	}
	return docs, nil
}

var (
	docRE   = regexp.MustCompile(`(?s)<DOC>(.*?)</DOC>`)
	fieldRE = func(tag string) *regexp.Regexp { return regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`) }
	docnoRE = fieldRE("DOCNO")
	titleRE = fieldRE("TITLE")
	textRE  = fieldRE("TEXT")
)

func readTRECDocs(raw string) ([]Doc, error) {
	var docs []Doc
	for _, m := range docRE.FindAllStringSubmatch(raw, -1) {
		id := strings.TrimSpace(first(docnoRE, m[1]))
		if id == "" {
			return nil, fmt.Errorf("eval: a <DOC> without <DOCNO>")
		}
		docs = append(docs, Doc{ID: id, Title: strings.TrimSpace(first(titleRE, m[1])), Text: strings.TrimSpace(first(textRE, m[1]))})
	}
	return docs, nil
}

func first(re *regexp.Regexp, s string) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

// smartRecord is a record of the SMART format.
type smartRecord struct {
	id     string
	fields map[string]string
}

// readSMART parses the SMART format: ".I n" starts a record, ".X" lines
// start fields whose text follows.
func readSMART(raw string) []smartRecord {
	var recs []smartRecord
	var field string
	var b strings.Builder
	flush := func() {
		if len(recs) > 0 && field != "" {
			recs[len(recs)-1].fields[field] = strings.TrimSpace(b.String())
		}
		b.Reset()
	}
	for _, line := range strings.Split(raw, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, ".I "):
			flush()
			recs = append(recs, smartRecord{id: strings.TrimSpace(line[3:]), fields: map[string]string{}})
			field = ""
		case len(line) == 2 && line[0] == '.':
			flush()
			field = line[1:]
		default:
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	flush()
	return recs
}

var (
	topRE   = regexp.MustCompile(`(?s)<top>(.*?)</top>`)
	numRE   = regexp.MustCompile(`(?s)<num>\s*(?:Number:)?\s*(\S+)`)
	tTitle  = regexp.MustCompile(`(?s)<title>\s*(?:Topic:)?(.*?)(?:<|$)`)
	tDesc   = regexp.MustCompile(`(?s)<desc>\s*(?:Description:)?(.*?)(?:<|$)`)
	closeRE = regexp.MustCompile(`</\w+>`)
)

// ReadQueries reads queries from path: TREC topics (<top><num>…<title>…,
// the title searched, else the description), a CISI/SMART file (.W text
// and .T title), or lines "id<TAB>text".
func ReadQueries(path string) ([]Query, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("eval: queries: %w", err)
	}
	s := string(raw)
	var qs []Query
	switch {
	case strings.Contains(s, "<top>"):
		qs = readTopics(s)
	case strings.HasPrefix(strings.TrimSpace(s), ".I "):
		for _, r := range readSMART(s) {
			qs = append(qs, Query{ID: r.id, Text: strings.TrimSpace(r.fields["W"] + " " + r.fields["T"])})
		}
	default:
		qs, err = readTabbed(s)
	}
	if err == nil && len(qs) == 0 {
		err = fmt.Errorf("eval: %s: no queries", path)
	}
	return qs, err
}

func readTopics(s string) []Query {
	var qs []Query
	for _, m := range topRE.FindAllStringSubmatch(s, -1) {
		body := closeRE.ReplaceAllString(m[1], "")
		text := strings.TrimSpace(first(tTitle, body))
		if text == "" {
			text = strings.TrimSpace(first(tDesc, body))
		}
		qs = append(qs, Query{ID: first(numRE, body), Text: strings.Join(strings.Fields(text), " ")})
	}
	return qs
}

func readTabbed(s string) ([]Query, error) {
	var qs []Query
	for n, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, text, ok := strings.Cut(line, "\t")
		if !ok || strings.TrimSpace(text) == "" {
			return nil, fmt.Errorf("eval: queries line %d: want id<TAB>text", n+1)
		}
		qs = append(qs, Query{ID: strings.TrimSpace(id), Text: strings.TrimSpace(text)})
	}
	return qs, nil
}

// ReadQrels reads judgements: TREC lines "qid iter docid rel", or CISI's
// "qid docid 0 0.0" (recognised by a fourth field with a decimal point:
// every listed pair is relevant).
func ReadQrels(path string) (Qrels, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eval: qrels: %w", err)
	}
	defer f.Close()
	q := Qrels{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		qid, doc, rel, err := qrelLine(fs)
		if err != nil {
			return nil, fmt.Errorf("eval: qrels line %d: %w", n, err)
		}
		if q[qid] == nil {
			q[qid] = map[string]int{}
		}
		q[qid][doc] = rel
	}
	return q, sc.Err()
}

func qrelLine(fs []string) (qid, doc string, rel int, err error) {
	if len(fs) != 4 {
		return "", "", 0, fmt.Errorf("want 4 fields (qid iter docid rel), got %d", len(fs))
	}
	if strings.Contains(fs[3], ".") { // CISI: qid docid 0 0.000000
		return fs[0], fs[1], 1, nil
	}
	rel, err = strconv.Atoi(fs[3])
	return fs[0], fs[2], rel, err
}

// Relevant counts the query's relevant documents.
func (q Qrels) Relevant(qid string) int {
	n := 0
	for _, r := range q[qid] {
		if r > 0 {
			n++
		}
	}
	return n
}

// Judged lists the queries with at least one relevant document, in order.
func (q Qrels) Judged(qs []Query) []Query {
	var out []Query
	for _, x := range qs {
		if q.Relevant(x.ID) > 0 {
			out = append(out, x)
		}
	}
	return out
}

// Write writes the judgements in TREC format, sorted.
func (q Qrels) Write(w *bufio.Writer) error {
	qids := make([]string, 0, len(q))
	for id := range q {
		qids = append(qids, id)
	}
	sort.Strings(qids)
	for _, id := range qids {
		docs := make([]string, 0, len(q[id]))
		for d := range q[id] {
			docs = append(docs, d)
		}
		sort.Strings(docs)
		for _, d := range docs {
			fmt.Fprintf(w, "%s 0 %s %d\n", id, d, q[id][d])
		}
	}
	return w.Flush()
}
