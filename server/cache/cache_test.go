package cache

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestKey(t *testing.T) {
	a := Key("search", "user|false|", "0/1", "pedal")
	if a != Key("search", "user|false|", "0/1", "pedal") {
		t.Error("keys are not deterministic")
	}
	for _, b := range []string{
		Key("answer", "user|false|", "0/1", "pedal"),
		Key("search", "user|true|", "0/1", "pedal"),
		Key("search", "user|false|", "0/2", "pedal"),
		Key("search", "user|false|0/1", "", "pedal"), // parts do not run together
	} {
		if a == b {
			t.Errorf("%s collides", b)
		}
	}
	if Normalize("  Damper\tPEDAL  now ") != "damper pedal now" {
		t.Error("normalize")
	}
}

func TestMemoryExpires(t *testing.T) {
	m := NewMemory(2, 50*time.Millisecond)
	ctx := context.Background()
	m.Set(ctx, "a", []byte("1"), 0)
	m.Set(ctx, "b", []byte("2"), 0)
	m.Set(ctx, "c", []byte("3"), 0) // evicts a
	if _, ok, _ := m.Get(ctx, "a"); ok {
		t.Error("size not bounded")
	}
	if v, ok, _ := m.Get(ctx, "c"); !ok || string(v) != "3" {
		t.Error("c missing")
	}
	time.Sleep(120 * time.Millisecond)
	if _, ok, _ := m.Get(ctx, "c"); ok {
		t.Error("entry outlived its TTL")
	}
}

type broken struct{}

func (broken) Get(context.Context, string) ([]byte, bool, error) {
	return nil, false, errors.New("down")
}
func (broken) Set(context.Context, string, []byte, time.Duration) error {
	return errors.New("down")
}

func TestLayers(t *testing.T) {
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	l := NewLayers(NewMemory(10, time.Minute), time.Minute, time.Minute, time.Minute, reg, logger)
	ctx := context.Background()
	var v []float32
	if l.Embeddings.Get(ctx, "k", &v) {
		t.Error("hit on an empty cache")
	}
	l.Embeddings.Set(ctx, "k", []float32{1, 2})
	if !l.Embeddings.Get(ctx, "k", &v) || len(v) != 2 || v[1] != 2 {
		t.Errorf("got %v", v)
	}
	// A failing store is a miss, counted, never an error.
	b := NewLayers(broken{}, time.Minute, time.Minute, time.Minute, prometheus.NewRegistry(), logger)
	b.Answers.Set(ctx, "k", "x")
	var s string
	if b.Answers.Get(ctx, "k", &s) {
		t.Error("a broken store hit")
	}
	if n := testutil.ToFloat64(l.Embeddings.results.WithLabelValues("embeddings", "hit")); n != 1 {
		t.Errorf("%v hits", n)
	}
	if n := testutil.ToFloat64(b.Answers.results.WithLabelValues("answers", "error")); n != 2 {
		t.Errorf("%v errors", n)
	}
	// No store: nothing cached, nothing fails.
	var none Layers
	none.Searches.Set(ctx, "k", 1)
	if none.Searches.Get(ctx, "k", &s) {
		t.Error("nil layer hit")
	}
}
