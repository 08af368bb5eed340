package server

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/fault"
)

// The authorization matrix: every route registered on the router × every
// kind of actor × every kind of object, each answered with the status the
// contract gives. A route without a matrix entry fails the test, so no
// route ships unchecked. A 404 for an object the actor may not see must be
// byte-identical to the 404 for an id that names nothing.

type actorKind string

const (
	anonymous        actorKind = "anonymous"
	owner            actorKind = "owner"
	viewGrantee      actorKind = "view-grantee"
	editGrantee      actorKind = "edit-grantee"
	adminGrantee     actorKind = "admin-grantee"
	revokedGrantee   actorKind = "revoked-grantee"
	ownersStudent    actorKind = "owners-student"
	unrelatedTeacher actorKind = "unrelated-teacher"
	unrelatedStudent actorKind = "unrelated-student"
	appAdmin         actorKind = "app-admin"
)

var allActors = []actorKind{anonymous, owner, viewGrantee, editGrantee, adminGrantee, revokedGrantee,
	ownersStudent, unrelatedTeacher, unrelatedStudent, appAdmin}

// roleOf gives each actor kind its account role.
var roleOf = map[actorKind]string{
	owner: "teacher", viewGrantee: "student", editGrantee: "student", adminGrantee: "teacher",
	revokedGrantee: "student", ownersStudent: "student", unrelatedTeacher: "teacher", unrelatedStudent: "student",
	appAdmin: "admin",
}

type objectKind string

const (
	own         objectKind = "own"         // the actor's own object
	granted     objectKind = "granted"     // the owner's object, reachable by the actor through a grant or relationship
	foreign     objectKind = "foreign"     // the owner's object the actor has no part in
	nonexistent objectKind = "nonexistent" // an id that names nothing
	noObject    objectKind = "-"           // the route names no object
)

type matrixWorld struct {
	a        *testAPI
	sessions map[actorKind]sessionResponse
	// ownerStudentRel links the owner and the owner's student.
	ownerStudentRel uuid.UUID
	// grantTarget is a user, no actor, whom grants in cells name.
	grantTarget uuid.UUID
	seq         int
}

func (w *matrixWorld) token(k actorKind) string { return w.sessions[k].AccessToken }
func (w *matrixWorld) user(k actorKind) uuid.UUID {
	return w.sessions[k].User.ID
}

func (w *matrixWorld) fresh(prefix string) string {
	w.seq++
	return fmt.Sprintf("%s-%d@example.com", prefix, w.seq)
}

// freshStudent registers a student no one is linked to yet.
func (w *matrixWorld) freshStudent() uuid.UUID {
	return w.a.register(w.fresh("pupil"), "student").User.ID
}

// relationshipOf makes a relationship the actor is part of.
func (w *matrixWorld) relationshipOf(k actorKind) uuid.UUID {
	var teacher, student uuid.UUID
	switch roleOf[k] {
	case "teacher":
		teacher, student = w.user(k), w.freshStudent()
	case "student":
		t := w.a.register(w.fresh("teacher"), "teacher")
		teacher, student = t.User.ID, w.user(k)
	default: // admins are in no relationship; theirs is one they may manage
		teacher, student = w.user(owner), w.freshStudent()
	}
	r, err := w.a.store.CreateRelationship(t0(), teacher, student)
	if err != nil {
		w.a.t.Fatal(err)
	}
	return r.ID
}

type matrixRequest struct {
	method, path string
	body         any
	token        string   // "" for none
	header       []string // extra header pairs
}

type routeSpec struct {
	objects []objectKind
	request func(w *matrixWorld, a actorKind, o objectKind) matrixRequest
	want    func(a actorKind, o objectKind) int
}

func bearer(w *matrixWorld, a actorKind) string {
	if a == anonymous {
		return ""
	}
	return w.token(a)
}

func authed(status int) func(actorKind, objectKind) int {
	return func(a actorKind, _ objectKind) int {
		if a == anonymous {
			return 401
		}
		return status
	}
}

func public(status int) func(actorKind, objectKind) int {
	return func(actorKind, objectKind) int { return status }
}

