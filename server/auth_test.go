package server

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/store"
)

func TestSessionLifecycle(t *testing.T) {
	a := newAPI(t)
	s := a.register("  Clara.Wieck@Example.com ", "teacher")
	if s.User.Email != "clara.wieck@example.com" || s.User.Role != "teacher" || s.TokenType != "Bearer" || s.ExpiresIn != 3600 ||
		s.AccessToken == "" || s.RefreshToken == "" {
		t.Fatalf("session %+v", s)
	}
	var me userResponse
	a.mustStatus(a.call("GET", "/api/auth/me", s.AccessToken, nil), 200).decode(t, &me)
	if me != s.User {
		t.Errorf("me = %+v, want %+v", me, s.User)
	}
	// Login is case-insensitive on the email.
	var l sessionResponse
	a.mustStatus(a.call("POST", "/api/auth/login", "", map[string]string{"email": "CLARA.WIECK@example.com", "password": "correct horse battery"}), 200).decode(t, &l)
	if l.User.ID != s.User.ID {
		t.Errorf("login user %v", l.User.ID)
	}
	// Refresh: a new pair; the old refresh token is spent.
	var r sessionResponse
	a.mustStatus(a.call("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": l.RefreshToken}), 200).decode(t, &r)
	if r.RefreshToken == l.RefreshToken || r.AccessToken == "" {
		t.Error("refresh did not rotate the refresh token")
	}
	a.mustStatus(a.call("GET", "/api/auth/me", r.AccessToken, nil), 200)
	// Logout ends the session: refresh token and access tokens of that login.
	a.mustStatus(a.call("POST", "/api/auth/logout", "", map[string]string{"refresh_token": r.RefreshToken}), 204)
	a.mustStatus(a.call("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": r.RefreshToken}), 401)
	a.mustStatus(a.call("GET", "/api/auth/me", r.AccessToken, nil), 401)
	a.mustStatus(a.call("GET", "/api/auth/me", l.AccessToken, nil), 401) // same login, earlier token
	// The first session (register) is a different login and lives on.
	a.mustStatus(a.call("GET", "/api/auth/me", s.AccessToken, nil), 200)
	// Logout of an unknown token.
	a.mustStatus(a.call("POST", "/api/auth/logout", "", map[string]string{"refresh_token": "srt_" + strings.Repeat("x", 43)}), 401)
}

func TestRegisterValidation(t *testing.T) {
	a := newAPI(t)
	a.register("taken@example.com", "student")
	cases := []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"bad email", map[string]string{"email": "nope", "password": "correct horse", "display_name": "A", "role": "student"}, 400, "email"},
		{"short password", map[string]string{"email": "a@example.com", "password": "short", "display_name": "A", "role": "student"}, 400, "password"},
		{"long password", map[string]string{"email": "a@example.com", "password": strings.Repeat("p", 257), "display_name": "A", "role": "student"}, 400, "password"},
		{"admin role", map[string]string{"email": "a@example.com", "password": "correct horse", "display_name": "A", "role": "admin"}, 400, "role"},
		{"no role", map[string]string{"email": "a@example.com", "password": "correct horse", "display_name": "A"}, 400, "role"},
		{"blank name", map[string]string{"email": "a@example.com", "password": "correct horse", "display_name": "   ", "role": "student"}, 400, "display_name"},
		{"unknown field", map[string]any{"email": "a@example.com", "password": "correct horse", "display_name": "A", "role": "student", "is_admin": true}, 400, "is_admin"},
		{"taken, other case", map[string]string{"email": "TAKEN@example.com", "password": "correct horse", "display_name": "A", "role": "student"}, 409, ""},
		{"not json", "email=a", 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := a.call("POST", "/api/auth/register", "", tc.body)
			p := r.problem(t)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.field != "" && !slices.ContainsFunc(p.Errors, func(f FieldError) bool { return f.Field == tc.field }) {
				t.Errorf("errors %+v lack field %q", p.Errors, tc.field)
			}
		})
	}
	var n int
	a.ownerPool().QueryRow(context.Background(), "SELECT count(*) FROM users").Scan(&n)
	if n != 1 {
		t.Errorf("%d users after rejected sign-ups, want 1: bad input changed something", n)
	}
}

