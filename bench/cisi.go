// Package bench holds Sostenuto's benchmarks, run with peers side by side;
// results and the commands that reproduce them are in RESULTS.md. Timings
// are reported, never asserted.
package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CISIDoc is one abstract of the CISI collection.
type CISIDoc struct {
	ID     int
	Title  string
	Author string
	Text   string
}

// CISIDir locates the CISI collection: SOSTENUTO_CISI_DIR when set, else
// ../shared/datasets/cisi beside the repository (or any folder above it),
// else /work/shared/datasets/cisi. It is read from there, never copied into
// the repository.
func CISIDir() (string, error) {
	if d := os.Getenv("SOSTENUTO_CISI_DIR"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "..", "shared", "datasets", "cisi")
		if _, err := os.Stat(filepath.Join(p, "CISI.ALL")); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			const fallback = "/work/shared/datasets/cisi"
			if _, err := os.Stat(filepath.Join(fallback, "CISI.ALL")); err == nil {
				return fallback, nil
			}
			return "", fmt.Errorf("bench: ../shared/datasets/cisi not found above the working directory (set SOSTENUTO_CISI_DIR)")
		}
		dir = parent
	}
}

// LoadCISI reads the collection's documents.
func LoadCISI(dir string) ([]CISIDoc, error) {
	recs, err := readRecords(filepath.Join(dir, "CISI.ALL"))
	if err != nil {
		return nil, err
	}
	docs := make([]CISIDoc, 0, len(recs))
	for _, r := range recs {
		docs = append(docs, CISIDoc{ID: r.id, Title: r.fields["T"], Author: r.fields["A"], Text: r.fields["W"]})
	}
	return docs, nil
}

// CISIQuery is a query with its judged relevant documents.
type CISIQuery struct {
	ID       int
	Text     string
	Relevant map[int]bool
}

// LoadCISIQueries reads the queries and their relevance judgements; only
// queries with judgements are returned.
func LoadCISIQueries(dir string) ([]CISIQuery, error) {
	recs, err := readRecords(filepath.Join(dir, "CISI.QRY"))
	if err != nil {
		return nil, err
	}
	rel := map[int]map[int]bool{}
	f, err := os.Open(filepath.Join(dir, "CISI.REL"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		q, err1 := strconv.Atoi(fs[0])
		d, err2 := strconv.Atoi(fs[1])
		if err1 != nil || err2 != nil {
			continue
		}
		if rel[q] == nil {
			rel[q] = map[int]bool{}
		}
		rel[q][d] = true
	}
	var out []CISIQuery
	for _, r := range recs {
		text := strings.TrimSpace(r.fields["W"] + " " + r.fields["T"])
		if rel[r.id] != nil {
			out = append(out, CISIQuery{ID: r.id, Text: text, Relevant: rel[r.id]})
		}
	}
	return out, sc.Err()
}

type record struct {
	id     int
	fields map[string]string
}

// readRecords parses the SMART format: ".I n" starts a record, ".X" lines
// start fields whose text follows.
func readRecords(path string) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []record
	var field string
	var b strings.Builder
	flush := func() {
		if len(recs) > 0 && field != "" {
			recs[len(recs)-1].fields[field] = strings.TrimSpace(b.String())
		}
		b.Reset()
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, ".I ") {
			flush()
			id, err := strconv.Atoi(strings.TrimSpace(line[3:]))
			if err != nil {
				return nil, fmt.Errorf("bench: %s: bad id line %q", path, line)
			}
			recs = append(recs, record{id: id, fields: map[string]string{}})
			field = ""
			continue
		}
		if len(line) == 2 && line[0] == '.' {
			flush()
			field = line[1:]
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	flush()
	return recs, sc.Err()
}

// CISISentences splits the abstracts into sentences of more than 40
// characters, whitespace folded (no final period).
func CISISentences(docs []CISIDoc) []string {
	var out []string
	for _, d := range docs {
		for _, s := range strings.Split(d.Text, ". ") {
			if len(s) > 40 {
				out = append(out, strings.Join(strings.Fields(s), " "))
			}
		}
	}
	return out
}

// ContentWords is the first n words of text longer than four letters,
// punctuation trimmed: a short question made from a CISI query.
func ContentWords(text string, n int) string {
	var ws []string
	for _, w := range strings.Fields(text) {
		if len(w) > 4 {
			ws = append(ws, strings.Trim(w, ".,?;:()\""))
		}
		if len(ws) == n {
			break
		}
	}
	return strings.Join(ws, " ")
}
