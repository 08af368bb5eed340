package index

import (
	"github.com/sostenuto/sostenuto/index/text"
)

// Project is a project as the index knows it: the visibility unit of its
// annotation chunks. Its owner is one of its principals; its title is what
// its annotation chunks show.
type Project struct {
	ID      ID
	OwnerID ID
	Title   string
}

// Grant gives a user view permission (or more) on a project: the user is
// one of the project's principals.
type Grant struct {
	ProjectID ID
	UserID    ID
}

// projState is a project's visibility and its annotation chunks.
type projState struct {
	Project
	grantees map[ID]bool
	chunks   map[ID]bool
	// group is the project's BM25 statistics group (0: none yet).
	group text.Group
}

// project returns a project's state, creating it (without owner or
// grantees: visible to admins only) if unknown; mu is held.
func (e *Engine) project(id ID) *projState {
	st, ok := e.projects[id]
	if !ok {
		st = &projState{Project: Project{ID: id}, grantees: map[ID]bool{}, chunks: map[ID]bool{}}
		e.projects[id] = st
	}
	return st
}

// seesProject reports whether user is one of project p's principals (its
// owner or a grantee); the read lock is held.
func (e *Engine) seesProject(user, p ID) bool {
	return e.principals[user][p]
}

// applyPrincipals applies a batch's projects and grants; mu is held.
func (e *Engine) applyPrincipals(ops Ops) {
	for _, p := range ops.Projects {
		e.setProject(p)
	}
	for _, g := range ops.Grants {
		st := e.project(g.ProjectID)
		st.grantees[g.UserID] = true
		e.addPrincipal(g.UserID, g.ProjectID)
	}
}

// removePrincipals applies a batch's revoked grants and deleted projects
// (whose chunks are gone by then); mu is held.
func (e *Engine) removePrincipals(ops Ops) {
	for _, g := range ops.Revokes {
		st, ok := e.projects[g.ProjectID]
		if !ok {
			continue
		}
		delete(st.grantees, g.UserID)
		if st.OwnerID != g.UserID {
			e.dropPrincipal(g.UserID, g.ProjectID)
		}
	}
	for _, p := range ops.DeleteProjects {
		st, ok := e.projects[p]
		if !ok {
			continue
		}
		for u := range st.grantees {
			e.dropPrincipal(u, p)
		}
		e.dropPrincipal(st.OwnerID, p)
		delete(e.projects, p)
	}
}

// setProject records a project's owner and title; a new title reaches its
// annotation chunks. mu is held.
func (e *Engine) setProject(p Project) {
	st := e.project(p.ID)
	if st.OwnerID != p.OwnerID {
		if st.OwnerID != (ID{}) && !st.grantees[st.OwnerID] {
			e.dropPrincipal(st.OwnerID, p.ID)
		}
		st.OwnerID = p.OwnerID
		e.addPrincipal(p.OwnerID, p.ID)
	}
	if p.Title != "" && p.Title != st.Title {
		st.Title = p.Title
		for c := range st.chunks {
			if ch, ok := e.chunks[c]; ok {
				nc := *ch
				nc.Title = p.Title
				e.chunks[c] = &nc
			}
		}
	}
}

func (e *Engine) addPrincipal(user, p ID) {
	if user == (ID{}) {
		return
	}
	if e.principals[user] == nil {
		e.principals[user] = map[ID]bool{}
	}
	e.principals[user][p] = true
}

func (e *Engine) dropPrincipal(user, p ID) {
	if m := e.principals[user]; m != nil {
		delete(m, p)
		if len(m) == 0 {
			delete(e.principals, user)
		}
	}
}

// linkAnnotation puts annotation chunk c in the chunk map and its
// project's set (leaving the old project's, should it have moved) and
// returns its BM25 group; mu is held.
func (e *Engine) linkAnnotation(c *Chunk, old *Chunk, had bool) text.Group {
	if had && old.ProjectID != c.ProjectID {
		if st, ok := e.projects[old.ProjectID]; ok {
			delete(st.chunks, c.ID)
		}
	}
	st := e.project(c.ProjectID)
	c.DocumentID, c.OwnerID = ID{}, ID{}
	if c.Title == "" {
		c.Title = st.Title
	}
	c.PageEnd = c.PageStart
	e.chunks[c.ID] = c
	st.chunks[c.ID] = true
	return e.projectGroup(st)
}

// projectGroup is a project's BM25 statistics group, numbered when first
// needed; mu is held.
func (e *Engine) projectGroup(st *projState) text.Group {
	if st.group == 0 {
		e.nextGroup++
		st.group = e.nextGroup
	}
	return st.group
}

// chunkGroup is the BM25 group of a chunk (its project's or its
// document's); mu is held.
func (e *Engine) chunkGroup(c *Chunk) text.Group {
	if c.Kind == KindAnnotation {
		return e.projectGroup(e.project(c.ProjectID))
	}
	return e.group(e.doc(c.DocumentID, c.OwnerID))
}

// ProjectState is a project's principals as the index holds them
// (anti-entropy compares them with PostgreSQL's).
type ProjectState struct {
	OwnerID  ID
	Title    string
	Grantees []ID
}

// Projects lists every project the index holds with its principals.
func (e *Engine) Projects() map[ID]ProjectState {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make(map[ID]ProjectState, len(e.projects))
	for id, st := range e.projects {
		ps := ProjectState{OwnerID: st.OwnerID, Title: st.Title}
		for u := range st.grantees {
			ps.Grantees = append(ps.Grantees, u)
		}
		out[id] = ps
	}
	return out
}
