package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// DecodeJSON reads r's body into dst: it must be JSON (by Content-Type when
// one is given), one value, no unknown fields, and within the body limit
// (413 past it). The answer on failure is a *Problem.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return NewProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
				"the body must be application/json")
		}
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err, limit)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeProblem(err, limit)
		}
		return Invalid("the body must hold a single JSON value")
	}
	return nil
}

func decodeProblem(err error, limit int64) *Problem {
	var (
		tooBig  *http.MaxBytesError
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return NewProblem(http.StatusRequestEntityTooLarge, CodePayloadTooLarge,
			fmt.Sprintf("the body is larger than %d bytes", limit))
	case errors.Is(err, io.EOF):
		return Invalid("the body is empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Invalid("the body ends in the middle of a JSON value")
	case errors.As(err, &syntax):
		return Invalid(fmt.Sprintf("malformed JSON at byte %d: %v", syntax.Offset, syntax))
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(body)"
		}
		return Invalid("a field has the wrong type",
			FieldError{Field: field, Message: fmt.Sprintf("must be %s, not %s", typeErr.Type, typeErr.Value)})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Invalid("the body has a field this endpoint does not accept",
			FieldError{Field: name, Message: "unknown field"})
	default:
		return Invalid("the body is not valid JSON: " + err.Error())
	}
}
