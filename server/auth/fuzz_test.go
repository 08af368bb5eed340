package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// FuzzVerifyAccess: no string but a token this service signed is
// accepted; the others fail with ErrInvalidToken, never a panic.
func FuzzVerifyAccess(f *testing.F) {
	k := mustEd25519(f)
	tk, _ := newTokens(f, k)
	good, _, _ := tk.IssueAccess(uuid.New(), uuid.New())
	parts := strings.Split(good, ".")
	for _, s := range []string{good, parts[0] + "." + parts[1] + ".", parts[0] + ".e30." + parts[2], "eyJhbGciOiJub25lIn0.e30.",
		"a.b.c", "", strings.Repeat("A", 5000), parts[0] + "." + parts[1] + "." + parts[2] + "x",
		`eyJhbGciOiJIUzI1NiIsImtpZCI6IiJ9.e30.AAAA`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := tk.VerifyAccess(raw)
		if err == nil {
			if raw != good {
				t.Fatalf("accepted a token this service did not issue: %q → %+v", raw, v)
			}
			return
		}
		if !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("error %v is not ErrInvalidToken", err)
		}
	})
}
