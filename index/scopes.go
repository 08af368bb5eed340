package index

// Scope changes: the log tells the engine whose teachers changed (a
// teacher–student relationship made or removed) without telling it the
// teachers themselves; a caller's teachers are still read from PostgreSQL
// and passed in Scope.Teachers. The engine remembers, per user, the
// position of the last such change it applied, so that a cache of teachers
// read at a known position can tell whether it is still exact
// (server/search.ScopeCache). A fresh engine (a base, a restore) remembers
// nothing: such caches are tied to one engine.

// EveryScope, as a scope change, stands for every user's (a TRUNCATE of
// the relationships: replication's assembler).
var EveryScope ID

// changedAlways stands for a scope change of unknown position (a batch
// without one): every cached read of that user is outdated.
const changedAlways = ^LSN(0)

// noteScopes records a batch's scope changes at its position; mu is held.
func (e *Engine) noteScopes(ops Ops) {
	at := ops.Position.LSN
	if at == 0 {
		at = changedAlways
	}
	for _, u := range ops.ScopeChanges {
		if u == EveryScope {
			e.scopesAll = max(e.scopesAll, at)
			continue
		}
		e.scopes[u] = max(e.scopes[u], at)
	}
}

// ScopeChangedAt is the position of the last change to user's teachers
// this engine applied (0: none since it was made). Teachers read from
// PostgreSQL once the engine had applied position p are still exact while
// ScopeChangedAt(user) <= p.
func (e *Engine) ScopeChangedAt(user ID) LSN {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return max(e.scopes[user], e.scopesAll)
}
