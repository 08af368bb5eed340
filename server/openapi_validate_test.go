package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// The end-to-end tests' responses are checked against openapi.json
// (kin-openapi): every answer's status must be documented for its route,
// and its body must match the documented schema.
var spec struct {
	once   sync.Once
	router routers.Router
	err    error
}

func specRouter() (routers.Router, error) {
	spec.once.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(OpenAPI())
		if err != nil {
			spec.err = err
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			spec.err = err
			return
		}
		spec.router, spec.err = legacy.NewRouter(doc)
	})
	return spec.router, spec.err
}

// checkResponse validates one answer; requests to paths the API does not
// have (tests of 404s and 405s) are not checked.
func checkResponse(t testing.TB, method, rawURL string, reqHeader http.Header, status int, header http.Header, body []byte) {
	t.Helper()
	router, err := specRouter()
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	u, err := url.Parse(rawURL)
	if err != nil || method == http.MethodOptions { // preflights are CORS's, not the API's
		return
	}
	u.Scheme, u.Host = "http", "localhost:8080" // the documented server
	req, _ := http.NewRequest(method, u.String(), nil)
	req.Header = reqHeader.Clone()
	route, params, err := router.FindRoute(req)
	if errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed) {
		return
	}
	if err != nil {
		t.Errorf("openapi: %s %s: %v", method, u.Path, err)
		return
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts},
		Status:                 status, Header: header, Options: opts,
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		msg := err.Error()
		if len(msg) > 600 {
			msg = msg[:600] + "…"
		}
		t.Errorf("openapi: %s %s answered %d, which openapi.json does not describe: %s\nbody: %.300s", method, route.Path, status, msg, body)
	}
}
