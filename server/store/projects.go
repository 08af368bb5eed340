package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sostenuto/sostenuto/server/blob"
)

// Project statuses.
const (
	StatusPendingUpload = "pending_upload"
	StatusReady         = "ready"
)

// Project is a sheet-music PDF.
type Project struct {
	ID            uuid.UUID
	OwnerID       uuid.UUID
	Title         string
	Description   string
	Filename      string
	ContentType   string
	Status        string
	FileSizeBytes *int64
	PageCount     *int
	CreatedAt     time.Time
	UpdatedAt     time.Time
	ObjectKey     string
	ETag          *string
}

// projectRow is how a projects row scans; Project(r) is the record.
type projectRow struct {
	ID            uuid.UUID `db:"id"`
	OwnerID       uuid.UUID `db:"owner_id"`
	Title         string    `db:"title"`
	Description   string    `db:"description"`
	Filename      string    `db:"filename"`
	ContentType   string    `db:"content_type"`
	Status        string    `db:"status"`
	FileSizeBytes *int64    `db:"file_size_bytes"`
	PageCount     *int      `db:"page_count"`
	CreatedAt     time.Time `db:"created_at"`
	UpdatedAt     time.Time `db:"updated_at"`
	ObjectKey     string    `db:"object_key"`
	ETag          *string   `db:"etag"`
}

// scanProject scans a row into a Project.
func scanProject(row pgx.CollectableRow) (Project, error) {
	r, err := pgx.RowToStructByName[projectRow](row)
	return Project(r), err
}

func (p *Project) utc() {
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
}

const projectColumns = `id, owner_id, title, description, filename, content_type, status, file_size_bytes,
	page_count, created_at, updated_at, object_key, etag`

// NewProject is what creating a project needs.
type NewProject struct {
	ID          uuid.UUID
	OwnerID     uuid.UUID
	Title       string
	Description string
	Filename    string
	ObjectKey   string
}

func oneProject(rows pgx.Rows, err error) (Project, error) {
	if err != nil {
		return Project{}, err
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanProject)
	if err != nil {
		return Project{}, err
	}
	p.utc()
	return p, nil
}

// CreateProject inserts a project awaiting its upload, as its owner.
func (s *Store) CreateProject(ctx context.Context, np NewProject) (Project, error) {
	var p Project
	err := s.AsUser(ctx, np.OwnerID, func(tx pgx.Tx) error {
		var err error
		p, err = oneProject(tx.Query(ctx, `INSERT INTO projects (id, owner_id, title, description, filename, object_key)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+projectColumns,
			np.ID, np.OwnerID, np.Title, np.Description, np.Filename, np.ObjectKey))
		return err
	})
	if err != nil {
		return Project{}, fmt.Errorf("store: create project: %w", err)
	}
	return p, nil
}

// ProjectByID loads a project as user (RLS hides what it may not see).
func (s *Store) ProjectByID(ctx context.Context, user, id uuid.UUID) (Project, error) {
	var p Project
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		var err error
		p, err = oneProject(tx.Query(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = $1`, id))
		return err
	})
	return p, notFound("project", err)
}

// Project list scopes.
const (
	ScopeOwned  = "owned"
	ScopeShared = "shared"
	ScopeAll    = "all"
)

// ListProjects lists the projects user may see, newest first: owned by it,
// shared with it by a grant, or all of them; q filters on the title.
func (s *Store) ListProjects(ctx context.Context, user uuid.UUID, scope, q string, page Page) ([]Project, string, error) {
	after, hasAfter, err := decodeCursor(page.Cursor)
	if err != nil {
		return nil, "", err
	}
	var items []Project
	err = s.AsUser(ctx, user, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+projectColumns+` FROM projects p
			WHERE ($2 <> 'owned' OR p.owner_id = $1)
			  AND ($2 <> 'shared' OR EXISTS (SELECT 1 FROM project_grants g WHERE g.project_id = p.id AND g.user_id = $1))
			  AND ($3 = '' OR p.title ILIKE '%' || $3 || '%')
			  AND (NOT $4 OR (p.created_at, p.id) < ($5, $6))
			ORDER BY p.created_at DESC, p.id DESC LIMIT $7`,
			user, scope, escapeLike(q), hasAfter, after.T, after.ID, page.Limit+1)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, scanProject)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("store: list projects: %w", err)
	}
	for i := range items {
		items[i].utc()
	}
	return pageOf(items, page.Limit, func(p Project) string { return encodeCursor(p.CreatedAt, p.ID) })
}

// escapeLike makes q match literally inside ILIKE.
func escapeLike(q string) string {
	out := make([]rune, 0, len(q))
	for _, r := range q {
		if r == '%' || r == '_' || r == '\\' {
			out = append(out, '\\')
		}
		out = append(out, r)
	}
	return string(out)
}

// ProjectPatch changes a project's title and description.
type ProjectPatch struct {
	Title       *string
	Description *string
}

