package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/index/vector"
)

// BenchmarkAnnotationScope prices annotations in search (issue 18,
// index/DESIGN.md "Annotations"): one engine holds 20,000 knowledge
// chunks (2,000 documents of 50 owners, a third public) and 10,000
// annotation chunks over 1,000 projects of 5 teachers, each teacher
// granting 200 (project, student) pairs to 100 students. Every query is a
// hybrid search, k = 10, 768 dimensions, in the same process, as:
//   - student/knowledge: a student's search of knowledge only (what every
//     search was before annotations);
//   - student/both: the default, knowledge and the notes of her projects;
//   - student/annotations: her projects' notes only;
//   - student/project: one of her projects' notes (project_id);
//   - teacher/annotations: a teacher's notes across her 200 projects.
//
// Each reports p50 and p95 latency (µs) beside ns/op.
//
// Run: go test ./bench -run '^$' -bench AnnotationScope -benchtime 2000x
func BenchmarkAnnotationScope(b *testing.B) {
	w := annotationCorpus(b)
	r := rand.New(rand.NewPCG(9, 9))
	student := func(i int) index.Scope { return index.Scope{User: w.students[i%len(w.students)]} }
	cases := []struct {
		name  string
		query func(i int) index.Query
	}{
		{"student/knowledge", func(i int) index.Query {
			return index.Query{Scope: student(i), Kinds: []index.Kind{index.KindKnowledge}}
		}},
		{"student/both", func(i int) index.Query { return index.Query{Scope: student(i)} }},
		{"student/annotations", func(i int) index.Query {
			return index.Query{Scope: student(i), Kinds: []index.Kind{index.KindAnnotation}}
		}},
		{"student/project", func(i int) index.Query {
			u := w.students[i%len(w.students)]
			return index.Query{Scope: index.Scope{User: u}, Kinds: []index.Kind{index.KindAnnotation}, ProjectID: w.projectsOf[u][0]}
		}},
		{"teacher/annotations", func(i int) index.Query {
			return index.Query{Scope: index.Scope{User: w.teachers[i%len(w.teachers)]}, Kinds: []index.Kind{index.KindAnnotation}}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var took []time.Duration
			i := 0
			for b.Loop() {
				q := c.query(i)
				q.K, q.Mode, q.Text, q.Vector = 10, index.ModeHybrid, randomWords(r, 3), randomVector(r, annDim)
				start := time.Now()
				if _, err := w.e.Search(q); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
				i++
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(took[len(took)*95/100].Microseconds()), "p95-µs")
		})
	}
}

const annDim = 768

// annWorld is the benchmark's engine and who is in it.
type annWorld struct {
	e          *index.Engine
	teachers   []index.ID
	students   []index.ID
	projectsOf map[index.ID][]index.ID // student → granted projects
}

var annBuilt struct {
	once sync.Once
	w    *annWorld
	err  error
}

// annotationCorpus builds the engine once per process.
func annotationCorpus(b *testing.B) *annWorld {
	annBuilt.once.Do(func() { annBuilt.w, annBuilt.err = buildAnnotationWorld() })
	if annBuilt.err != nil {
		b.Fatal(annBuilt.err)
	}
	return annBuilt.w
}

func annID(kind byte, i int) index.ID {
	var id index.ID
	id[0] = kind
	id[1], id[2], id[3] = byte(i>>16), byte(i>>8), byte(i)
	return id
}

func buildAnnotationWorld() (*annWorld, error) {
	e, err := index.New(index.Config{Vector: vector.DefaultConfig(annDim), ExactBelow: 2000})
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(4, 4))
	w := &annWorld{e: e, projectsOf: map[index.ID][]index.ID{}}
	for i := range 5 {
		w.teachers = append(w.teachers, annID('t', i))
	}
	for i := range 100 {
		w.students = append(w.students, annID('s', i))
	}
	if err := e.Apply(knowledgeOps(r)); err != nil {
		return nil, err
	}
	return w, e.Apply(w.annotationOps(r))
}

// knowledgeOps: 2,000 documents of 50 owners (a third public), 10 chunks
// each.
func knowledgeOps(r *rand.Rand) index.Ops {
	ops := index.Ops{Position: index.Position{LSN: 1}}
	for d := range 2000 {
		doc := index.Document{ID: annID('d', d), OwnerID: annID('o', d%50), IsPublic: d%3 == 0, Title: fmt.Sprintf("Method %d", d)}
		ops.Documents = append(ops.Documents, doc)
		for c := range 10 {
			ops.Upserts = append(ops.Upserts, index.Chunk{ID: annID('c', d*10+c), DocumentID: doc.ID, OwnerID: doc.OwnerID,
				Text: randomWords(r, 60), PageStart: 1, PageEnd: 1, Version: 1, Vector: randomVector(r, annDim)})
		}
	}
	return ops
}

// annotationOps: 1,000 projects (200 per teacher), 10 notes each, and 200
// grants per teacher to random students.
func (w *annWorld) annotationOps(r *rand.Rand) index.Ops {
	ops := index.Ops{Position: index.Position{LSN: 2}}
	for p := range 1000 {
		t := w.teachers[p%5]
		ops.Projects = append(ops.Projects, index.Project{ID: annID('p', p), OwnerID: t, Title: fmt.Sprintf("Piece %d", p)})
		for n := range 10 {
			ops.Upserts = append(ops.Upserts, index.Chunk{ID: annID('a', p*10+n), Kind: index.KindAnnotation, ProjectID: annID('p', p),
				AuthorID: t, Text: randomWords(r, 20), PageStart: 1 + n, Version: 1, Vector: randomVector(r, annDim)})
		}
	}
	for t := range 5 {
		for range 200 {
			p := annID('p', t+5*r.IntN(200))
			s := w.students[r.IntN(len(w.students))]
			ops.Grants = append(ops.Grants, index.Grant{ProjectID: p, UserID: s})
			w.projectsOf[s] = append(w.projectsOf[s], p)
		}
	}
	for _, s := range w.students { // every student holds at least one project
		if len(w.projectsOf[s]) == 0 {
			ops.Grants = append(ops.Grants, index.Grant{ProjectID: annID('p', 0), UserID: s})
			w.projectsOf[s] = append(w.projectsOf[s], annID('p', 0))
		}
	}
	return ops
}

// annVocabulary is 2,000 synthetic words, drawn with a skew (a few common,
// most rare), as text is.
var annVocabulary = func() []string {
	out := make([]string, 2000)
	for i := range out {
		out[i] = fmt.Sprintf("w%dx", i)
	}
	return out
}()

func randomWords(r *rand.Rand, n int) string {
	ws := make([]string, n)
	for i := range ws {
		ws[i] = annVocabulary[int(float64(len(annVocabulary))*r.Float64()*r.Float64())]
	}
	return strings.Join(ws, " ")
}

func randomVector(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}
