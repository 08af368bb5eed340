package replication

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/sostenuto/sostenuto/index"
)

// decodeProject reads a projects row (id, owner_id, title: the columns
// published): its owner is one of its principals. A delete takes the
// project's annotation chunks and principals with it.
func decodeProject(tx *index.Ops, id index.ID, cols map[string]string, deleted bool) error {
	if deleted {
		tx.DeleteProjects = append(tx.DeleteProjects, id)
		return nil
	}
	owner, err := uuidCol(cols, "owner_id")
	if err != nil {
		return err
	}
	tx.Projects = append(tx.Projects, index.Project{ID: id, OwnerID: owner, Title: cols["title"]})
	return nil
}

// decodeGrant reads a project_grants row (project_id, user_id; a delete
// sends that key): any permission includes view, so an insert or update
// adds a principal and a delete removes one.
func decodeGrant(tx *index.Ops, cols map[string]string, deleted bool) error {
	p, err := uuidCol(cols, "project_id")
	if err != nil {
		return err
	}
	u, err := uuidCol(cols, "user_id")
	if err != nil {
		return err
	}
	if deleted {
		tx.Revokes = append(tx.Revokes, index.Grant{ProjectID: p, UserID: u})
	} else {
		tx.Grants = append(tx.Grants, index.Grant{ProjectID: p, UserID: u})
	}
	return nil
}

// decodeAnnotationRow reads an annotation_chunks row (a delete sends its
// key, annotation_id).
func decodeAnnotationRow(tx *index.Ops, cols map[string]string, deleted bool) error {
	id, err := uuidCol(cols, "annotation_id")
	if err != nil {
		return err
	}
	if deleted {
		tx.Deletes = append(tx.Deletes, id)
		return nil
	}
	c, err := decodeAnnotationChunk(id, cols)
	if err != nil {
		return err
	}
	tx.Upserts = append(tx.Upserts, c)
	return nil
}

func decodeAnnotationChunk(id index.ID, cols map[string]string) (index.Chunk, error) {
	c := index.Chunk{ID: id, Kind: index.KindAnnotation, Text: cols["text"], Language: cols["language"]}
	var err error
	if c.ProjectID, err = uuidCol(cols, "project_id"); err != nil {
		return c, err
	}
	if c.AuthorID, err = uuidCol(cols, "author_id"); err != nil {
		return c, err
	}
	page, err1 := strconv.Atoi(cols["page"])
	v, err2 := strconv.ParseInt(cols["version"], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return c, fmt.Errorf("replication: annotation chunk columns: %w", err)
	}
	c.PageStart, c.PageEnd, c.Version = page, page, v
	emb, ok := cols["embedding"]
	if !ok {
		return c, nil // unchanged and TOASTed: the index keeps its vector
	}
	c.Vector, err = parseVector(emb)
	return c, err
}

// decodeRelationship reads a relationships row (teacher_id, student_id:
// the columns published, and the replica identity, so a delete sends them
// too, migration 00013): whether made, changed or removed, the student's
// teachers changed. An update that moves the row to another pair sends
// the old key as well (Assembler.movedRelationship).
func decodeRelationship(tx *index.Ops, cols map[string]string) error {
	u, err := uuidCol(cols, "student_id")
	if err != nil {
		return err
	}
	if !slices.Contains(tx.ScopeChanges, u) {
		tx.ScopeChanges = append(tx.ScopeChanges, u)
	}
	return nil
}
