package search

import (
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/store"
)

// Kinds of hits: passages of knowledge documents, and teachers' notes on a
// project's pages (a note's text, a highlight's comment). Both backends
// take the kinds and the project into the search itself (the engine's
// Query, the SQL of each PostgreSQL list), so k hits come back, not
// fewer.
const (
	KindKnowledge  = "knowledge"
	KindAnnotation = "annotation"
)

// ParseKinds validates a request's kinds: each known, none twice; nil or
// empty means every kind.
func ParseKinds(kinds []string) ([]string, error) {
	for i, k := range kinds {
		if k != KindKnowledge && k != KindAnnotation {
			return nil, fmt.Errorf("kind %q: must be knowledge or annotation", k)
		}
		if slices.Contains(kinds[:i], k) {
			return nil, fmt.Errorf("kind %q named twice", k)
		}
	}
	if len(kinds) == 0 {
		return nil, nil
	}
	return kinds, nil
}

// wants says whether q asks for hits of kind.
func (q Query) wants(kind string) bool {
	return len(q.Kinds) == 0 || slices.Contains(q.Kinds, kind)
}

// indexKinds is q.Kinds as the engine's kinds (nil: every kind).
func (q Query) indexKinds() []index.Kind {
	if len(q.Kinds) == 0 {
		return nil
	}
	out := make([]index.Kind, 0, len(q.Kinds))
	for _, k := range q.Kinds {
		if k == KindAnnotation {
			out = append(out, index.KindAnnotation)
		} else {
			out = append(out, index.KindKnowledge)
		}
	}
	return out
}

// indexProject is q.ProjectID as the engine's (zero: none).
func (q Query) indexProject() index.ID {
	if q.ProjectID == nil {
		return index.ID{}
	}
	return index.ID(*q.ProjectID)
}

// filter is q's kinds and project as the PostgreSQL search's filter.
func (q Query) filter() store.SearchFilter {
	return store.SearchFilter{Knowledge: q.wants(KindKnowledge), Annotations: q.wants(KindAnnotation), ProjectID: q.ProjectID}
}

// KindsKey is the part of a cache key or tag that kinds and a project make.
func KindsKey(kinds []string, project *uuid.UUID) string {
	p := ""
	if project != nil {
		p = project.String()
	}
	return fmt.Sprint(kinds, "|", p)
}
