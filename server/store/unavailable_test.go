package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sostenuto/sostenuto/server/fault"
)

func TestUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, dial := pgx.Connect(ctx, "postgres://u@127.0.0.1:1/db?sslmode=disable&connect_timeout=2")
	for name, c := range map[string]struct {
		err  error
		want bool
	}{
		"connection refused": {dial, true},
		"wrapped":            {fmt.Errorf("store: list: %w", dial), true},
		"starting up":        {&pgconn.PgError{Code: "57P03"}, true},
		"admin shutdown":     {&pgconn.PgError{Code: "57P01"}, true},
		"statement timeout":  {&pgconn.PgError{Code: "57014"}, true},
		"connection failure": {&pgconn.PgError{Code: "08006"}, true},
		"deadline":           {context.DeadlineExceeded, true},
		"unique violation":   {&pgconn.PgError{Code: "23505"}, false},
		"not found":          {fault.ErrNotFound, false},
		"other":              {errors.New("boom"), false},
		"nil":                {nil, false},
	} {
		if got := Unavailable(c.err); got != c.want {
			t.Errorf("%s (%v): %v, want %v", name, c.err, got, c.want)
		}
	}
}
