package server

import "github.com/google/uuid"

// Matrix rows of chat: every signed-in actor asks and keeps sessions; a
// session is its owner's alone (404 to everyone else, administrators too).
// What answers contain is checked by the chat leak tests.
func init() {
	sessionFor := func(w *matrixWorld, a actorKind, o objectKind) string {
		holder := a
		switch o {
		case nonexistent:
			return uuid.NewString()
		case own:
			if a == anonymous {
				holder = owner
			}
		default: // foreign
			holder = owner
			if a == owner {
				holder = unrelatedStudent
			}
		}
		s, err := w.a.store.CreateChatSession(t0(), w.user(holder), "matrix")
		if err != nil {
			w.a.t.Fatal(err)
		}
		return s.ID.String()
	}
	ownerOnly := func(status int) func(actorKind, objectKind) int {
		return func(a actorKind, o objectKind) int {
			switch {
			case a == anonymous:
				return 401
			case o == own:
				return status
			}
			return 404
		}
	}
	objects := []objectKind{own, foreign, nonexistent}
	matrix["POST /api/chat/sessions"] = routeSpec{objects: []objectKind{noObject}, want: authed(201),
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "POST", path: "/api/chat/sessions", token: bearer(w, a), body: map[string]any{"title": "Pedalling"}}
		}}
	matrix["GET /api/chat/sessions"] = routeSpec{objects: []objectKind{noObject}, want: authed(200),
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "GET", path: "/api/chat/sessions", token: bearer(w, a)}
		}}
	matrix["GET /api/chat/sessions/{id}"] = routeSpec{objects: objects, want: ownerOnly(200),
		request: func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
			return matrixRequest{method: "GET", path: "/api/chat/sessions/" + sessionFor(w, a, o), token: bearer(w, a)}
		}}
	matrix["DELETE /api/chat/sessions/{id}"] = routeSpec{objects: objects, want: ownerOnly(204),
		request: func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
			return matrixRequest{method: "DELETE", path: "/api/chat/sessions/" + sessionFor(w, a, o), token: bearer(w, a)}
		}}
	matrix["POST /api/chat/query"] = routeSpec{objects: []objectKind{noObject}, want: authed(200),
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "POST", path: "/api/chat/query", token: bearer(w, a), body: map[string]any{"query": "legato pedal"}}
		}}
}