// An unknown email and a wrong password answer the same 401, and cost about
// the same (the unknown email is checked against a dummy hash).
func TestLoginFailuresIndistinguishable(t *testing.T) {
	a := newAPI(t, func(c *auth.Config, _ *auth.SupabaseConfig) {
		c.Hash = auth.DefaultHashParams
		c.PairThrottle.Limit, c.IPThrottle.Limit, c.AccountThrottle.Limit = 1000, 1000, 1000
	})
	a.register("known@example.com", "student")
	wrong := a.call("POST", "/api/auth/login", "", map[string]string{"email": "known@example.com", "password": "wrong password"})
	unknown := a.call("POST", "/api/auth/login", "", map[string]string{"email": "nobody@example.com", "password": "wrong password"})
	if wrong.status != 401 || unknown.status != 401 || string(wrong.body) != string(unknown.body) {
		t.Fatalf("wrong password %d %s vs unknown email %d %s", wrong.status, wrong.body, unknown.status, unknown.body)
	}
	if wrong.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	median := func(email string) time.Duration {
		var ds []time.Duration
		for range 7 {
			start := time.Now()
			a.call("POST", "/api/auth/login", "", map[string]string{"email": email, "password": "wrong password"})
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	dw, du := median("known@example.com"), median("nobody@example.com")
	t.Logf("median login time: wrong password %v, unknown email %v", dw, du)
	if du < dw/3 || dw < du/3 {
		t.Errorf("timings differ by more than 3×: wrong password %v, unknown email %v", dw, du)
	}
}

func TestLoginThrottle(t *testing.T) {
	a := newAPI(t, func(c *auth.Config, _ *auth.SupabaseConfig) {
		c.PairThrottle = store.ThrottlePolicy{Limit: 3, Window: time.Minute, Base: 30 * time.Second, Max: time.Minute}
		c.IPThrottle = store.ThrottlePolicy{Limit: 8, Window: time.Minute, Base: 30 * time.Second, Max: time.Minute}
	})
	a.register("victim@example.com", "student")
	a.register("other@example.com", "student")
	login := func(email, pw string) response {
		return a.call("POST", "/api/auth/login", "", map[string]string{"email": email, "password": pw})
	}
	for i := range 2 {
		a.mustStatus(login("victim@example.com", "bad guess "+strconv.Itoa(i)), 401)
	}
	r := login("victim@example.com", "bad guess 3")
	if r.status != 429 || r.problem(t).Code != CodeRateLimited {
		t.Fatalf("third failure: %d %s", r.status, r.body)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	// Blocked: even the right password waits, from this address.
	if r := login("victim@example.com", "correct horse battery"); r.status != 429 {
		t.Errorf("right password while blocked: %d", r.status)
	}
	// Per address: failures across accounts add up.
	for i := range 5 {
		login("nobody"+strconv.Itoa(i)+"@example.com", "x")
	}
	if r := login("other@example.com", "correct horse battery"); r.status != 429 {
		t.Errorf("login from a throttled address: %d %s", r.status, r.body)
	}
}

// Replaying a spent refresh token revokes its whole family.
func TestRefreshReplayRevokesFamily(t *testing.T) {
	a := newAPI(t)
	s := a.register("replay@example.com", "student")
	var s2 sessionResponse
	a.mustStatus(a.call("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": s.RefreshToken}), 200).decode(t, &s2)
	a.mustStatus(a.call("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": s.RefreshToken}), 401)
	// The thief's replay burned the legitimate successor too.
	a.mustStatus(a.call("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": s2.RefreshToken}), 401)
	a.mustStatus(a.call("GET", "/api/auth/me", s2.AccessToken, nil), 401)
	var revoked, total int
	a.ownerPool().QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE revoked_at IS NOT NULL), count(*) FROM refresh_tokens`).Scan(&revoked, &total)
	if revoked != total || total != 2 {
		t.Errorf("%d of %d tokens revoked, want all of 2", revoked, total)
	}
}

// Two (here ten) racing refreshes of one token: exactly one wins.
func TestRacingRefresh(t *testing.T) {
	a := newAPI(t)
	s := a.register("race@example.com", "student")
	const n = 10
	var wg sync.WaitGroup
	statuses := make([]int, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i] = a.call("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": s.RefreshToken}).status
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for _, st := range statuses {
		switch st {
		case 200:
			won++
		case 401:
		default:
			t.Errorf("status %d", st)
		}
	}
	if won != 1 {
		t.Errorf("%d refreshes won (%v), want exactly 1", won, statuses)
	}
}

func TestBearerRequired(t *testing.T) {
	a := newAPI(t)
	s := a.register("bearer@example.com", "student")
	for name, hdr := range map[string]string{
		"none":          "",
		"basic":         "Basic dXNlcjpwYXNz",
		"empty bearer":  "Bearer ",
		"garbage":       "Bearer abc.def.ghi",
		"refresh token": "Bearer " + s.RefreshToken,
		"64 KiB":        "Bearer " + strings.Repeat("a", 64<<10-8),
	} {
		t.Run(name, func(t *testing.T) {
			r := a.call("GET", "/api/auth/me", "", nil, "Authorization", hdr)
			if r.status != 401 && !(name == "64 KiB" && r.status == http.StatusRequestHeaderFieldsTooLarge) {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if r.status == 401 && r.problem(t).Code != CodeUnauthenticated {
				t.Errorf("code %q", r.problem(t).Code)
			}
		})
	}
	// An access token of a deleted user stops working.
	a.ownerPool().Exec(context.Background(), "DELETE FROM users WHERE id = $1", s.User.ID)
	a.mustStatus(a.call("GET", "/api/auth/me", s.AccessToken, nil), 401)
}

// Roles are read from the database on every request, never from claims:
// demoting a user takes effect on its existing token.
func TestRoleReadFromDatabase(t *testing.T) {
	a := newAPI(t)
	s := a.register("promoted@example.com", "student")
	a.ownerPool().Exec(context.Background(), "UPDATE users SET role = 'admin' WHERE id = $1", s.User.ID)
	var me userResponse
	a.mustStatus(a.call("GET", "/api/auth/me", s.AccessToken, nil), 200).decode(t, &me)
	if me.Role != "admin" {
		t.Errorf("role %q after promotion in the database", me.Role)
	}
}

const sbTestIssuer = "https://demo.supabase.co/auth/v1"

var sbTestSecret = []byte("super-secret-jwt-token-with-at-least-32-characters-long")

// supabaseToken is a GoTrue access token of sub whose email is confirmed.
func supabaseToken(t *testing.T, sub, email string) string {
	t.Helper()
	return signGoTrue(t, goTrueClaims(sub, email, true))
}

// Supabase tokens are accepted when configured, and their users provisioned
// on first sight from sub and email.
func TestSupabaseProvisioning(t *testing.T) {
	a := newAPI(t, func(_ *auth.Config, sb *auth.SupabaseConfig) {
		sb.Issuer, sb.JWTSecret = sbTestIssuer, sbTestSecret
	})
	tok := supabaseToken(t, "11111111-2222-3333-4444-555555555555", "Fanny@Example.com")
	var first, second userResponse
	a.mustStatus(a.call("GET", "/api/auth/me", tok, nil), 200).decode(t, &first)
	a.mustStatus(a.call("GET", "/api/auth/me", tok, nil), 200).decode(t, &second)
	if first.ID != second.ID || first.Email != "fanny@example.com" || first.Role != "student" {
		t.Errorf("provisioned %+v then %+v", first, second)
	}
	// A Supabase account never takes over a password account's email.
	a.register("local@example.com", "teacher")
	a.mustStatus(a.call("GET", "/api/auth/me", supabaseToken(t, "other-sub", "local@example.com"), nil), 401)
	// Without Supabase configured, the same token is refused.
	b := newAPI(t)
	b.mustStatus(b.call("GET", "/api/auth/me", tok, nil), 401)
}
