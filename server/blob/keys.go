package blob

import (
	"path"
	"strconv"
	"strings"
	"time"
)

// Upload keys and sealed keys. A client writes only where its presigned
// upload URL points: an upload key the server made, prefix/{id}/{uuid}.ext.
// Such a URL cannot be recalled before it expires, so nothing is served or
// processed from an upload key: when the server accepts an upload (a
// project's confirm, a document's process) it copies the object to a
// sealed key, prefix/{id}/{uuid}/{version}.ext, which no upload URL ever
// names, and serves, checks and processes that copy only. A PUT after the
// copy lands on the upload key, which is never read again and is deleted.

// UploadWindow bounds how long after its upload URL was made an upload
// key can still be written: the URL's longest life plus a margin for
// clocks (the store checks the expiry with its own).
const UploadWindow = MaxUploadTTL + 5*time.Minute

// SealedKey is the key an upload is copied to when accepted; version
// makes each copy's key new (a fresh UUID).
func SealedKey(upload, version string) string {
	ext := path.Ext(upload)
	return strings.TrimSuffix(upload, ext) + "/" + version + ext
}

// IsSealed says whether key is a sealed key (no upload URL names it).
func IsSealed(key string) bool { return strings.Count(key, "/") == 3 }

// UploadKeyOf is the upload key a sealed key was copied from; any other
// key is its own upload key.
func UploadKeyOf(key string) string {
	if !IsSealed(key) {
		return key
	}
	return path.Dir(key) + path.Ext(key)
}

// Page images are kept at page-images/{project}/{version}/{page}-{width}.png,
// version naming the stored PDF they were drawn from: a project's images
// share one folder, which deleting the project removes.

// PageImagePrefix is the folder of a project's page images.
func PageImagePrefix(project string) string { return "page-images/" + project + "/" }

// PageImageKey is where page (1-based) of a project's PDF, in the version
// named version, is kept as a PNG width pixels wide.
func PageImageKey(project, version string, page, width int) string {
	return PageImagePrefix(project) + version + "/" + strconv.Itoa(page) + "-" + strconv.Itoa(width) + ".png"
}
