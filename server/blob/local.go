package blob

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Local stores objects as files under a directory. Its presigned URLs point
// at the node itself (PUT and GET on PublicURL + "/api/blob"), carrying an
// HMAC over method, key, expiry, content type, size limit and filename;
// the node checks it in constant time.
type Local struct {
	dir       string
	publicURL string
	secret    []byte
	now       func() time.Time
}

// NewLocal returns a local store in dir (created when missing) whose URLs
// start with publicURL (e.g. http://localhost:8080) and are signed with
// secret (32+ bytes).
func NewLocal(dir, publicURL string, secret []byte) (*Local, error) {
	if len(secret) < 32 {
		return nil, errors.New("blob: the local signing secret needs 32+ bytes")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &Local{dir: dir, publicURL: publicURL, secret: secret, now: time.Now}, nil
}

// EnsureSecret reads the signing secret from path, generating it (0600)
// when missing.
func EnsureSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob: secret: %w", err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("blob: secret: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("blob: secret: %w", err)
	}
	return b, nil
}

// Name implements Store.
func (l *Local) Name() string { return "local" }

func (l *Local) path(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(l.dir, filepath.FromSlash(key)), nil
}

type signed struct {
	method, key, contentType, filename string
	expires, maxBytes                  int64
}

func (l *Local) sign(s signed) string {
	m := hmac.New(sha256.New, l.secret)
	fmt.Fprintf(m, "%s\n%s\n%d\n%s\n%d\n%s", s.method, s.key, s.expires, s.contentType, s.maxBytes, s.filename)
	return hex.EncodeToString(m.Sum(nil))
}

func (l *Local) url(s signed) string {
	q := url.Values{"k": {s.key}, "m": {s.method}, "e": {strconv.FormatInt(s.expires, 10)}}
	if s.contentType != "" {
		q.Set("ct", s.contentType)
	}
	if s.maxBytes > 0 {
		q.Set("n", strconv.FormatInt(s.maxBytes, 10))
	}
	if s.filename != "" {
		q.Set("fn", s.filename)
	}
	q.Set("s", l.sign(s))
	return l.publicURL + "/api/blob?" + q.Encode()
}

// PresignPut implements Store.
func (l *Local) PresignPut(_ context.Context, key, contentType string, maxBytes int64, ttl time.Duration) (Upload, error) {
	if err := CheckKey(key); err != nil {
		return Upload{}, err
	}
	exp := l.now().Add(min(ttl, MaxUploadTTL)).Truncate(time.Second)
	u := l.url(signed{method: http.MethodPut, key: key, contentType: contentType, maxBytes: maxBytes, expires: exp.Unix()})
	return Upload{URL: u, Method: http.MethodPut, Headers: map[string]string{"Content-Type": contentType}, ExpiresAt: exp.UTC()}, nil
}

// PresignGet implements Store.
func (l *Local) PresignGet(_ context.Context, key, filename, contentType string, ttl time.Duration) (Download, error) {
	if err := CheckKey(key); err != nil {
		return Download{}, err
	}
	exp := l.now().Add(min(ttl, MaxDownloadTTL)).Truncate(time.Second)
	u := l.url(signed{method: http.MethodGet, key: key, contentType: contentType, filename: filename, expires: exp.Unix()})
	return Download{URL: u, ExpiresAt: exp.UTC()}, nil
}

// Stat implements Store.
func (l *Local) Stat(_ context.Context, key string) (Info, error) {
	p, err := l.path(key)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return Info{}, fmt.Errorf("blob: stat: %w", err)
	}
	etag, err := os.ReadFile(p + ".etag")
	if err != nil {
		return Info{}, fmt.Errorf("blob: etag of %s: %w", key, err)
	}
	return Info{Size: fi.Size(), ETag: string(etag)}, nil
}

// Open implements Store.
func (l *Local) Open(ctx context.Context, key string, r *Range) (io.ReadCloser, Info, error) {
	info, err := l.Stat(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	p, _ := l.path(key)
	f, err := os.Open(p)
	if err != nil {
		return nil, Info{}, fmt.Errorf("blob: open: %w", err)
	}
	if r == nil {
		return f, info, nil
	}
	if _, err := f.Seek(r.Start, io.SeekStart); err != nil {
		f.Close()
		return nil, Info{}, fmt.Errorf("blob: seek: %w", err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, r.End-r.Start+1), f}, info, nil
}

// Put implements Store.
func (l *Local) Put(_ context.Context, key, _ string, r io.Reader, size int64) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	_, err = l.write(p, io.LimitReader(r, size))
	return err
}

