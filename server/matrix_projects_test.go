package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/access"
	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// Matrix rows of projects, grants, annotations and the local blob URLs.
// Every cell gets fresh objects, made directly in the database (as the
// table owner) with their PDF in the blob store:
//   own      — a project the actor owns (for anonymous: the owner's);
//   granted  — the owner's project, granted view / edit / admin to the
//              grantees (and once to the revoked grantee, since revoked);
//   foreign  — the owner's project with no grants;
//   nonexistent.

var matrixPDF = pdftest.Pages(2)

// permOn is what each actor holds on each kind of project.
func permOn(a actorKind, o objectKind) access.Permission {
	switch {
	case o == nonexistent || a == anonymous:
		return access.None
	case o == own || a == owner || a == appAdmin:
		return access.Admin
	case o == foreign:
		return access.None
	}
	switch a {
	case viewGrantee:
		return access.View
	case editGrantee:
		return access.Edit
	case adminGrantee:
		return access.Admin
	}
	return access.None
}

// needs gives a route's expected status: 401 anonymous, 404 without
// access, 403 below need, else ok.
func needs(need access.Permission, ok int) func(actorKind, objectKind) int {
	return func(a actorKind, o objectKind) int {
		p := permOn(a, o)
		switch {
		case a == anonymous:
			return 401
		case p == access.None:
			return 404
		case p < need:
			return 403
		}
		return ok
	}
}

// matrixProject makes a project of kind o for actor a; ready with its PDF
// stored unless pending.
func (w *matrixWorld) matrixProject(a actorKind, o objectKind, pending bool) uuid.UUID {
	if o == nonexistent {
		return uuid.New()
	}
	ctx := context.Background()
	ownerID := w.user(owner)
	if o == own && a != anonymous {
		ownerID = w.user(a)
	}
	id := uuid.New()
	key := fmt.Sprintf("projects/%s/%s.pdf", id, uuid.New())
	w.putObject(key)
	info, err := w.a.blob.Stat(ctx, key)
	if err != nil {
		w.a.t.Fatal(err)
	}
	status, size, pages := "ready", &info.Size, 2
	var pagesPtr *int = &pages
	if pending {
		status, size, pagesPtr = "pending_upload", nil, nil
	}
	w.exec(`INSERT INTO projects (id, owner_id, title, filename, object_key, status, file_size_bytes, page_count, etag)
		VALUES ($1, $2, 'Matrix', 'matrix.pdf', $3, $4, $5, $6, $7)`, id, ownerID, key, status, size, pagesPtr, info.ETag)
	if o == granted {
		for k, perm := range map[actorKind]string{viewGrantee: "view", editGrantee: "edit", adminGrantee: "admin", revokedGrantee: "view"} {
			w.exec(`INSERT INTO project_grants (project_id, user_id, permission, granted_by) VALUES ($1, $2, $3, $4)`, id, w.user(k), perm, ownerID)
		}
		w.exec(`DELETE FROM project_grants WHERE project_id = $1 AND user_id = $2`, id, w.user(revokedGrantee))
	}
	return id
}

// matrixAnnotation makes an annotation on a fresh project of kind o: by
// the actor on its own project, else by the owner.
func (w *matrixWorld) matrixAnnotation(a actorKind, o objectKind) uuid.UUID {
	if o == nonexistent {
		return uuid.New()
	}
	p := w.matrixProject(a, o, false)
	author := w.user(owner)
	if o == own && a != anonymous {
		author = w.user(a)
	}
	id := uuid.New()
	w.exec(`INSERT INTO annotations (id, project_id, author_id, page, type, content) VALUES ($1, $2, $3, 1, 'note', '{"text":"x","x":0.5,"y":0.5}')`, id, p, author)
	return id
}

