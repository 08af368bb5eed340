package search

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
)

// Scope is what a caller may see: their own documents, public ones, their
// teachers' (as a student), or everything (an administrator).
type Scope struct {
	User  uuid.UUID
	Admin bool
	// Teachers are the teachers User is a student of; read from the
	// database by Resolve unless Resolved.
	Teachers []uuid.UUID
	Resolved bool
}

// Teachers reads whose students a user is.
type Teachers interface {
	TeachersOf(ctx context.Context, user uuid.UUID) ([]uuid.UUID, error)
}

// Resolve returns s with its teachers read from src (s itself when they
// were read already).
func (s Scope) Resolve(ctx context.Context, src Teachers) (Scope, error) {
	if s.Resolved {
		return s, nil
	}
	ts, err := src.TeachersOf(ctx, s.User)
	if err != nil {
		return s, fmt.Errorf("search: scope: %w", err)
	}
	s.Teachers, s.Resolved = ts, true
	return s, nil
}

// Key names the scope in cache keys and entity tags: the user, whether an
// administrator, and the sorted teachers (resolve it first).
func (s Scope) Key() string {
	ids := make([]string, len(s.Teachers))
	for i, t := range s.Teachers {
		ids[i] = t.String()
	}
	slices.Sort(ids)
	return fmt.Sprintf("%s|%t|%s", s.User, s.Admin, strings.Join(ids, ","))
}

// index converts the scope for the engine.
func (s Scope) index() index.Scope {
	out := index.Scope{User: index.ID(s.User), Admin: s.Admin}
	for _, t := range s.Teachers {
		out.Teachers = append(out.Teachers, index.ID(t))
	}
	return out
}
