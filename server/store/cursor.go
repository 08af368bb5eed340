package store

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/fault"
)

// Page asks for one page of a list ordered by (created_at, id).
type Page struct {
	Limit  int
	Cursor string // opaque, from a previous page's next cursor; "" for the first
}

// ErrBadCursor marks a cursor that was not made by this API.
var ErrBadCursor = fmt.Errorf("store: malformed cursor: %w", fault.ErrInvalid)

type cursorKey struct {
	T  time.Time `json:"t"`
	ID uuid.UUID `json:"i"`
}

func encodeCursor(t time.Time, id uuid.UUID) string {
	b, _ := json.Marshal(cursorKey{T: t.UTC(), ID: id})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the position after which the page starts; the zero
// position (and ok false) for the first page.
func decodeCursor(c string) (cursorKey, bool, error) {
	if c == "" {
		return cursorKey{}, false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) > 200 {
		return cursorKey{}, false, ErrBadCursor
	}
	var k cursorKey
	if err := json.Unmarshal(b, &k); err != nil || k.ID == uuid.Nil {
		return cursorKey{}, false, ErrBadCursor
	}
	return k, true, nil
}
