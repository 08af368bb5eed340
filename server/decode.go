package server

import (
	"bytes"
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
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return decodeProblem(err, limit)
		}
		return Invalid("the body could not be read: " + err.Error())
	}
	if err := checkShape(raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
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

// Bounds on the shape of a JSON body, checked before it is decoded.
const (
	maxJSONDepth = 32     // nested objects and arrays
	maxJSONItems = 10_000 // elements of one array or members of one object
)

// checkShape refuses bodies nested deeper than maxJSONDepth or with a
// container of more than maxJSONItems entries. Syntax errors are left to
// the decoder, which describes them.
func checkShape(raw []byte) *Problem {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type open struct {
		entries, limit int // an object's keys count too: twice per member
	}
	var stack []open
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		if n := len(stack); n > 0 {
			if d, ok := tok.(json.Delim); !ok || d == '{' || d == '[' {
				stack[n-1].entries++
				if stack[n-1].entries > stack[n-1].limit {
					return Invalid(fmt.Sprintf("the body has an array or object of more than %d entries", maxJSONItems))
				}
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxJSONDepth {
				return Invalid(fmt.Sprintf("the body is nested deeper than %d levels", maxJSONDepth))
			}
			limit := maxJSONItems
			if tok == json.Delim('{') {
				limit *= 2
			}
			stack = append(stack, open{limit: limit})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}
