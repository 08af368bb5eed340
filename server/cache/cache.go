// Package cache is the answer path's cache: layers (embeddings, search
// results, answers, and the per-user markers of who asked for an
// embedding) over one store, in process by default (a bounded, expiring
// LRU from hashicorp/golang-lru), with hit, miss and error counts. A cache
// that fails never fails a request: errors count as misses.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/prometheus/client_golang/prometheus"
)

// Store keeps bytes by key for a while.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
}

// Memory is an in-process store: at most Size entries, each for at most
// the TTL it was set with (the longest TTL bounds all of them).
type Memory struct {
	lru *expirable.LRU[string, []byte]
}

// NewMemory holds up to size entries for at most maxTTL each.
func NewMemory(size int, maxTTL time.Duration) *Memory {
	return &Memory{lru: expirable.NewLRU[string, []byte](size, nil, maxTTL)}
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) ([]byte, bool, error) {
	v, ok := m.lru.Get(key)
	return v, ok, nil
}

// Set implements Store.
func (m *Memory) Set(_ context.Context, key string, val []byte, _ time.Duration) error {
	m.lru.Add(key, val)
	return nil
}

// Version is part of every key: bump it when what is cached changes shape.
const Version = "v2"

// Key is the SHA-256 of the parts, joined unambiguously.
func Key(layer string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(Version + "\x00" + layer))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return layer + ":" + hex.EncodeToString(h.Sum(nil))
}

// Normalize folds what should not change an answer: case and whitespace.
func Normalize(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}

// Layer is one named use of a store, with its TTL and metrics.
type Layer struct {
	name    string
	store   Store
	ttl     time.Duration
	logger  *slog.Logger
	results *prometheus.CounterVec
}

// Layers are the caches of the answer path. Embeddings are shared by all
// users (keyed by model and text); Askers marks, per user, the texts that
// user had embedded, so that what a user is told (and how long it takes)
// never depends on what others asked. Searches and answers are keyed by the
// caller's visibility scope.
type Layers struct {
	Embeddings, Askers, Searches, Answers *Layer
}

// NewLayers builds the layers over store (nil: no caching), with their
// TTLs (askers live as long as embeddings), registering
// sostenuto_cache_requests_total{layer,result}.
func NewLayers(store Store, embedTTL, searchTTL, answerTTL time.Duration, reg *prometheus.Registry, logger *slog.Logger) Layers {
	results := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sostenuto_cache_requests_total",
		Help: "Cache lookups by layer (embeddings, askers, searches, answers) and result (hit, miss, error)."}, []string{"layer", "result"})
	if reg != nil {
		reg.MustRegister(results)
	}
	mk := func(name string, ttl time.Duration) *Layer {
		return &Layer{name: name, store: store, ttl: ttl, logger: logger, results: results}
	}
	return Layers{Embeddings: mk("embeddings", embedTTL), Askers: mk("askers", embedTTL),
		Searches: mk("searches", searchTTL), Answers: mk("answers", answerTTL)}
}

// Get decodes the value at key into out; false on a miss or any failure.
func (l *Layer) Get(ctx context.Context, key string, out any) bool {
	if l == nil || l.store == nil {
		return false
	}
	b, ok, err := l.store.Get(ctx, key)
	if err == nil && ok {
		err = json.Unmarshal(b, out)
	}
	switch {
	case err != nil:
		l.results.WithLabelValues(l.name, "error").Inc()
		l.logger.Warn("cache read failed; computing instead", "component", "cache", "layer", l.name, "error", err)
		return false
	case !ok:
		l.results.WithLabelValues(l.name, "miss").Inc()
		return false
	}
	l.results.WithLabelValues(l.name, "hit").Inc()
	return true
}

// Set stores v at key; failures are counted and logged, never returned.
func (l *Layer) Set(ctx context.Context, key string, v any) {
	if l == nil || l.store == nil {
		return
	}
	b, err := json.Marshal(v)
	if err == nil {
		err = l.store.Set(ctx, key, b, l.ttl)
	}
	if err != nil {
		l.results.WithLabelValues(l.name, "error").Inc()
		l.logger.Warn("cache write failed", "component", "cache", "layer", l.name, "error", err)
	}
}
