package replication

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/sostenuto/sostenuto/index"
)

// EngineSink applies the feed to the node's live engine: a base builds a
// fresh engine and swaps it in whole; transactions apply in order.
type EngineSink struct {
	Live   *index.Live
	Config index.Config
	// Stale is how long without any word from the feed (a transaction or
	// a keepalive) makes the engine not ready.
	Stale time.Duration

	based    atomic.Bool
	lastSeen atomic.Int64 // unix nanoseconds
}

// Base implements Sink.
func (s *EngineSink) Base(_ context.Context, ops index.Ops) error {
	e, err := index.New(s.Config)
	if err != nil {
		return err
	}
	if err := e.Apply(ops); err != nil {
		e.Close()
		return err
	}
	s.Live.Swap(e)
	s.based.Store(true)
	s.lastSeen.Store(time.Now().UnixNano())
	return nil
}

// Apply implements Sink.
func (s *EngineSink) Apply(_ context.Context, ops index.Ops) error {
	if err := s.Live.Engine().Apply(ops); err != nil {
		return err
	}
	s.lastSeen.Store(time.Now().UnixNano())
	return nil
}

// Ready reports whether the engine holds a base and hears from the feed.
func (s *EngineSink) Ready() bool {
	stale := s.Stale
	if stale <= 0 {
		stale = 5 * time.Second
	}
	return s.based.Load() && time.Since(time.Unix(0, s.lastSeen.Load())) < stale
}