// UpdateProject applies a patch as user.
func (s *Store) UpdateProject(ctx context.Context, user, id uuid.UUID, patch ProjectPatch) (Project, error) {
	var p Project
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		var err error
		p, err = oneProject(tx.Query(ctx, `UPDATE projects SET title = coalesce($2, title),
				description = coalesce($3, description), updated_at = now()
			WHERE id = $1 RETURNING `+projectColumns, id, patch.Title, patch.Description))
		return err
	})
	return p, notFound("update project", err)
}

// ReadyUpload is a checked upload: the sealed copy (Key) made of the upload
// key (From) and what the check found in it.
type ReadyUpload struct {
	From, Key string
	Size      int64
	Pages     int
	ETag      string
}

// MarkProjectReady records a checked upload: the project serves u.Key from
// now on. Only a project still awaiting its upload at u.From changes; any
// other (confirmed meanwhile) is returned as it is, so the caller can tell
// by its ObjectKey whether its copy won.
func (s *Store) MarkProjectReady(ctx context.Context, user, id uuid.UUID, u ReadyUpload) (Project, error) {
	var p Project
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		var err error
		p, err = oneProject(tx.Query(ctx, `UPDATE projects SET status = 'ready', object_key = $2, file_size_bytes = $3,
				page_count = $4, etag = $5, updated_at = now()
			WHERE id = $1 AND status = 'pending_upload' AND object_key = $6 RETURNING `+projectColumns,
			id, u.Key, u.Size, u.Pages, u.ETag, u.From))
		if errors.Is(err, pgx.ErrNoRows) {
			p, err = oneProject(tx.Query(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = $1`, id))
		}
		return err
	})
	return p, notFound("confirm project", err)
}

// BlobDeleteJob is the job kind that deletes an object from the blob store.
const BlobDeleteJob = "blob.delete"

// BlobDeletePayload names the object to delete, or the folder of objects
// (blob.CheckPrefix) to delete.
type BlobDeletePayload struct {
	Key    string `json:"key,omitempty"`
	Prefix string `json:"prefix,omitempty"`
}

// DeleteProject deletes a project (its grants and annotations go with it)
// and, in the same transaction, enqueues the deletion of its objects (the
// served one, the upload it came from, and the folder of its page images),
// so they go even if the blob store is down now.
func (s *Store) DeleteProject(ctx context.Context, user, id uuid.UUID) error {
	err := s.AsUser(ctx, user, func(tx pgx.Tx) error {
		var key string
		var created time.Time
		if err := tx.QueryRow(ctx, `DELETE FROM projects WHERE id = $1 RETURNING object_key, created_at`, id).Scan(&key, &created); err != nil {
			return err
		}
		images := BlobDeletePayload{Prefix: blob.PageImagePrefix(id.String())}
		if err := EnqueueJob(ctx, tx, BlobDeleteJob, images, "", 20); err != nil {
			return err
		}
		return enqueueObjectDeletes(ctx, tx, key, created)
	})
	return notFound("delete project", err)
}

// enqueueObjectDeletes schedules the deletion of key and of the upload key
// it was sealed from, now; and, while the upload URL made at created may
// still be used, once more when it cannot (a late PUT is not left behind).
func enqueueObjectDeletes(ctx context.Context, tx pgx.Tx, key string, created time.Time) error {
	upload := blob.UploadKeyOf(key)
	keys := []string{key}
	if upload != key {
		keys = append(keys, upload)
	}
	for _, k := range keys {
		if err := EnqueueJob(ctx, tx, BlobDeleteJob, BlobDeletePayload{Key: k}, "", 20); err != nil {
			return err
		}
	}
	return enqueueLateUploadDelete(ctx, tx, upload, created)
}

// enqueueLateUploadDelete schedules the deletion of an upload key for when
// the upload URL made at created has expired, if that is still to come.
func enqueueLateUploadDelete(ctx context.Context, tx pgx.Tx, upload string, created time.Time) error {
	at := created.Add(blob.UploadWindow)
	if !at.After(time.Now()) {
		return nil
	}
	return EnqueueJobAt(ctx, tx, BlobDeleteJob, BlobDeletePayload{Key: upload}, "late-upload:"+upload, 20, at)
}

// EnqueueBlobDelete schedules the deletion of an object on its own (a
// rejected upload whose direct deletion failed).
func (s *Store) EnqueueBlobDelete(ctx context.Context, key string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return EnqueueJob(ctx, tx, BlobDeleteJob, BlobDeletePayload{Key: key}, "", 20)
	})
}

// EnqueueUploadCleanup schedules the deletion of an upload key that has
// been sealed: once its upload URL (made at created) has expired, so that
// a PUT until then leaves nothing behind.
func (s *Store) EnqueueUploadCleanup(ctx context.Context, upload string, created time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return enqueueLateUploadDelete(ctx, tx, upload, created)
	})
}
