package server

// adminOnly is the expectation of a route for administrators: 401
// anonymous, 403 for anyone else, status for an administrator.
func adminOnly(status int) func(actorKind, objectKind) int {
	return func(a actorKind, _ objectKind) int {
		switch {
		case a == anonymous:
			return 401
		case a != appAdmin:
			return 403
		}
		return status
	}
}

// Matrix rows of cluster operations: administrators only (a node may also
// present the cluster secret, tested in cluster tests). The test API runs
// without the replicated index, so membership changes answer 409.
func init() {
	matrix["GET /api/cluster/status"] = routeSpec{objects: []objectKind{noObject}, want: adminOnly(200),
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "GET", path: "/api/cluster/status", token: bearer(w, a)}
		}}
	matrix["POST /api/cluster/nodes"] = routeSpec{objects: []objectKind{noObject}, want: adminOnly(409),
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "POST", path: "/api/cluster/nodes", token: bearer(w, a),
				body: map[string]any{"id": "n2", "raft_address": "127.0.0.1:7002"}}
		}}
	matrix["DELETE /api/cluster/nodes/{id}"] = routeSpec{objects: []objectKind{noObject}, want: adminOnly(409),
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "DELETE", path: "/api/cluster/nodes/n2", token: bearer(w, a)}
		}}
	matrix["POST /api/cluster/repair"] = routeSpec{objects: []objectKind{noObject}, want: adminOnly(409),
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "POST", path: "/api/cluster/repair", token: bearer(w, a),
				body: map[string]any{"chunk_ids": []string{"6a1f3a52-8c1e-4a0e-9a43-2a4f6f1c2b11"}}}
		}}
}

// Matrix rows of the embedding models: administrators only. The admin's
// POST names a model the test server is not configured with (400), so it
// starts nothing; no build runs, so the DELETE answers 404.
func init() {
	matrix["GET /api/admin/embedding"] = routeSpec{objects: []objectKind{noObject}, want: adminOnly(200),
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "GET", path: "/api/admin/embedding", token: bearer(w, a)}
		}}
	matrix["POST /api/admin/embedding"] = routeSpec{objects: []objectKind{noObject}, want: adminOnly(400),
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "POST", path: "/api/admin/embedding", token: bearer(w, a), body: map[string]any{"model": "no-such-model"}}
		}}
	matrix["DELETE /api/admin/embedding/building"] = routeSpec{objects: []objectKind{noObject}, want: adminOnly(404),
		request: func(w *matrixWorld, a actorKind, _ objectKind) matrixRequest {
			return matrixRequest{method: "DELETE", path: "/api/admin/embedding/building", token: bearer(w, a)}
		}}
}
