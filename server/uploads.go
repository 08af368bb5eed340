package server

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/blob"
)

// Uploads. A client PUTs to a presigned URL that names an upload key; the
// URL stays valid until it expires (nobody can recall it). When the server
// accepts an upload (a project's confirm, a document's process) it copies
// the object to a sealed key no upload URL names (blob.SealedKey), checks
// and records that copy, and from then on serves and processes only it.
// A later PUT lands on the upload key, which nothing reads; the upload
// key is deleted at once and again when its URL has expired.

// seal copies upload to a new sealed key and returns that key; a missing
// upload is a 422 (no file uploaded).
func (s *Server) seal(ctx context.Context, upload string) (string, error) {
	sealed := blob.SealedKey(upload, uuid.NewString())
	err := s.blob.Copy(ctx, upload, sealed)
	if errors.Is(err, blob.ErrNotFound) {
		return "", noUpload()
	}
	if err != nil {
		return "", err
	}
	return sealed, nil
}

// settleSeal finishes a seal once it has been recorded (won) or not: the
// winner's upload key is deleted now and once its URL (made at created)
// has expired; a losing copy is deleted.
func (s *Server) settleSeal(ctx context.Context, upload, sealed string, created time.Time, won bool) {
	ctx = context.WithoutCancel(ctx)
	if !won {
		s.dropObjects(ctx, sealed)
		return
	}
	s.dropObjects(ctx, upload)
	if err := s.store.EnqueueUploadCleanup(ctx, upload, created); err != nil {
		s.logger.WarnContext(ctx, "schedule the upload key's cleanup", "component", "uploads", "key", upload, "error", err)
	}
}

// dropObjects deletes keys now, or schedules their deletion (a durable,
// retried job) when the store fails.
func (s *Server) dropObjects(ctx context.Context, keys ...string) {
	ctx = context.WithoutCancel(ctx)
	for _, key := range keys {
		err := s.blob.Delete(ctx, key)
		if err == nil {
			continue
		}
		s.logger.WarnContext(ctx, "delete object; scheduling", "component", "uploads", "key", key, "error", err)
		if jerr := s.store.EnqueueBlobDelete(ctx, key); jerr != nil {
			s.logger.ErrorContext(ctx, "schedule object deletion", "component", "uploads", "key", key, "error", jerr)
		}
	}
}
