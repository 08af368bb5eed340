package index

import (
	"slices"

	"github.com/sostenuto/sostenuto/index/text"
	"github.com/sostenuto/sostenuto/index/vector"
)

// A scope holds two rules. A knowledge chunk is visible by its document:
// to its owner, admins, everyone when public, the owner's students when
// private (Scope.Teachers). An annotation chunk is visible by its project:
// to the users holding view permission on it — its owner and its
// grantees (projState.principals) — and admins. Neither rule scans users
// or projects: the caller's projects come from the inverted map
// principals[user] (projects.go).

// wants reports whether q asks for chunks of kind k.
func (q Query) wants(k Kind) bool {
	return len(q.Kinds) == 0 || slices.Contains(q.Kinds, k)
}

// filtered reports whether q narrows what its scope may see (by kind or
// project), so even an admin's search must filter.
func (q Query) filtered() bool {
	return !q.wants(KindKnowledge) || !q.wants(KindAnnotation) || q.ProjectID != (ID{})
}

// admits reports whether q may return c: its kind asked for, its project
// the one named (annotations), and visible to q's scope. The read lock is
// held.
func (e *Engine) admits(q *Query, c *Chunk) bool {
	if len(q.Kinds) != 0 && !slices.Contains(q.Kinds, c.Kind) {
		return false
	}
	if c.Kind == KindAnnotation {
		if q.ProjectID != (ID{}) && c.ProjectID != q.ProjectID {
			return false
		}
		return q.Scope.Admin || e.seesProject(q.Scope.User, c.ProjectID)
	}
	return e.allowed(q.Scope, c)
}

// allowed reports whether scope may see a knowledge chunk's document; the
// read lock is held.
func (e *Engine) allowed(s Scope, c *Chunk) bool {
	if s.Admin || c.OwnerID == s.User {
		return true
	}
	st, ok := e.docs[c.DocumentID]
	if !ok {
		return false
	}
	if st.IsPublic {
		return true
	}
	return slices.Contains(s.Teachers, c.OwnerID)
}

// scopeGroups lists the BM25 statistics groups q may see: nil (all) for
// an admin's unfiltered search; else the knowledge groups (public, the
// caller's and their teachers' private ones) when knowledge is asked for,
// and the groups of the caller's projects (or the one named) when
// annotations are. Statistics are summed over exactly these. The read
// lock is held.
func (e *Engine) scopeGroups(q Query) []text.Group {
	s := q.Scope
	if s.Admin && !q.filtered() {
		return nil
	}
	out := []text.Group{}
	if q.wants(KindKnowledge) {
		out = append(out, e.knowledgeGroups(s)...)
	}
	if q.wants(KindAnnotation) {
		e.eachProject(q, func(st *projState) bool {
			if st.group != 0 {
				out = append(out, st.group)
			}
			return true
		})
	}
	return out
}

// knowledgeGroups lists the knowledge groups scope may see; the read lock
// is held.
func (e *Engine) knowledgeGroups(s Scope) []text.Group {
	out := []text.Group{0}
	if s.Admin {
		for _, g := range e.groups {
			out = append(out, g)
		}
		return out
	}
	for _, owner := range append([]ID{s.User}, s.Teachers...) {
		if g, ok := e.groups[owner]; ok {
			out = append(out, g)
		}
	}
	return out
}

// eachProject calls f with every project whose annotations q may see (the
// one q names, when it does), until f returns false: an admin's are every
// project, a user's those of the inverted map. The read lock is held.
func (e *Engine) eachProject(q Query, f func(*projState) bool) {
	if q.ProjectID != (ID{}) {
		if st, ok := e.projects[q.ProjectID]; ok && (q.Scope.Admin || e.seesProject(q.Scope.User, q.ProjectID)) {
			f(st)
		}
		return
	}
	if q.Scope.Admin {
		for _, st := range e.projects {
			if !f(st) {
				return
			}
		}
		return
	}
	for p := range e.principals[q.Scope.User] {
		if st, ok := e.projects[p]; ok && !f(st) {
			return
		}
	}
}

// allowedChunks lists the chunks q may see when that is cheap to know and
// small (at most limit); ok is false otherwise. The read lock is held.
func (e *Engine) allowedChunks(q Query, limit int) ([]vector.ID, bool) {
	var out []vector.ID
	if q.wants(KindKnowledge) {
		ks, ok := e.allowedKnowledge(q.Scope, limit)
		if !ok {
			return nil, false
		}
		out = ks
	}
	if !q.wants(KindAnnotation) {
		return out, true
	}
	if q.Scope.Admin && q.ProjectID == (ID{}) {
		return nil, false // every project: not cheap to list
	}
	ok := true
	e.eachProject(q, func(st *projState) bool {
		for c := range st.chunks {
			out = append(out, vector.ID(c))
		}
		ok = len(out) <= limit
		return ok
	})
	return out, ok
}

// allowedKnowledge lists the knowledge chunks scope may see when that is
// cheap to know and at most limit; ok is false otherwise. The read lock
// is held.
func (e *Engine) allowedKnowledge(s Scope, limit int) ([]vector.ID, bool) {
	if s.Admin || e.public > limit { // every scope sees the public chunks
		return nil, false
	}
	var out []vector.ID
	add := func(st *docState) bool {
		for c := range st.chunks {
			out = append(out, vector.ID(c))
		}
		return len(out) <= limit
	}
	for _, owner := range append([]ID{s.User}, s.Teachers...) {
		for d := range e.owners[owner] {
			if st := e.docs[d]; st != nil && !add(st) {
				return nil, false
			}
		}
	}
	for _, st := range e.docs {
		if st.IsPublic && st.OwnerID != s.User && !slices.Contains(s.Teachers, st.OwnerID) {
			if !add(st) {
				return nil, false
			}
		}
	}
	return out, true
}