func (w *matrixWorld) putObject(key string) {
	up, err := w.a.blob.PresignPut(context.Background(), key, pdfContentType, 1<<20, time.Minute)
	if err != nil {
		w.a.t.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", up.URL, bytes.NewReader(matrixPDF))
	req.Header.Set("Content-Type", pdfContentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		w.a.t.Fatalf("put object: %v %v", resp, err)
	}
	resp.Body.Close()
}

func (w *matrixWorld) exec(sql string, args ...any) {
	if _, err := w.a.db.Pool.Exec(context.Background(), sql, args...); err != nil {
		w.a.t.Fatalf("%s: %v", sql, err)
	}
}

var projectObjects = []objectKind{own, granted, foreign, nonexistent}

func projectReq(method, suffix string, body func(w *matrixWorld, a actorKind, p uuid.UUID) any) func(*matrixWorld, actorKind, objectKind) matrixRequest {
	return func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
		p := w.matrixProject(a, o, suffix == "/confirm")
		var b any
		if body != nil {
			b = body(w, a, p)
		}
		return matrixRequest{method: method, path: "/api/projects/" + p.String() + suffix, body: b, token: bearer(w, a)}
	}
}

func annotationReq(method string, body any, hdr ...string) func(*matrixWorld, actorKind, objectKind) matrixRequest {
	return func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
		return matrixRequest{method: method, path: "/api/annotations/" + w.matrixAnnotation(a, o).String(), body: body, token: bearer(w, a), header: hdr}
	}
}

// annotationWrite: the author (own objects) or a project admin changes it;
// viewers and editors who are not its author get 403.
func annotationWrite(ok int) func(actorKind, objectKind) int { return needs(access.Admin, ok) }

