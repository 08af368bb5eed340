package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/server/fault"
)

func TestCreateUser(t *testing.T) {
	ctx := context.Background()
	s := New(pgtest.NewDB(t).Pool)
	u, err := s.CreateUser(ctx, NewUser{Email: "clara@example.com", DisplayName: "Clara", Role: RoleTeacher, PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if u.ID == uuid.Nil || u.Email != "clara@example.com" || u.Role != RoleTeacher || u.CreatedAt.IsZero() || u.CreatedAt.Location().String() != "UTC" {
		t.Errorf("created %+v", u)
	}
	got, err := s.UserByID(ctx, u.ID)
	if err != nil || got != u {
		t.Errorf("UserByID = %+v, %v; want %+v", got, err, u)
	}
	_, err = s.CreateUser(ctx, NewUser{Email: "CLARA@example.com", DisplayName: "Other", Role: RoleStudent, PasswordHash: "h"})
	if !errors.Is(err, fault.ErrConflict) {
		t.Errorf("same email in other case: %v, want fault.ErrConflict", err)
	}
	if _, err := s.UserByID(ctx, uuid.New()); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("unknown id: %v, want fault.ErrNotFound", err)
	}
}
