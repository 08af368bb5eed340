package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/sostenuto/sostenuto/server/blob"
)

// blobConfig selects and configures the blob store.
type blobConfig struct {
	backend     string
	publicURL   string
	secret      string
	maxUpload   int64
	s3Endpoint  string
	s3Region    string
	s3Bucket    string
	s3AccessKey string
	s3Secret    string
	s3PathStyle bool
	s3Create    bool
}

func (c *blobConfig) settings() []setting {
	return []setting{
		{name: "blob-backend", usage: "object storage: local (files under DATA_DIR/blobs, URLs served by the node) or s3", def: "local", parse: oneOfVar(&c.backend, "local", "s3")},
		{name: "public-url", usage: "base URL clients reach this node at, for local blob URLs (default http://localhost:<listen port>)", parse: stringVar(&c.publicURL)},
		{name: "blob-signing-secret", secret: true, usage: "HMAC secret (32+ bytes) of local blob URLs; default DATA_DIR/blob-signing.key, generated", parse: stringVar(&c.secret)},
		{name: "max-upload-bytes", usage: "largest PDF accepted", def: "104857600", parse: intVar(&c.maxUpload, 1024, 1<<40)},
		{name: "s3-endpoint", usage: "S3 endpoint URL (empty for AWS; https://<account>.r2.cloudflarestorage.com for R2)", parse: stringVar(&c.s3Endpoint)},
		{name: "s3-region", usage: "S3 region (auto for R2)", def: "us-east-1", parse: stringVar(&c.s3Region)},
		{name: "s3-bucket", usage: "S3 bucket", parse: stringVar(&c.s3Bucket)},
		{name: "s3-access-key-id", usage: "S3 access key id", parse: stringVar(&c.s3AccessKey)},
		{name: "s3-secret-access-key", secret: true, usage: "S3 secret access key", parse: stringVar(&c.s3Secret)},
		boolSetting("s3-path-style", "path-style S3 addressing (most S3-compatible servers)", "false", &c.s3PathStyle),
		boolSetting("s3-create-bucket", "create the bucket at start when missing", "false", &c.s3Create),
	}
}

// store builds the configured blob store.
func (c *blobConfig) store(ctx context.Context, dataDir, listen string) (blob.Store, error) {
	if c.backend == "s3" {
		s, err := blob.NewS3(blob.S3Config{Endpoint: c.s3Endpoint, Region: c.s3Region, Bucket: c.s3Bucket,
			AccessKeyID: c.s3AccessKey, SecretAccessKey: c.s3Secret, PathStyle: c.s3PathStyle})
		if err != nil {
			return nil, &configError{setting: envName("s3-bucket"), err: err}
		}
		if c.s3Create {
			if err := s.EnsureBucket(ctx); err != nil {
				return nil, err
			}
		}
		return s, nil
	}
	secret := []byte(c.secret)
	if c.secret == "" {
		var err error
		if secret, err = blob.EnsureSecret(filepath.Join(dataDir, "blob-signing.key")); err != nil {
			return nil, &configError{setting: envName("blob-signing-secret"), err: err}
		}
	}
	pub := c.publicURL
	if pub == "" {
		_, port, _ := net.SplitHostPort(listen)
		pub = "http://localhost:" + port
	}
	if !strings.HasPrefix(pub, "http://") && !strings.HasPrefix(pub, "https://") {
		return nil, &configError{setting: envName("public-url"), err: fmt.Errorf("%q is not an http(s) URL", pub)}
	}
	l, err := blob.NewLocal(filepath.Join(dataDir, "blobs"), strings.TrimSuffix(pub, "/"), secret)
	if err != nil {
		return nil, &configError{setting: envName("blob-signing-secret"), err: err}
	}
	return l, nil
}
