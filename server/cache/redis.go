package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a store shared by the nodes: one Redis (or Valkey, or any
// server speaking its protocol). Calls are bounded by short timeouts, so a
// slow or absent server costs a request little (and fails nothing: the
// layer counts it as a miss).
type Redis struct {
	c      *redis.Client
	prefix string
}

// NewRedis connects to url (redis://[:password@]host:port/db).
func NewRedis(url string) (*Redis, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("cache: redis URL: %w", err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond, 300*time.Millisecond
	opt.MaxRetries = -1 // no retries: a miss is cheaper than a wait
	opt.DialerRetries, opt.DialerRetryTimeout = 1, 50*time.Millisecond
	return &Redis{c: redis.NewClient(opt), prefix: "sostenuto:"}, nil
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b, err := r.c.Get(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// Set implements Store.
func (r *Redis) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	return r.c.Set(ctx, r.prefix+key, val, ttl).Err()
}

// Close releases the connections.
func (r *Redis) Close() error { return r.c.Close() }