func get(path string) func(*matrixWorld, actorKind, objectKind) matrixRequest {
	return func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
		return matrixRequest{method: "GET", path: path, token: bearer(w, a)}
	}
}

// matrix holds one entry per route.
var matrix = map[string]routeSpec{
	"GET /metrics":            {objects: []objectKind{noObject}, request: get("/metrics"), want: public(200)},
	"GET /api/health":         {objects: []objectKind{noObject}, request: get("/api/health"), want: public(200)},
	"GET /api/ready":          {objects: []objectKind{noObject}, request: get("/api/ready"), want: public(200)},
	"GET /api/openapi.json":   {objects: []objectKind{noObject}, request: get("/api/openapi.json"), want: public(200)},
	"GET /api/auth/jwks.json": {objects: []objectKind{noObject}, request: get("/api/auth/jwks.json"), want: public(200)},
	"POST /api/auth/register": {
		objects: []objectKind{noObject},
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "POST", path: "/api/auth/register", token: bearer(w, a),
				body: map[string]string{"email": w.fresh("new"), "password": "correct horse battery", "display_name": "N", "role": "student"}}
		},
		want: public(201),
	},
	"POST /api/auth/login": {
		objects: []objectKind{own},
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			email := "nobody@example.com"
			if a != anonymous {
				email = w.sessions[a].User.Email
			}
			return matrixRequest{method: "POST", path: "/api/auth/login", body: map[string]string{"email": email, "password": "correct horse battery"}}
		},
		want: authed(200),
	},
	"POST /api/auth/refresh": {
		objects: []objectKind{own},
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "POST", path: "/api/auth/refresh", body: map[string]string{"refresh_token": w.loginRefresh(a)}}
		},
		want: authed(200),
	},
	"POST /api/auth/logout": {
		objects: []objectKind{own},
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "POST", path: "/api/auth/logout", body: map[string]string{"refresh_token": w.loginRefresh(a)}}
		},
		want: authed(204),
	},
	"GET /api/auth/me":       {objects: []objectKind{noObject}, request: get("/api/auth/me"), want: authed(200)},
	"GET /api/relationships": {objects: []objectKind{noObject}, request: get("/api/relationships"), want: authed(200)},
	"POST /api/relationships": {
		// own: a fresh student for the actor; nonexistent: a student id that names nothing.
		objects: []objectKind{own, nonexistent},
		request: func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
			student := uuid.New()
			if o == own {
				student = w.freshStudent()
			}
			body := map[string]any{"student_id": student}
			if a == appAdmin {
				body["teacher_id"] = w.user(owner)
			}
			return matrixRequest{method: "POST", path: "/api/relationships", body: body, token: bearer(w, a)}
		},
		want: func(a actorKind, o objectKind) int {
			switch {
			case a == anonymous:
				return 401
			case roleOf[a] == "student":
				return 403
			case o == nonexistent:
				return 404
			}
			return 201
		},
	},
	"DELETE /api/relationships/{id}": {
		// own: one the actor is part of; granted: the owner–student link
		// (the owner's student is part of it); foreign: the same link, for
		// everyone else; nonexistent.
		objects: []objectKind{own, granted, foreign, nonexistent},
		request: func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
			var id uuid.UUID
			switch o {
			case own:
				id = w.relationshipOf(a)
			case granted, foreign:
				id = w.ownerStudentLink()
			default:
				id = uuid.New()
			}
			return matrixRequest{method: "DELETE", path: "/api/relationships/" + id.String(), token: bearer(w, a)}
		},
		want: func(a actorKind, o objectKind) int {
			switch {
			case a == anonymous:
				return 401
			case o == nonexistent:
				return 404
			case o == own:
				return 204
			case a == owner || a == ownersStudent || a == appAdmin: // parties to the link (or admin)
				return 204
			}
			return 404
		},
	},
}

// ownerStudentLink returns the owner–student relationship, making it again
// when an earlier cell deleted it.
func (w *matrixWorld) ownerStudentLink() uuid.UUID {
	r, err := w.a.store.CreateRelationship(t0(), w.user(owner), w.user(ownersStudent))
	switch {
	case err == nil:
		w.ownerStudentRel = r.ID
	case !errors.Is(err, fault.ErrConflict):
		w.a.t.Fatal(err)
	}
	return w.ownerStudentRel
}

