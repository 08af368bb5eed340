package blob

import (
	"context"
	"fmt"
	"io"
	"os"
)

// ToTempFile copies key into a private temporary file, at most limit bytes
// (0: no limit), and returns the file's path and the object's info; the
// caller removes the file.
func ToTempFile(ctx context.Context, s Store, key string, limit int64) (string, Info, error) {
	rc, info, err := s.Open(ctx, key, nil)
	if err != nil {
		return "", Info{}, err
	}
	defer rc.Close()
	f, err := os.CreateTemp("", "sostenuto-object-*")
	if err != nil {
		return "", Info{}, fmt.Errorf("blob: temp file: %w", err)
	}
	var src io.Reader = rc
	if limit > 0 {
		src = io.LimitReader(rc, limit)
	}
	_, err = io.Copy(f, src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", Info{}, fmt.Errorf("blob: copy %s: %w", key, err)
	}
	return f.Name(), info, nil
}
