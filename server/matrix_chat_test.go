package server

import (
	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/store"
)

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
	// answerFor is an answer in a session of the holder sessionFor picks.
	answerFor := func(w *matrixWorld, a actorKind, o objectKind) string {
		if o == nonexistent {
			return uuid.NewString()
		}
		holder := owner
		switch {
		case o == own && a != anonymous:
			holder = a
		case o == foreign && a == owner:
			holder = unrelatedStudent
		}
		sess, err := w.a.store.CreateChatSession(t0(), w.user(holder), "matrix")
		if err != nil {
			w.a.t.Fatal(err)
		}
		conf := "LOW"
		id, err := w.a.store.AddExchange(t0(), w.user(holder), sess.ID, "How do I pedal?",
			store.ChatMessage{Content: "Late. [1]", Sources: []byte("[]"), Confidence: &conf})
		if err != nil {
			w.a.t.Fatal(err)
		}
		return id.String()
	}
	matrix["POST /api/chat/messages/{id}/feedback"] = routeSpec{objects: objects, want: ownerOnly(204),
		request: func(w *matrixWorld, a actorKind, o objectKind) matrixRequest {
			return matrixRequest{method: "POST", path: "/api/chat/messages/" + answerFor(w, a, o) + "/feedback", token: bearer(w, a),
				body: map[string]any{"rating": "up", "comment": "clear"}}
		}}
	matrix["GET /api/chat/feedback"] = routeSpec{objects: []objectKind{noObject}, request: get("/api/chat/feedback"),
		want: func(a actorKind, _ objectKind) int {
			switch a {
			case anonymous:
				return 401
			case appAdmin:
				return 200
			}
			return 403
		}}
	matrix["POST /api/chat/query"] = routeSpec{objects: []objectKind{noObject}, want: authed(200),
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "POST", path: "/api/chat/query", token: bearer(w, a), body: map[string]any{"query": "legato pedal"}}
		}}
}