// Copy implements Store. The source file stays open while it is copied,
// so an upload renamed over it meanwhile does not mix in.
func (l *Local) Copy(_ context.Context, src, dst string) error {
	sp, err := l.path(src)
	if err != nil {
		return err
	}
	dp, err := l.path(dst)
	if err != nil {
		return err
	}
	f, err := os.Open(sp)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, src)
	}
	if err != nil {
		return fmt.Errorf("blob: copy: %w", err)
	}
	defer f.Close()
	if _, err := l.write(dp, f); err != nil {
		return fmt.Errorf("blob: copy %s: %w", src, err)
	}
	return nil
}

// write stores r at p atomically with its ETag beside it.
func (l *Local) write(p string, r io.Reader) (string, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("blob: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".upload-*")
	if err != nil {
		return "", fmt.Errorf("blob: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("blob: %w", err)
	}
	etag := `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
	if err := os.WriteFile(p+".etag", []byte(etag), 0o600); err != nil {
		return "", fmt.Errorf("blob: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fmt.Errorf("blob: %w", err)
	}
	return etag, nil
}

// Delete implements Store.
func (l *Local) Delete(_ context.Context, key string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	for _, f := range []string{p, p + ".etag"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("blob: delete: %w", err)
		}
	}
	return nil
}

// DeletePrefix implements Store: the folder goes, ETags included.
func (l *Local) DeletePrefix(_ context.Context, prefix string) error {
	if err := CheckPrefix(prefix); err != nil {
		return err
	}
	p, err := l.path(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("blob: delete %s: %w", prefix, err)
	}
	return nil
}

// verify checks a signed URL's query for method and returns what it grants.
func (l *Local) verify(r *http.Request, method string) (signed, int, string) {
	q := r.URL.Query()
	s := signed{method: q.Get("m"), key: q.Get("k"), contentType: q.Get("ct"), filename: q.Get("fn")}
	var err1, err2 error
	s.expires, err1 = strconv.ParseInt(q.Get("e"), 10, 64)
	if q.Get("n") != "" {
		s.maxBytes, err2 = strconv.ParseInt(q.Get("n"), 10, 64)
	}
	got, err3 := hex.DecodeString(q.Get("s"))
	want, _ := hex.DecodeString(l.sign(s))
	switch {
	case err1 != nil || err2 != nil || err3 != nil || !hmac.Equal(got, want):
		return s, http.StatusForbidden, "the URL's signature does not match"
	case s.method != method:
		return s, http.StatusForbidden, "the URL was signed for " + s.method
	case l.now().Unix() > s.expires:
		return s, http.StatusForbidden, "the URL has expired"
	case CheckKey(s.key) != nil:
		return s, http.StatusForbidden, "bad key"
	}
	return s, 0, ""
}

// ServePut stores the body of a PUT to a signed upload URL. It checks the
// Content-Type the URL was signed for and enforces the size limit while
// streaming; the object appears whole (rename) or not at all.
func (l *Local) ServePut(w http.ResponseWriter, r *http.Request) (int, string) {
	s, status, msg := l.verify(r, http.MethodPut)
	if status != 0 {
		return status, msg
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != s.contentType {
		return http.StatusForbidden, "Content-Type must be " + s.contentType + ", as signed"
	}
	if s.maxBytes > 0 && r.ContentLength > s.maxBytes {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("the object is larger than %d bytes", s.maxBytes)
	}
	p, _ := l.path(s.key)
	body := io.Reader(r.Body)
	if s.maxBytes > 0 {
		body = http.MaxBytesReader(w, r.Body, s.maxBytes)
	}
	etag, err := l.write(p, body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, fmt.Sprintf("the object is larger than %d bytes", s.maxBytes)
		}
		return http.StatusBadRequest, "the upload was cut short or could not be stored"
	}
	w.Header().Set("ETag", etag)
	w.WriteHeader(http.StatusOK)
	return 0, ""
}

// ServeGet answers a GET of a signed download URL, with Range support, as
// an attachment that browsers never sniff.
func (l *Local) ServeGet(w http.ResponseWriter, r *http.Request) (int, string) {
	s, status, msg := l.verify(r, http.MethodGet)
	if status != 0 {
		return status, msg
	}
	p, _ := l.path(s.key)
	f, err := os.Open(p)
	if err != nil {
		return http.StatusNotFound, "no such object"
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return http.StatusNotFound, "no such object"
	}
	if etag, err := os.ReadFile(p + ".etag"); err == nil {
		w.Header().Set("ETag", string(etag))
	}
	w.Header().Set("Content-Type", s.contentType)
	w.Header().Set("Content-Disposition", ContentDisposition(s.filename))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "private, max-age=300")
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return 0, ""
}
