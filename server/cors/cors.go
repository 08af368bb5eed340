// Package cors answers browsers' cross-origin checks for the node and the
// edge alike, from an allowlist of origins (github.com/rs/cors). Listed
// origins may send credentials (the Authorization header); "*" allows any
// origin but never with credentials. An empty list turns CORS off:
// browsers then only call the API from its own origin.
package cors

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/cors"
)

// Headers a browser may send and read.
var (
	allowedHeaders = []string{"Authorization", "Content-Type", "Accept", "If-None-Match", "If-Range", "Range", "X-Request-ID"}
	exposedHeaders = []string{"ETag", "X-Request-ID", "Retry-After", "Content-Range", "Content-Disposition", "Accept-Ranges",
		"X-Index-LSN", "X-Edge-Cache", "X-Sostenuto-Node", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
	allowedMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
)

// ParseOrigins reads a comma-separated list of origins (scheme://host[:port])
// or "*".
func ParseOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o == "*" {
			out = append(out, o)
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("cors: %q is not an origin (https://host[:port])", o)
		}
		out = append(out, u.Scheme+"://"+strings.ToLower(u.Host))
	}
	return out, nil
}

// Handler wraps next with CORS for origins; with no origins it returns
// next unchanged.
func Handler(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	wildcard := false
	for _, o := range origins {
		wildcard = wildcard || o == "*"
	}
	return cors.New(cors.Options{
		AllowedOrigins:   origins,
		AllowedMethods:   allowedMethods,
		AllowedHeaders:   allowedHeaders,
		ExposedHeaders:   exposedHeaders,
		AllowCredentials: !wildcard, // credentials only for listed origins
		MaxAge:           600,
	}).Handler(next)
}
