package server

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3.1 document of this API, kept beside the routes;
// TestOpenAPIMatchesRoutes holds the two equal.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI document.
func OpenAPI() []byte { return openAPI }

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(openAPI) //nolint:errcheck // the client went away
}
