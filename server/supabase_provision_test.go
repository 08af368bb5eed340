package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/store"
)

// goTrueClaims are the claims of an access token as Supabase Auth (GoTrue
// v2.196) issues it for an email sign-in; verified is user_metadata's
// email_verified, which GoTrue sets when the address is confirmed.
func goTrueClaims(sub, email string, verified bool) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": sbTestIssuer, "sub": sub, "aud": "authenticated",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
		"email": email, "phone": "", "role": "authenticated", "aal": "aal1",
		"amr":          []any{map[string]any{"method": "password", "timestamp": now.Unix()}},
		"session_id":   uuid.NewString(),
		"is_anonymous": false,
		"app_metadata": map[string]any{"provider": "email", "providers": []any{"email"}},
		"user_metadata": map[string]any{"email": email, "email_verified": verified,
			"phone_verified": false, "sub": sub},
	}
}

func signGoTrue(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(sbTestSecret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newSupabaseAPI(t *testing.T) *testAPI {
	return newAPI(t, func(_ *auth.Config, sb *auth.SupabaseConfig) {
		sb.Issuer, sb.JWTSecret = sbTestIssuer, sbTestSecret
	})
}

func (a *testAPI) usersWithEmail(email string) int {
	a.t.Helper()
	var n int
	if err := a.ownerPool().QueryRow(context.Background(), `SELECT count(*) FROM users WHERE email = $1`, email).Scan(&n); err != nil {
		a.t.Fatal(err)
	}
	return n
}

// A token whose email is not confirmed provisions nothing: 401
// email_unconfirmed, and no user row.
func TestSupabaseUnconfirmedEmailNotProvisioned(t *testing.T) {
	a := newSupabaseAPI(t)
	cases := []struct {
		name   string
		mutate func(jwt.MapClaims)
	}{
		{"user_metadata says unconfirmed", func(c jwt.MapClaims) {}},
		{"no email_verified anywhere", func(c jwt.MapClaims) { delete(c["user_metadata"].(map[string]any), "email_verified") }},
		{"no user_metadata", func(c jwt.MapClaims) { delete(c, "user_metadata") }},
		{"top-level claim says unconfirmed", func(c jwt.MapClaims) {
			c["user_metadata"].(map[string]any)["email_verified"] = true
			c["email_verified"] = false
		}},
		{"anonymous", func(c jwt.MapClaims) {
			c["user_metadata"].(map[string]any)["email_verified"] = true
			c["is_anonymous"] = true
		}},
		{"email_verified not a boolean", func(c jwt.MapClaims) { c["user_metadata"].(map[string]any)["email_verified"] = "true" }},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			email := fmt.Sprintf("unconfirmed%d@example.com", i)
			c := goTrueClaims(uuid.NewString(), email, false)
			tc.mutate(c)
			r := a.call("GET", "/api/auth/me", signGoTrue(t, c), nil)
			if r.status != 401 || r.problem(t).Code != CodeEmailUnconfirmed {
				t.Fatalf("status %d, want 401 %s: %s", r.status, CodeEmailUnconfirmed, r.body)
			}
			if n := a.usersWithEmail(email); n != 0 {
				t.Fatalf("%d user rows for an unconfirmed email", n)
			}
		})
	}
}

// A confirmed token provisions its user once, mapped by sub; later tokens
// of that sub keep working even when they no longer say confirmed (the
// account exists already), and a top-level email_verified (a custom access
// token hook) counts too.
func TestSupabaseConfirmedEmailProvisioned(t *testing.T) {
	a := newSupabaseAPI(t)
	sub := uuid.NewString()
	var first, again userResponse
	a.mustStatus(a.call("GET", "/api/auth/me", signGoTrue(t, goTrueClaims(sub, "Clara@Example.com", true)), nil), 200).decode(t, &first)
	if first.Email != "clara@example.com" || first.Role != store.RoleStudent {
		t.Fatalf("provisioned %+v", first)
	}
	a.mustStatus(a.call("GET", "/api/auth/me", signGoTrue(t, goTrueClaims(sub, "clara@example.com", false)), nil), 200).decode(t, &again)
	if again.ID != first.ID || a.usersWithEmail("clara@example.com") != 1 {
		t.Fatalf("second token of the same sub: %+v, %d rows", again, a.usersWithEmail("clara@example.com"))
	}
	var subject string
	a.ownerPool().QueryRow(context.Background(), `SELECT external_subject FROM users WHERE id = $1`, first.ID).Scan(&subject)
	if subject != sub {
		t.Errorf("external_subject %q, want %q", subject, sub)
	}
	hook := goTrueClaims(uuid.NewString(), "robert@example.com", false)
	delete(hook["user_metadata"].(map[string]any), "email_verified")
	hook["email_verified"] = true
	a.mustStatus(a.call("GET", "/api/auth/me", signGoTrue(t, hook), nil), 200)
}

// A Supabase token never attaches to an existing password account by email,
// confirmed or not, in any letter case: it is refused, and the password
// account stays as it was.
func TestSupabaseNeverLinksByEmail(t *testing.T) {
	a := newSupabaseAPI(t)
	local := a.register("local@example.com", "teacher")
	for _, email := range []string{"local@example.com", "LOCAL@Example.com"} {
		r := a.call("GET", "/api/auth/me", signGoTrue(t, goTrueClaims(uuid.NewString(), email, true)), nil)
		if r.status != 401 || r.problem(t).Code != CodeUnauthenticated {
			t.Fatalf("token for %s: %d %s", email, r.status, r.body)
		}
	}
	var subject *string
	a.ownerPool().QueryRow(context.Background(), `SELECT external_subject FROM users WHERE id = $1`, local.User.ID).Scan(&subject)
	if subject != nil || a.usersWithEmail("local@example.com") != 1 {
		t.Fatalf("password account linked (subject %v) or duplicated (%d rows)", subject, a.usersWithEmail("local@example.com"))
	}
	a.mustStatus(a.call("POST", "/api/auth/login", "", map[string]string{"email": "local@example.com", "password": rightPassword}), 200)
}
