package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Config locates a bucket on AWS S3, Cloudflare R2 or any S3-compatible
// server.
type S3Config struct {
	Endpoint        string // e.g. https://<account>.r2.cloudflarestorage.com; empty for AWS
	Region          string // "auto" for R2
	Bucket          string
	AccessKeyID     string
	SecretAccessKey string
	PathStyle       bool          // path-style addressing (most S3-compatible servers)
	Timeout         time.Duration // wait for a response's headers (30 s); bodies stream as long as the caller's context allows
}

// S3 is a Store on an S3 bucket.
type S3 struct {
	bucket  string
	client  *s3.Client
	presign *s3.PresignClient
}

// NewS3 returns a store on the configured bucket.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" || cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
		return nil, errors.New("blob: s3 needs a bucket and credentials")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	awsCfg := aws.Config{
		Region:      cfg.Region,
		Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, ""),
		// Bounded waits, but no bound on a whole exchange: a PDF streamed to
		// a slow reader may take minutes (the request's context ends it).
		HTTPClient: &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: cfg.Timeout,
			ExpectContinueTimeout: time.Second,
			MaxIdleConns:          128,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
		}},
		// Only checksum when the operation requires it: S3-compatible
		// servers and presigned URLs handle the defaults unevenly.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.UsePathStyle = cfg.PathStyle
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &S3{bucket: cfg.Bucket, client: client, presign: s3.NewPresignClient(client)}, nil
}

// Name implements Store.
func (s *S3) Name() string { return "s3" }

// EnsureBucket creates the bucket when it does not exist (for local
// S3-compatible servers; production buckets are made by their operators).
func (s *S3) EnsureBucket(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); err == nil {
		return nil
	}
	_, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.bucket})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("blob: create bucket: %w", err)
	}
	return nil
}

// PresignPut implements Store. Content-Type is a signed header: the client
// must send exactly it.
func (s *S3) PresignPut(ctx context.Context, key, contentType string, _ int64, ttl time.Duration) (Upload, error) {
	if err := CheckKey(key); err != nil {
		return Upload{}, err
	}
	ttl = min(ttl, MaxUploadTTL)
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, ContentType: &contentType},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return Upload{}, fmt.Errorf("blob: presign put: %w", err)
	}
	return Upload{URL: req.URL, Method: http.MethodPut, Headers: map[string]string{"Content-Type": contentType},
		ExpiresAt: time.Now().Add(ttl).UTC().Truncate(time.Second)}, nil
}

// PresignGet implements Store; the response is an attachment named filename.
func (s *S3) PresignGet(ctx context.Context, key, filename, contentType string, ttl time.Duration) (Download, error) {
	if err := CheckKey(key); err != nil {
		return Download{}, err
	}
	ttl = min(ttl, MaxDownloadTTL)
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key,
		ResponseContentDisposition: aws.String(ContentDisposition(filename)),
		ResponseContentType:        aws.String(contentType),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return Download{}, fmt.Errorf("blob: presign get: %w", err)
	}
	return Download{URL: req.URL, ExpiresAt: time.Now().Add(ttl).UTC().Truncate(time.Second)}, nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return Info{}, s.wrap("stat", key, err)
	}
	return Info{Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag)}, nil
}

// Open implements Store.
func (s *S3) Open(ctx context.Context, key string, r *Range) (io.ReadCloser, Info, error) {
	if err := CheckKey(key); err != nil {
		return nil, Info{}, err
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if r != nil {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", r.Start, r.End))
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, Info{}, s.wrap("get", key, err)
	}
	return out.Body, Info{Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag)}, nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key, contentType string, r io.Reader, size int64) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: r,
		ContentLength: aws.Int64(size), ContentType: &contentType})
	if err != nil {
		return fmt.Errorf("blob: put %s: %w", key, err)
	}
	return nil
}

// Copy implements Store with a server-side CopyObject (atomic in S3).
func (s *S3) Copy(ctx context.Context, src, dst string) error {
	if err := CheckKey(src); err != nil {
		return err
	}
	if err := CheckKey(dst); err != nil {
		return err
	}
	// Keys are of [A-Za-z0-9/._-] only (CheckKey): no escaping is needed.
	_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &s.bucket, Key: &dst, CopySource: aws.String(s.bucket + "/" + src)})
	if err != nil {
		return s.wrap("copy", src, err)
	}
	return nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil && !errors.Is(s.wrap("delete", key, err), ErrNotFound) {
		return s.wrap("delete", key, err)
	}
	return nil
}

// DeletePrefix implements Store: it lists the folder and deletes what it
// finds, a thousand keys per request.
func (s *S3) DeletePrefix(ctx context.Context, prefix string) error {
	if err := CheckPrefix(prefix); err != nil {
		return err
	}
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("blob: list %s: %w", prefix, err)
		}
		if err := s.deleteObjects(ctx, page.Contents); err != nil {
			return err
		}
	}
	return nil
}

// deleteObjects deletes up to a thousand listed objects in one request.
func (s *S3) deleteObjects(ctx context.Context, objs []types.Object) error {
	if len(objs) == 0 {
		return nil
	}
	ids := make([]types.ObjectIdentifier, len(objs))
	for i, o := range objs {
		ids[i] = types.ObjectIdentifier{Key: o.Key}
	}
	out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &s.bucket,
		Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
	if err != nil {
		return fmt.Errorf("blob: delete %d objects: %w", len(ids), err)
	}
	if len(out.Errors) > 0 {
		e := out.Errors[0]
		return fmt.Errorf("blob: delete %s: %s %s (%d failed)", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors))
	}
	return nil
}

func (s *S3) wrap(op, key string, err error) error {
	var nf *types.NotFound
	var nk *types.NoSuchKey
	var re *smithyhttp.ResponseError
	if errors.As(err, &nf) || errors.As(err, &nk) || (errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("blob: %s %s: %w", op, key, err)
}
