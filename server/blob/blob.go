// Package blob stores objects (project PDFs, knowledge uploads) behind one
// small interface with two implementations: S3 (AWS S3, Cloudflare R2 or
// any S3-compatible server) and Local, the embedded default, whose files
// live under the data directory and whose signed URLs the node serves
// itself. Clients upload and download through presigned URLs; object keys
// are always made by the server.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// ErrNotFound marks a missing object.
var ErrNotFound = errors.New("blob: not found")

// Lifetimes of presigned URLs.
const (
	MaxUploadTTL   = 15 * time.Minute
	MaxDownloadTTL = 5 * time.Minute
)

// Upload tells a client how to PUT an object's bytes.
type Upload struct {
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expires_at"`
}

// Download is a presigned URL to GET an object.
type Download struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Info describes a stored object.
type Info struct {
	Size int64
	ETag string // strong validator, quoted
}

// Range is an inclusive byte range of an object.
type Range struct{ Start, End int64 }

// Store is what the API needs of object storage.
type Store interface {
	// PresignPut returns how to upload key with contentType, valid for ttl.
	PresignPut(ctx context.Context, key, contentType string, maxBytes int64, ttl time.Duration) (Upload, error)
	// PresignGet returns a download URL for key that saves as filename.
	PresignGet(ctx context.Context, key, filename, contentType string, ttl time.Duration) (Download, error)
	// Stat describes key, or ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Open reads key, or the range r of it when r is not nil.
	Open(ctx context.Context, key string, r *Range) (io.ReadCloser, Info, error)
	// Put stores r (size bytes) under key, for server-side writers such as
	// the bulk ingest command.
	Put(ctx context.Context, key, contentType string, r io.Reader, size int64) error
	// Copy stores a copy of the object at src under dst, as it is at one
	// moment (a concurrent write to src is either wholly in or not);
	// ErrNotFound when src is missing.
	Copy(ctx context.Context, src, dst string) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// DeletePrefix removes every object under prefix, a folder of keys
	// ending in "/" (CheckPrefix); an empty folder is not an error.
	DeletePrefix(ctx context.Context, prefix string) error
	// Name says which implementation this is, for logs and readiness.
	Name() string
}

var keyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(/[a-zA-Z0-9][a-zA-Z0-9_.-]*)+$`)

// CheckKey refuses keys that are not of the shape the server makes, so no
// key can escape its store (no "..", no absolute paths).
func CheckKey(key string) error {
	if len(key) > 512 || !keyPattern.MatchString(key) || strings.Contains(key, "..") {
		return fmt.Errorf("blob: invalid key %q", key)
	}
	return nil
}

// CheckPrefix refuses folders of keys that are not of the shape the
// server makes: a valid key followed by "/".
func CheckPrefix(prefix string) error {
	if !strings.HasSuffix(prefix, "/") || CheckKey(strings.TrimSuffix(prefix, "/")) != nil {
		return fmt.Errorf("blob: invalid prefix %q", prefix)
	}
	return nil
}

// ContentDisposition is an attachment disposition for filename, safe for
// any name: an ASCII fallback and the RFC 5987 UTF-8 form.
func ContentDisposition(filename string) string {
	fallback := strings.Map(func(r rune) rune {
		if r > unicode.MaxASCII || r < 0x20 || r == '"' || r == '\\' || r == '/' || r == 0x7f {
			return '_'
		}
		return r
	}, filename)
	if fallback == "" {
		fallback = "download"
	}
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, fallback, url.PathEscape(filename))
}
