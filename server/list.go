package server

import (
	"net/http"
	"sort"
	"strconv"

	"github.com/sostenuto/sostenuto/server/store"
)

// List is the body of every list answer.
type List[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

func newList[T any](items []T, next string) List[T] {
	if items == nil {
		items = []T{}
	}
	l := List[T]{Items: items}
	if next != "" {
		l.NextCursor = &next
	}
	return l
}

// Page limits: default 20, at most 100.
const (
	defaultLimit = 20
	maxLimit     = 100
)

// pageParams reads ?limit= and ?cursor=.
func pageParams(r *http.Request) (store.Page, error) {
	p := store.Page{Limit: defaultLimit, Cursor: r.URL.Query().Get("cursor")}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return p, Invalid("limit must be an integer from 1 to 100", FieldError{Field: "limit", Message: "must be 1 to 100"})
		}
		p.Limit = n
	}
	if len(p.Cursor) > 512 {
		return p, store.ErrBadCursor
	}
	return p, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// mapItems converts store rows to their API answers with f; nil stays nil
// (newList answers it as an empty list, other answers as null).
func mapItems[T, U any](in []T, f func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
