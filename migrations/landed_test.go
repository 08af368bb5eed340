package migrations_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sostenuto/sostenuto/migrations"
)

// landed pins the SHA-256 of every migration that has landed on main. A
// landed migration has run on databases we do not control; editing it would
// leave them with a schema no file describes. Add a line here when a new
// migration lands; never change one.
var landed = map[string]string{
	"00001_schema.sql":                   "ce7f7d5da67f5430b05e3a92c3aa7e80dc426463430b1ecb7f9f0cf89c5360a5",
	"00002_access.sql":                   "cbfe986ddf09ad97f09c8e01309ab329301b22c379448dba20f2eddc5507249a",
	"00003_ingest.sql":                   "bbc3758cfd6d02a9d3fad350c06000aa2ce3827557c11998d2abb3d6feb693a3",
	"00004_publication.sql":              "abfebea5c97cecd9a91b58ef00c5ab3e625fbd0021a76ff79f22b1de59c6402f",
	"00005_document_error_code.sql":      "1cdf4e7ef8f44a075b9f6849d994c2f46ef13b3135b6bc97db909858ea907115",
	"00006_signin_throttle.sql":          "0004810b1b46d69a058279c5f36d8ae8ccc071328f13c0d35812ea8241430eca",
	"00007_document_ocr.sql":             "f02aa9ca9ad2f97f77cb0d54a477b6499459cd10147d748947cf02cee622f2f4",
	"00008_language.sql":                 "81157b1d83451a25a77ac71e24be9ca04b3de2c919cd5e7d76bad650f290723c",
	"00009_chat_feedback.sql":            "a5e87b2fa441923c998e105c8964ad5a141a4c16360b827e2eaed521339bb191",
	"00010_annotation_chunks.sql":        "1bb2d146bc04eb37d0c5d878b514667e891be96bbe8698193fcc41a2a060f991",
	"00011_document_content_hash.sql":    "43477d9b4a345e7b1c1c68de5b46139719c53cba88f7074a90399c7f810cd02a",
	"00012_embedding_models.sql":         "cacb9e385f4d4c952cb41011136a41f56ec181c8ee86bec1a1763a2dd19bbc5d",
	"00013_relationships_changefeed.sql": "8a9a2b4a1a397d0a18921b650851723343c9f7c47741b2389696a17bd578a8d8",
	"00014_visibility_plpgsql.sql":       "b3ef1dec4015a4513e206b9cb38c6800ae5fbddd559ccf13de1024b8147268db",
}

// changedLanded lists, one sentence each, the landed migrations in fsys that
// are missing or whose content differs from its pinned hash. Files not in
// pins are new migrations and allowed.
func changedLanded(fsys fs.FS, pins map[string]string) []string {
	var out []string
	for name, want := range pins {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			out = append(out, fmt.Sprintf("%s is gone (%v): migrations are forward-only: add a new numbered file instead of removing or renaming %s", name, err, name))
			continue
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != want {
			out = append(out, fmt.Sprintf("%s changed (sha256 %s, pinned %s): migrations are forward-only: add a new numbered file instead of editing %s",
				name, got, want, strings.SplitN(name, "_", 2)[0]))
		}
	}
	return out
}

// TestLandedMigrationsUnchanged fails when a landed migration, as embedded
// in the binary, differs from the hash pinned in landed.
func TestLandedMigrationsUnchanged(t *testing.T) {
	for _, msg := range changedLanded(migrations.FS(), landed) {
		t.Error(msg)
	}
}

// TestLandedCheckCatchesEdits shows the check fails on an edited, a removed
// landed file, and accepts a new file it has no pin for.
func TestLandedCheckCatchesEdits(t *testing.T) {
	orig, err := fs.ReadFile(migrations.FS(), "00002_access.sql")
	if err != nil {
		t.Fatal(err)
	}
	pins := map[string]string{"00002_access.sql": landed["00002_access.sql"], "00003_ingest.sql": landed["00003_ingest.sql"]}
	tests := []struct {
		name  string
		files fstest.MapFS
		want  []string // substrings, one per expected complaint
	}{
		{"edited", fstest.MapFS{
			"00002_access.sql": {Data: append(append([]byte{}, orig...), "\n-- a late fix\n"...)},
			"00003_ingest.sql": mapFile(t, "00003_ingest.sql"),
		}, []string{"add a new numbered file instead of editing 00002"}},
		{"removed", fstest.MapFS{"00002_access.sql": {Data: orig}}, []string{"00003_ingest.sql is gone"}},
		{"new file", fstest.MapFS{
			"00002_access.sql": {Data: orig},
			"00003_ingest.sql": mapFile(t, "00003_ingest.sql"),
			"00099_next.sql":   {Data: []byte("-- +goose Up\n")},
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := changedLanded(tc.files, pins)
			if len(got) != len(tc.want) {
				t.Fatalf("complaints = %q, want %d", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("complaint %q lacks %q", got[i], w)
				}
			}
		})
	}
}

func mapFile(t *testing.T, name string) *fstest.MapFile {
	t.Helper()
	b, err := fs.ReadFile(migrations.FS(), name)
	if err != nil {
		t.Fatal(err)
	}
	return &fstest.MapFile{Data: b}
}