func init() {
	rows := map[string]routeSpec{
		"POST /api/projects": {
			objects: []objectKind{noObject},
			request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
				return matrixRequest{method: "POST", path: "/api/projects", body: map[string]any{"title": "New", "filename": "new.pdf"}, token: bearer(w, a)}
			},
			want: func(a actorKind, _ objectKind) int {
				switch {
				case a == anonymous:
					return 401
				case roleOf[a] == "student":
					return 403
				}
				return 201
			},
		},
		"GET /api/projects":             {objects: []objectKind{noObject}, request: get("/api/projects"), want: authed(200)},
		"GET /api/projects/{id}":        {objects: projectObjects, request: projectReq("GET", "", nil), want: needs(access.View, 200)},
		"GET /api/projects/{id}/stream": {objects: projectObjects, request: projectReq("GET", "/stream", nil), want: needs(access.View, 200)},
		"GET /api/projects/{id}/object": {objects: projectObjects, request: projectReq("GET", "/object", nil), want: needs(access.View, 200)},
		"PATCH /api/projects/{id}": {objects: projectObjects, want: needs(access.Edit, 200),
			request: projectReq("PATCH", "", func(*matrixWorld, actorKind, uuid.UUID) any { return map[string]string{"description": "changed"} })},
		"DELETE /api/projects/{id}":       {objects: projectObjects, request: projectReq("DELETE", "", nil), want: needs(access.Admin, 204)},
		"POST /api/projects/{id}/confirm": {objects: projectObjects, request: projectReq("POST", "/confirm", nil), want: needs(access.Admin, 200)},
		"GET /api/projects/{id}/access":   {objects: projectObjects, request: projectReq("GET", "/access", nil), want: needs(access.Admin, 200)},
		"POST /api/projects/{id}/access": {objects: projectObjects, want: needs(access.Admin, 201),
			request: projectReq("POST", "/access", func(w *matrixWorld, _ actorKind, _ uuid.UUID) any {
				return map[string]any{"user_id": w.grantTarget, "permission": "view"}
			})},
		// On the foreign project there is no grant to revoke: 404 for those
		// who may manage it, like for everyone else.
		"DELETE /api/projects/{id}/access/{user_id}": {objects: []objectKind{granted, foreign, nonexistent},
			want: func(a actorKind, o objectKind) int {
				if o == foreign && a != anonymous {
					return 404
				}
				return needs(access.Admin, 204)(a, o)
			},
			request: func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
				p := w.matrixProject(a, o, false)
				return matrixRequest{method: "DELETE", path: "/api/projects/" + p.String() + "/access/" + w.user(viewGrantee).String(), token: bearer(w, a)}
			}},
		"POST /api/annotations": {objects: projectObjects, want: needs(access.Edit, 201),
			request: func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
				return matrixRequest{method: "POST", path: "/api/annotations", token: bearer(w, a),
					body: map[string]any{"project_id": w.matrixProject(a, o, false), "page": 1, "type": "note", "content": map[string]any{"text": "x", "x": 0.2, "y": 0.3}}}
			}},
		"GET /api/annotations": {objects: projectObjects, want: needs(access.View, 200),
			request: func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
				return matrixRequest{method: "GET", path: "/api/annotations?project_id=" + w.matrixProject(a, o, false).String(), token: bearer(w, a)}
			}},
		"GET /api/annotations/{id}":    {objects: projectObjects, request: annotationReq("GET", nil), want: needs(access.View, 200)},
		"PATCH /api/annotations/{id}":  {objects: projectObjects, request: annotationReq("PATCH", map[string]any{"page": 2}, "If-Match", `"1"`), want: annotationWrite(200)},
		"DELETE /api/annotations/{id}": {objects: projectObjects, request: annotationReq("DELETE", nil), want: annotationWrite(204)},
		// The local blob store's URLs: the signature is the authorization,
		// whoever sends it; without a valid one, 403 for everyone.
		"PUT /api/blob": {objects: []objectKind{own, nonexistent},
			request: func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
				up, _ := w.a.blob.PresignPut(context.Background(), "projects/m/"+uuid.NewString()+".pdf", pdfContentType, 1<<20, time.Minute)
				if o == nonexistent {
					up.URL = up.URL[:len(up.URL)-8] + "00000000"
				}
				return matrixRequest{method: "PUT", path: up.URL[len(w.a.url):], body: string(matrixPDF), token: bearer(w, a), header: []string{"Content-Type", pdfContentType}}
			},
			want: func(_ actorKind, o objectKind) int { return map[objectKind]int{own: 200, nonexistent: 403}[o] }},
		"GET /api/blob": {objects: []objectKind{own, nonexistent},
			request: func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
				key := "projects/m/" + uuid.NewString() + ".pdf"
				w.putObject(key)
				d, _ := w.a.blob.PresignGet(context.Background(), key, "m.pdf", pdfContentType, time.Minute)
				if o == nonexistent {
					d.URL = d.URL[:len(d.URL)-8] + "00000000"
				}
				return matrixRequest{method: "GET", path: d.URL[len(w.a.url):], token: bearer(w, a)}
			},
			want: func(_ actorKind, o objectKind) int { return map[objectKind]int{own: 200, nonexistent: 403}[o] }},
	}
	for k, v := range rows {
		matrix[k] = v
	}
}

// Project lists never include what the actor may not see.
func TestProjectListsLeakNothing(t *testing.T) {
	w := newMatrixWorld(t)
	g := w.matrixProject(owner, granted, false)
	f := w.matrixProject(owner, foreign, false)
	for _, a := range allActors[1:] {
		var l List[projectResponse]
		w.a.mustStatus(w.a.call("GET", "/api/projects?limit=100", w.token(a), nil), 200).decode(t, &l)
		seen := map[uuid.UUID]bool{}
		for _, p := range l.Items {
			seen[p.ID] = true
		}
		if seen[g] != (permOn(a, granted) != access.None) || seen[f] != (permOn(a, foreign) != access.None) {
			t.Errorf("%s lists granted=%v foreign=%v", a, seen[g], seen[f])
		}
		if len(l.Items) != len(seen) || (len(l.Items) > 2) {
			t.Errorf("%s lists %d projects", a, len(l.Items))
		}
	}
}