// loginRefresh signs the actor in afresh and returns the refresh token, so
// each refresh or logout spends a token of its own; anonymous gets one that
// names nothing.
func (w *matrixWorld) loginRefresh(a actorKind) string {
	if a == anonymous {
		return "srt_" + strings.Repeat("Z", 43)
	}
	r := w.a.mustStatus(w.a.call("POST", "/api/auth/login", "", map[string]string{"email": w.sessions[a].User.Email, "password": "correct horse battery"}), 200)
	var s sessionResponse
	r.decode(w.a.t, &s)
	return s.RefreshToken
}

func newMatrixWorld(t *testing.T) *matrixWorld {
	a := newAPI(t, func(c *auth.Config, _ *auth.SupabaseConfig) {
		c.PairThrottle.Limit, c.IPThrottle.Limit, c.AccountThrottle.Limit = 1<<20, 1<<20, 1<<20
	})
	w := &matrixWorld{a: a, sessions: map[actorKind]sessionResponse{}}
	for _, k := range allActors {
		switch k {
		case anonymous:
		case appAdmin:
			w.sessions[k] = a.admin(string(k) + "@example.com")
		default:
			w.sessions[k] = a.register(string(k)+"@example.com", roleOf[k])
		}
	}
	rel, err := a.store.CreateRelationship(t0(), w.user(owner), w.user(ownersStudent))
	if err != nil {
		t.Fatal(err)
	}
	w.ownerStudentRel = rel.ID
	w.grantTarget = a.register("grant-target@example.com", "student").User.ID
	return w
}

func TestAuthorizationMatrix(t *testing.T) {
	start := time.Now()
	w := newMatrixWorld(t)
	s, _ := newTestServer(t, nil)
	var routes []string
	chi.Walk(s.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, method+" "+strings.TrimSuffix(route, "/"))
		return nil
	})
	sort.Strings(routes)
	cells := 0
	for _, route := range routes {
		spec, ok := matrix[route]
		if !ok {
			t.Errorf("route %s has no rows in the authorization matrix", route)
			continue
		}
		// The 404 body for a nonexistent object, per actor, to compare
		// hidden objects against.
		notFound := map[actorKind][]byte{}
		for _, o := range spec.objects {
			for _, a := range allActors {
				cells++
				req := spec.request(w, a, o)
				r := w.a.call(req.method, req.path, req.token, req.body, req.header...)
				want := spec.want(a, o)
				if r.status != want {
					t.Errorf("%s as %s on %s object: %d, want %d: %s", route, a, o, r.status, want, r.body)
					continue
				}
				if r.status >= 400 {
					r.problem(t)
				}
				if r.status == 404 {
					if o == nonexistent {
						notFound[a] = r.body
					} else if nf, ok := notFound[a]; ok && !bytes.Equal(nf, r.body) {
						t.Errorf("%s as %s on %s object: 404 body %s differs from a nonexistent id's %s", route, a, o, r.body, nf)
					}
				}
			}
		}
	}
	for route := range matrix {
		if !contains(routes, route) {
			t.Errorf("the matrix has rows for %s, which is not registered", route)
		}
	}
	t.Logf("authorization matrix: %d routes, %d actors, %d cells in %v", len(routes), len(allActors), cells, time.Since(start).Round(time.Millisecond))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// List answers never include what the actor may not see.
func TestRelationshipListsLeakNothing(t *testing.T) {
	w := newMatrixWorld(t)
	for _, a := range allActors[1:] {
		var l List[relationshipResponse]
		w.a.mustStatus(w.a.call("GET", "/api/relationships?limit=100", w.token(a), nil), 200).decode(t, &l)
		for _, r := range l.Items {
			if a != appAdmin && r.TeacherID != w.user(a) && r.StudentID != w.user(a) {
				t.Errorf("%s sees relationship %s it is not part of", a, r.ID)
			}
		}
		wantOwn := a == owner || a == ownersStudent || a == appAdmin
		if (len(l.Items) > 0) != wantOwn {
			t.Errorf("%s sees %d relationships", a, len(l.Items))
		}
	}
}
