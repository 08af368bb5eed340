package server

// Matrix rows of search: every signed-in actor may search; what it finds is
// checked by the leak tests.
func init() {
	matrix["POST /api/search"] = routeSpec{objects: []objectKind{noObject}, want: authed(200),
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "POST", path: "/api/search", token: bearer(w, a), body: map[string]any{"query": "legato pedal"}}
		}}
	matrix["POST /api/embeddings/generate"] = routeSpec{objects: []objectKind{noObject}, want: authed(200),
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "POST", path: "/api/embeddings/generate", token: bearer(w, a), body: map[string]any{"text": "legato pedal"}}
		}}
}
