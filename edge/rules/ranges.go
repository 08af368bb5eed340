package rules

import (
	"strconv"
	"strings"
)

// Range is an inclusive byte range.
type Range struct{ Start, End int64 }

// ParseRange reads a single-range "bytes=" header against size, as the
// node does (server/blob.ParseRange; the conformance vectors hold both to
// the same answers). It returns no range and 200 for no (or an unsupported
// multi-) range, a range and 206, or 416 when the range lies outside the
// file.
func ParseRange(header string, size int64) (*Range, int) {
	spec, ok := strings.CutPrefix(header, "bytes=")
	if header == "" || !ok || strings.Contains(spec, ",") {
		return nil, 200
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return nil, 200
	}
	var r Range
	switch {
	case first == "": // suffix: the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return nil, 416
		}
		r = Range{Start: max(0, size-n), End: size - 1}
	default:
		start, err := strconv.ParseInt(first, 10, 64)
		if err != nil || start < 0 {
			return nil, 200
		}
		end := size - 1
		if last != "" {
			if end, err = strconv.ParseInt(last, 10, 64); err != nil || end < start {
				return nil, 200
			}
		}
		if start >= size {
			return nil, 416
		}
		r = Range{Start: start, End: min(end, size-1)}
	}
	return &r, 206
}

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

// Serve is how an edge answers a read of a stored object the node named
// (size bytes, tag etag): 304, 416, 206 with a range, or 200.
type Serve struct {
	Status int    `json:"status"`
	Range  *Range `json:"range,omitempty"`
}

// ServeObject decides a GET or HEAD of a stored object from the request's
// If-None-Match, Range and If-Range headers, exactly as the node answers
// its own stream.
func ServeObject(ifNoneMatch, rangeHeader, ifRange, etag string, size int64) Serve {
	if ETagMatch(ifNoneMatch, etag) {
		return Serve{Status: 304}
	}
	rng, status := ParseRange(rangeHeader, size)
	if ifRange != "" && ifRange != etag {
		rng, status = nil, 200
	}
	return Serve{Status: status, Range: rng}
}
