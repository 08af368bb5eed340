package replication

import (
	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication/logentry"
)

// principals are the version-3 parts of an entry: projects, grants,
// revokes, deleted projects and annotation chunks.
type principals struct {
	projects       []*logentry.Project
	grants         []*logentry.Grant
	revokes        []*logentry.Grant
	deleteProjects [][]byte
	notes          []*logentry.AnnotationChunk
}

// into adds them to ops (annotation chunks after the knowledge chunks).
func (p principals) into(ops *index.Ops) error {
	var err error
	if ops.Projects, err = projectsIn(p.projects); err != nil {
		return err
	}
	if ops.Grants, err = grantsIn(p.grants); err != nil {
		return err
	}
	if ops.Revokes, err = grantsIn(p.revokes); err != nil {
		return err
	}
	if ops.DeleteProjects, err = idsIn(p.deleteProjects, "project delete"); err != nil {
		return err
	}
	notes, err := annotationsIn(p.notes)
	ops.Upserts = append(ops.Upserts, notes...)
	return err
}

// splitKinds separates knowledge chunks from annotation chunks (the log
// carries them in different fields).
func splitKinds(cs []index.Chunk) (knowledge, notes []index.Chunk) {
	for _, c := range cs {
		if c.Kind == index.KindAnnotation {
			notes = append(notes, c)
		} else {
			knowledge = append(knowledge, c)
		}
	}
	return knowledge, notes
}

func projectsOut(ps []index.Project) []*logentry.Project {
	if len(ps) == 0 {
		return nil
	}
	out := make([]*logentry.Project, len(ps))
	for i, p := range ps {
		out[i] = &logentry.Project{Id: idOut(p.ID), OwnerId: idOut(p.OwnerID), Title: []byte(p.Title)}
	}
	return out
}

func projectsIn(ps []*logentry.Project) ([]index.Project, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	out := make([]index.Project, len(ps))
	for i, p := range ps {
		id, err := idIn(p.GetId(), "project id")
		if err != nil {
			return nil, err
		}
		owner, err := idIn(p.GetOwnerId(), "project owner")
		if err != nil {
			return nil, err
		}
		out[i] = index.Project{ID: id, OwnerID: owner, Title: string(p.GetTitle())}
	}
	return out, nil
}

func grantsOut(gs []index.Grant) []*logentry.Grant {
	if len(gs) == 0 {
		return nil
	}
	out := make([]*logentry.Grant, len(gs))
	for i, g := range gs {
		out[i] = &logentry.Grant{ProjectId: idOut(g.ProjectID), UserId: idOut(g.UserID)}
	}
	return out
}

func grantsIn(gs []*logentry.Grant) ([]index.Grant, error) {
	if len(gs) == 0 {
		return nil, nil
	}
	out := make([]index.Grant, len(gs))
	for i, g := range gs {
		p, err := idIn(g.GetProjectId(), "grant project")
		if err != nil {
			return nil, err
		}
		u, err := idIn(g.GetUserId(), "grant user")
		if err != nil {
			return nil, err
		}
		out[i] = index.Grant{ProjectID: p, UserID: u}
	}
	return out, nil
}

func annotationsOut(cs []index.Chunk) []*logentry.AnnotationChunk {
	if len(cs) == 0 {
		return nil
	}
	out := make([]*logentry.AnnotationChunk, len(cs))
	for i, c := range cs {
		out[i] = &logentry.AnnotationChunk{Id: idOut(c.ID), ProjectId: idOut(c.ProjectID), AuthorId: idOut(c.AuthorID),
			Text: []byte(c.Text), Page: int64(c.PageStart), Version: c.Version, Language: languageOut(c.Language)}
		if c.Vector != nil {
			out[i].Vector = &logentry.Vector{Values: c.Vector}
		}
	}
	return out
}

func annotationsIn(cs []*logentry.AnnotationChunk) ([]index.Chunk, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	out := make([]index.Chunk, len(cs))
	for i, c := range cs {
		var ids [3]index.ID
		raw := [3][]byte{c.GetId(), c.GetProjectId(), c.GetAuthorId()}
		for j, what := range [3]string{"annotation id", "annotation project", "annotation author"} {
			id, err := idIn(raw[j], what)
			if err != nil {
				return nil, err
			}
			ids[j] = id
		}
		out[i] = index.Chunk{ID: ids[0], Kind: index.KindAnnotation, ProjectID: ids[1], AuthorID: ids[2], Text: string(c.GetText()),
			PageStart: int(c.GetPage()), PageEnd: int(c.GetPage()), Version: c.GetVersion(), Language: c.GetLanguage()}
		if c.GetVector() != nil {
			out[i].Vector = c.GetVector().GetValues()
			if out[i].Vector == nil {
				out[i].Vector = []float32{}
			}
		}
	}
	return out, nil
}

// opsOfBasePart reads a base part's operations, vectors by model and the
// model state included.
func opsOfBasePart(p *logentry.BasePart) (index.Ops, error) {
	ops, err := opsOf(p.GetDocuments(), p.GetUpserts(), nil)
	if err != nil {
		return ops, err
	}
	ops.Model = modelIn(p.GetModelState())
	if ops.Embeddings, err = embeddingsIn(p.GetEmbeddings()); err != nil {
		return ops, err
	}
	pr := principals{projects: p.GetProjects(), grants: p.GetGrants(), notes: p.GetAnnotationUpserts()}
	return ops, pr.into(&ops)
}

// opsOfRepair reads a repair's operations, vectors by model included.
func opsOfRepair(p *logentry.Repair) (index.Ops, error) {
	ops, err := opsOf(p.GetDocuments(), p.GetUpserts(), p.GetDeletes())
	if err != nil {
		return ops, err
	}
	if ops.Embeddings, err = embeddingsIn(p.GetEmbeddings()); err != nil {
		return ops, err
	}
	pr := principals{p.GetProjects(), p.GetGrants(), p.GetRevokes(), p.GetDeleteProjects(), p.GetAnnotationUpserts()}
	return ops, pr.into(&ops)
}
