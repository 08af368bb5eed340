package server

import (
	"github.com/google/uuid"
)

// Matrix rows of the knowledge base. Objects: own — a document the actor
// owns; granted — the owner's public document; foreign — the owner's
// private document (which the owner's students may see); nonexistent.

// seesDocument says whether the actor may see a document of kind o.
func seesDocument(a actorKind, o objectKind) bool {
	switch o {
	case own, granted:
		return true
	case foreign:
		return a == owner || a == ownersStudent || a == appAdmin
	}
	return false
}

func managesDocument(a actorKind, o objectKind) bool {
	return o == own || (o != nonexistent && (a == owner || a == appAdmin))
}

func documentView(ok int) func(actorKind, objectKind) int {
	return func(a actorKind, o objectKind) int {
		switch {
		case a == anonymous:
			return 401
		case !seesDocument(a, o):
			return 404
		}
		return ok
	}
}

func documentManage(ok int) func(actorKind, objectKind) int {
	return func(a actorKind, o objectKind) int {
		switch {
		case a == anonymous:
			return 401
		case !seesDocument(a, o):
			return 404
		case !managesDocument(a, o):
			return 403
		}
		return ok
	}
}

// matrixDocument makes a fresh text document of kind o for actor a.
func (w *matrixWorld) matrixDocument(a actorKind, o objectKind) uuid.UUID {
	if o == nonexistent {
		return uuid.New()
	}
	w.ownerStudentLink() // the owner's student must be one (other cells delete the link)
	ownerID, public := w.user(owner), o == granted
	if o == own && a != anonymous {
		ownerID = w.user(a)
	}
	id := uuid.New()
	w.exec(`INSERT INTO documents (id, owner_id, title, source_type, content, is_public) VALUES ($1, $2, 'Matrix', 'text', 'Legato.', $3)`, id, ownerID, public)
	return id
}

// matrixWebDocument makes a fresh web document of kind o for actor a (a
// refresh fetches its URL again: a reserved name that never resolves, so
// the job fails, after the answer).
func (w *matrixWorld) matrixWebDocument(a actorKind, o objectKind) uuid.UUID {
	id := w.matrixDocument(a, o)
	if o != nonexistent {
		w.exec(`UPDATE documents SET source_type = 'web', content = NULL, source_url = 'https://matrix.invalid/page' WHERE id = $1`, id)
	}
	return id
}

func documentReq(method, suffix string) func(*matrixWorld, actorKind, objectKind) matrixRequest {
	return func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
		return matrixRequest{method: method, path: "/api/knowledge/" + w.matrixDocument(a, o).String() + suffix, token: bearer(w, a)}
	}
}

func init() {
	docObjects := []objectKind{own, granted, foreign, nonexistent}
	rows := map[string]routeSpec{
		"POST /api/knowledge": {
			objects: []objectKind{noObject},
			request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
				return matrixRequest{method: "POST", path: "/api/knowledge", token: bearer(w, a),
					body: map[string]any{"title": "Notes", "source_type": "text", "content": "Relax the wrist.", "is_public": false}}
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
		"GET /api/knowledge":               {objects: []objectKind{noObject}, request: get("/api/knowledge"), want: authed(200)},
		"GET /api/knowledge/{id}":          {objects: docObjects, request: documentReq("GET", ""), want: documentView(200)},
		"GET /api/knowledge/{id}/status":   {objects: docObjects, request: documentReq("GET", "/status"), want: documentView(200)},
		"DELETE /api/knowledge/{id}":       {objects: docObjects, request: documentReq("DELETE", ""), want: documentManage(204)},
		"POST /api/knowledge/{id}/process": {objects: docObjects, request: documentReq("POST", "/process"), want: documentManage(202)},
		"PATCH /api/knowledge/{id}": {objects: docObjects, want: documentManage(200),
			request: func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
				return matrixRequest{method: "PATCH", path: "/api/knowledge/" + w.matrixDocument(a, o).String(), token: bearer(w, a),
					body: map[string]any{"title": "Renamed"}}
			}},
		"POST /api/knowledge/{id}/refresh": {objects: docObjects, want: documentManage(202),
			request: func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
				return matrixRequest{method: "POST", path: "/api/knowledge/" + w.matrixWebDocument(a, o).String() + "/refresh", token: bearer(w, a)}
			}},
	}
	for k, v := range rows {
		matrix[k] = v
	}
}
