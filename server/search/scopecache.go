package search

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
)

// ScopeCache is a node's cache of its users' teachers (Teachers), so that
// a search or a question in a known scope costs no PostgreSQL round trip.
// It is invalidated by the changefeed, not by time: every teacher–student
// relationship made or removed reaches the engine as a scope change of
// its student at the change's position (migration 00013,
// index.Engine.ScopeChangedAt). An entry remembers the engine and the
// position that engine had applied before the teachers were read, its
// generation: it is used only on the same engine while no scope change of
// its user was applied after that position. A read racing a change is
// thus never kept as current (the change is after the position read
// first), and a base or a restore (another engine) empties it wholesale.
//
// It answers from the cache only while the index is ready (fed and within
// its lag bound); otherwise every read goes to PostgreSQL, as without it.
// So a cached scope is never older than the index's lag bound, and a
// request whose min_lsn is at or past a relationship's change (the write's
// X-Index-LSN) reads the teachers afresh.
type ScopeCache struct {
	live  *index.Live
	ready func() bool
	src   Teachers
	max   int

	mu sync.Mutex
	// engine is the engine the entries are of: another one (a base, a
	// restore) empties the cache, and no entry holds an old engine.
	engine  *index.Engine
	entries map[uuid.UUID]scopeEntry
}

// scopeEntry is one user's teachers, read from PostgreSQL once the
// cache's engine had applied at.
type scopeEntry struct {
	at       index.LSN
	teachers []uuid.UUID
}

// NewScopeCache caches src's answers against live's engine while ready
// reports true, holding at most max users (0: 65536; when full it starts
// over).
func NewScopeCache(live *index.Live, ready func() bool, src Teachers, max int) *ScopeCache {
	if max <= 0 {
		max = 1 << 16
	}
	return &ScopeCache{live: live, ready: ready, src: src, max: max, entries: map[uuid.UUID]scopeEntry{}}
}

// TeachersOf implements Teachers: from the cache when its entry is still
// exact for the current engine, else from the source (kept when the index
// is ready).
func (c *ScopeCache) TeachersOf(ctx context.Context, user uuid.UUID) ([]uuid.UUID, error) {
	if c.live == nil || c.ready == nil || !c.ready() {
		return c.read(ctx, user)
	}
	e := c.live.Engine()
	if ts, ok := c.cached(e, user); ok {
		return ts, nil
	}
	at := e.Position().LSN // before the read: a later change invalidates it
	ts, err := c.read(ctx, user)
	if err != nil {
		return nil, err
	}
	c.keep(e, user, scopeEntry{at: at, teachers: ts})
	return ts, nil
}

// read asks the source.
func (c *ScopeCache) read(ctx context.Context, user uuid.UUID) ([]uuid.UUID, error) {
	ts, err := c.src.TeachersOf(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("search: scope cache: %w", err)
	}
	return ts, nil
}

// cached is user's entry when it is exact on e.
func (c *ScopeCache) cached(e *index.Engine, user uuid.UUID) ([]uuid.UUID, bool) {
	c.mu.Lock()
	en, ok := c.entries[user]
	ok = ok && c.engine == e
	c.mu.Unlock()
	if !ok || e.ScopeChangedAt(index.ID(user)) > en.at {
		return nil, false
	}
	return en.teachers, true
}

// keep stores an entry read on e, unless one read at a later position is
// there.
func (c *ScopeCache) keep(e *index.Engine, user uuid.UUID, en scopeEntry) {
	if e != c.live.Engine() {
		return // swapped meanwhile: keep nothing of the old engine
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.engine != e || len(c.entries) >= c.max {
		c.engine = e
		clear(c.entries)
	}
	if old, ok := c.entries[user]; ok && old.at > en.at {
		return
	}
	c.entries[user] = en
}
