package search

import (
	"fmt"
	"slices"

	"github.com/google/uuid"
)

// Kinds of hits: passages of knowledge documents, and teachers' notes on a
// project's pages. Annotation chunks are not indexed yet (issue 18): a
// search for them alone finds nothing, and every hit is KindKnowledge.
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

// keepKinds drops the hits of kinds q does not ask for, and annotations of
// other projects than q.ProjectID when one is named.
func keepKinds(q Query, hits []Hit) []Hit {
	out := hits[:0]
	for _, h := range hits {
		if !q.wants(h.Kind) {
			continue
		}
		if h.Kind == KindAnnotation && q.ProjectID != nil && (h.ProjectID == nil || *h.ProjectID != *q.ProjectID) {
			continue
		}
		out = append(out, h)
	}
	return out
}

// KindsKey is the part of a cache key or tag that kinds and a project make.
func KindsKey(kinds []string, project *uuid.UUID) string {
	p := ""
	if project != nil {
		p = project.String()
	}
	return fmt.Sprint(kinds, "|", p)
}
