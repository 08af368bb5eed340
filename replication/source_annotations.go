package replication

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/index"
)

// annotationChunkRow is an annotation chunk as the index holds it, with
// its project's title.
type annotationChunkRow struct {
	AnnotationID uuid.UUID `db:"annotation_id"`
	ProjectID    uuid.UUID `db:"project_id"`
	AuthorID     uuid.UUID `db:"author_id"`
	Page         int       `db:"page"`
	Text         string    `db:"text"`
	Language     string    `db:"language"`
	Version      int64     `db:"version"`
	Embedding    string    `db:"embedding"`
	Title        string    `db:"title"`
}

// annotationChunkSelect is the one column list annotation chunks are
// read with.
const annotationChunkSelect = `SELECT a.annotation_id, a.project_id, a.author_id, a.page, a.text, a.language, a.version,
	a.embedding::text AS embedding, p.title
	FROM annotation_chunks a JOIN projects p ON p.id = a.project_id`

func scanAnnotationChunk(row pgx.CollectableRow) (index.Chunk, error) {
	r, err := pgx.RowToStructByName[annotationChunkRow](row)
	if err != nil {
		return index.Chunk{}, err
	}
	c := index.Chunk{ID: index.ID(r.AnnotationID), Kind: index.KindAnnotation, ProjectID: index.ID(r.ProjectID),
		AuthorID: index.ID(r.AuthorID), Title: r.Title, Text: r.Text, PageStart: r.Page, PageEnd: r.Page,
		Version: r.Version, Language: r.Language}
	c.Vector, err = parseVector(r.Embedding)
	return c, err
}

// annotated reports whether the database holds the tables of
// annotations in search (migration 00010); a database without them (one
// a test made with the changefeed's tables only) has no annotation
// chunks and no projects.
func (s Source) annotated(ctx context.Context) (bool, error) {
	rows, err := s.q.Query(ctx, `SELECT to_regclass('annotation_chunks') IS NOT NULL AND to_regclass('project_grants') IS NOT NULL`)
	if err != nil {
		return false, fmt.Errorf("replication: read tables: %w", err)
	}
	ok, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
	if err != nil {
		return false, fmt.Errorf("replication: read tables: %w", err)
	}
	return ok, nil
}

// annotationChunks reads the annotation chunks annotationChunkSelect and
// tail select.
func (s Source) annotationChunks(ctx context.Context, tail string, args ...any) ([]index.Chunk, error) {
	if ok, err := s.annotated(ctx); !ok || err != nil {
		return nil, err
	}
	rows, err := s.q.Query(ctx, annotationChunkSelect+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("replication: read annotation chunks: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanAnnotationChunk)
	if err != nil {
		return nil, fmt.Errorf("replication: read annotation chunks: %w", err)
	}
	return out, nil
}

// projectRow is a project and one of its grantees (none: a null user).
type projectRow struct {
	ID      uuid.UUID  `db:"id"`
	OwnerID uuid.UUID  `db:"owner_id"`
	Title   string     `db:"title"`
	UserID  *uuid.UUID `db:"user_id"`
}

// Projects reads every project (ids nil) or those of ids that exist, with
// their grantees: the principals of their annotation chunks.
func (s Source) Projects(ctx context.Context, ids []index.ID) (map[index.ID]index.ProjectState, error) {
	if ok, err := s.annotated(ctx); !ok || err != nil {
		return map[index.ID]index.ProjectState{}, err
	}
	q := `SELECT p.id, p.owner_id, p.title, g.user_id FROM projects p LEFT JOIN project_grants g ON g.project_id = p.id`
	var args []any
	if ids != nil {
		q, args = q+` WHERE p.id = ANY($1)`, []any{uuids(ids)}
	}
	rows, err := s.q.Query(ctx, q+` ORDER BY p.id, g.user_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("replication: read projects: %w", err)
	}
	read, err := pgx.CollectRows(rows, pgx.RowToStructByName[projectRow])
	if err != nil {
		return nil, fmt.Errorf("replication: read projects: %w", err)
	}
	out := map[index.ID]index.ProjectState{}
	for _, r := range read {
		st := out[index.ID(r.ID)]
		st.OwnerID, st.Title = index.ID(r.OwnerID), r.Title
		if r.UserID != nil {
			st.Grantees = append(st.Grantees, index.ID(*r.UserID))
		}
		out[index.ID(r.ID)] = st
	}
	return out, nil
}

// principalOps are the operations that make the index hold projects as
// PostgreSQL does: each project with all its grants.
func principalOps(projects map[index.ID]index.ProjectState) (ps []index.Project, gs []index.Grant) {
	for id, st := range projects {
		ps = append(ps, index.Project{ID: id, OwnerID: st.OwnerID, Title: st.Title})
		for _, u := range st.Grantees {
			gs = append(gs, index.Grant{ProjectID: id, UserID: u})
		}
	}
	return ps, gs
}

// sameProject reports whether two states of a project agree (grantees in
// any order).
func sameProject(a, b index.ProjectState) bool {
	if a.OwnerID != b.OwnerID || a.Title != b.Title || len(a.Grantees) != len(b.Grantees) {
		return false
	}
	for _, u := range a.Grantees {
		if !slices.Contains(b.Grantees, u) {
			return false
		}
	}
	return true
}
