package blob

import (
	"net/http"
	"strconv"
	"strings"
)

// ETagMatch implements If-None-Match (weak comparison, lists, "*").
func ETagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// ParseRange reads a single-range "bytes=" header against size. It returns
// no range and 200 for no (or an unsupported multi-) range, a range and 206,
// or 416 when the range lies outside the file.
func ParseRange(header string, size int64) (*Range, int) {
	spec, ok := strings.CutPrefix(header, "bytes=")
	if header == "" || !ok || strings.Contains(spec, ",") {
		return nil, http.StatusOK
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return nil, http.StatusOK
	}
	var r Range
	switch {
	case first == "": // suffix: the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return nil, http.StatusRequestedRangeNotSatisfiable
		}
		r = Range{Start: max(0, size-n), End: size - 1}
	default:
		start, err := strconv.ParseInt(first, 10, 64)
		if err != nil || start < 0 {
			return nil, http.StatusOK
		}
		end := size - 1
		if last != "" {
			if end, err = strconv.ParseInt(last, 10, 64); err != nil || end < start {
				return nil, http.StatusOK
			}
		}
		if start >= size {
			return nil, http.StatusRequestedRangeNotSatisfiable
		}
		r = Range{Start: start, End: min(end, size-1)}
	}
	return &r, http.StatusPartialContent
}
