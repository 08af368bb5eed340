package rag

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/fault"
)

// Pending is an asker authenticated from the node's memory of an earlier
// full check (auth.Service.AuthenticateDeferred): its token verified, but
// whether its login session is live, and its role, are yet to be read in
// PostgreSQL. Ask reads them in the same round trip as the retrieval's
// visibility re-check, or alone when it makes none (a kept retrieval),
// and settles the asker before anything of the answer is emitted.
type Pending struct {
	User, Session uuid.UUID
	// Role is the role the asker is taken to have; Settle replaces it
	// with the stored one.
	Role string
	// Confirmed: the session was found live with Role.
	Confirmed bool
}

// ErrSessionEnded: the asker's login session ended (signed out, a token
// replayed) or the user is gone. It wraps fault.ErrUnauthenticated.
var ErrSessionEnded = fmt.Errorf("rag: the session ended: %w", fault.ErrUnauthenticated)

// ErrRoleChanged: the asker's stored role is not the one the retrieval
// was made with; nothing was emitted, and the question must be asked again
// in the scope of the role now in Pending.Role.
var ErrRoleChanged = errors.New("rag: the asker's role changed")

// Settle records what PostgreSQL said of the asker's session: live with
// role, or not.
func (p *Pending) Settle(role string, live bool) error {
	switch {
	case !live:
		return ErrSessionEnded
	case role != p.Role:
		p.Role = role
		p.Confirmed = true
		return ErrRoleChanged
	}
	p.Confirmed = true
	return nil
}

// unsettled reports whether a is an asker still to be confirmed.
func (a *Pending) unsettled() bool { return a != nil && !a.Confirmed }

// visible is the re-check of ids for user, reading the session of an
// unsettled asker in the same round trip (and settling it).
func (s *Service) visible(ctx context.Context, a *Pending, user uuid.UUID, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	if !a.unsettled() {
		return s.store.VisibleChunks(ctx, user, ids)
	}
	vis, role, live, err := s.store.SessionVisibleChunks(ctx, a.User, a.Session, ids)
	if err != nil {
		return nil, err
	}
	if err := a.Settle(role, live); err != nil {
		return nil, err
	}
	return vis, nil
}

// confirm settles an asker still unsettled (one round trip); nothing for
// one settled already or for none.
func (s *Service) confirm(ctx context.Context, a *Pending) error {
	if !a.unsettled() {
		return nil
	}
	if _, err := s.visible(ctx, a, a.User, nil); err != nil {
		return fmt.Errorf("rag: confirm the session: %w", err)
	}
	return nil
}
