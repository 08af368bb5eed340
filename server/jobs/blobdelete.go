package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/store"
)

// BlobDelete handles store.BlobDeleteJob: it deletes the named object or
// folder of objects, retried while the store is down; a missing object
// counts as deleted.
func BlobDelete(b blob.Store) Handler {
	return func(ctx context.Context, job store.Job) error {
		var p store.BlobDeletePayload
		if err := json.Unmarshal(job.Payload, &p); err != nil || (p.Key == "") == (p.Prefix == "") {
			return fmt.Errorf("%w: bad payload", ErrPermanent)
		}
		if p.Prefix != "" {
			return b.DeletePrefix(ctx, p.Prefix)
		}
		err := b.Delete(ctx, p.Key)
		if errors.Is(err, blob.ErrNotFound) {
			return nil
		}
		return err
	}
}
