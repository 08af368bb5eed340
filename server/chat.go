package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/rag"
	"github.com/sostenuto/sostenuto/server/search"
	"github.com/sostenuto/sostenuto/server/store"
)

// chatRoutes registers the chat routes but POST /chat/query, which
// routes registers under requireAuthDeferred.
func (s *Server) chatRoutes(r chi.Router) {
	r.Post("/chat/sessions", s.createChatSession)
	r.Get("/chat/sessions", s.listChatSessions)
	r.Get("/chat/sessions/{id}", s.getChatSession)
	r.Delete("/chat/sessions/{id}", s.deleteChatSession)
	s.feedbackRoutes(r)
}

const (
	maxSessionTitle = 200
	chatDefaultK    = 5
	chatMaxK        = 20
	// chatHistoryTurns is how many earlier turns make a follow-up standalone.
	chatHistoryTurns = 4
)

type createSessionRequest struct {
	Title *string `json:"title"`
}

func (s *Server) createChatSession(w http.ResponseWriter, r *http.Request) {
	var in createSessionRequest
	if r.ContentLength != 0 { // the body is optional
		if err := DecodeJSON(w, r, s.bodyLimit(smallBody), &in); err != nil {
			s.WriteError(w, r, err)
			return
		}
	}
	title := strings.TrimSpace(deref(in.Title))
	if utf8.RuneCountInString(title) > maxSessionTitle {
		s.WriteError(w, r, Invalid("the session has invalid fields", FieldError{"title", fmt.Sprintf("must be at most %d characters", maxSessionTitle)}))
		return
	}
	sess, err := s.store.CreateChatSession(r.Context(), actor(r).ID, title)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/chat/sessions/"+sess.ID.String())
	WriteJSON(w, http.StatusCreated, newChatSessionResponse(sess))
}

func (s *Server) listChatSessions(w http.ResponseWriter, r *http.Request) {
	page, err := pageParams(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	items, next, err := s.store.ListChatSessions(r.Context(), actor(r).ID, page)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	noStore(w)
	WriteJSON(w, http.StatusOK, newList(mapItems(items, newChatSessionResponse), next))
}

// A session is its owner's alone: anyone else, administrators included,
// gets 404 (Row Level Security hides it).
func (s *Server) getChatSession(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	sess, err := s.store.ChatSessionByID(r.Context(), actor(r).ID, id)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	msgs, err := s.store.ChatMessages(r.Context(), actor(r).ID, id)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	noStore(w)
	WriteJSON(w, http.StatusOK, map[string]any{"session": newChatSessionResponse(sess), "messages": mapItems(msgs, newChatMessageResponse)})
}

func (s *Server) deleteChatSession(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if err := s.store.DeleteChatSession(r.Context(), actor(r).ID, id); err != nil {
		s.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type chatRequest struct {
	Query     string   `json:"query"`
	SessionID *string  `json:"session_id"`
	K         *int     `json:"k"`
	Rerank    *bool    `json:"rerank"`
	Kinds     []string `json:"kinds"`
	Project   *string  `json:"project_id"`
	MinLSN    string   `json:"min_lsn"`
}

type chatParams struct {
	query   string
	session uuid.UUID // Nil: none
	k       int
	rerank  *bool // nil: the configured default
	kinds   []string
	project *uuid.UUID
	minLSN  index.LSN // 0: none
}

func (in chatRequest) validate() (chatParams, error) {
	var errs []FieldError
	p := chatParams{query: strings.TrimSpace(in.Query), k: chatDefaultK, rerank: in.Rerank}
	if n := utf8.RuneCountInString(p.query); n == 0 || n > maxQueryChars {
		errs = append(errs, FieldError{"query", fmt.Sprintf("must be 1 to %d characters", maxQueryChars)})
	}
	if in.K != nil {
		if *in.K < 1 || *in.K > chatMaxK {
			errs = append(errs, FieldError{"k", fmt.Sprintf("must be 1 to %d", chatMaxK)})
		}
		p.k = *in.K
	}
	var bad *FieldError
	if p.kinds, p.project, bad = parseKinds(in.Kinds, in.Project); bad != nil {
		errs = append(errs, *bad)
	}
	if p.minLSN, bad = parseMinLSN(in.MinLSN); bad != nil {
		errs = append(errs, *bad)
	}
	if in.SessionID != nil {
		id, err := uuid.Parse(*in.SessionID)
		if err != nil {
			errs = append(errs, FieldError{"session_id", "must be a session id"})
		}
		p.session = id
	}
	if len(errs) > 0 {
		return p, Invalid("the question has invalid fields", errs...)
	}
	return p, nil
}

// chatQuery answers a question from what the caller may see (rag.Service:
// retrieval in the caller's scope re-checked in PostgreSQL, the answerer,
// the confidence rule); stored in the session when one is named. JSON, or
// SSE when the client accepts text/event-stream.
//
// The caller may be pending (requireAuthDeferred): nothing is answered,
// read from its session or stored before its session is confirmed live in
// PostgreSQL, by rag.Ask with its re-check or by s.confirm.
func (s *Server) chatQuery(w http.ResponseWriter, r *http.Request) {
	reply := s.newChatReply(w, r)
	defer reply.close()
	asker := pendingAsker(r)
	var in chatRequest
	if err := DecodeJSON(w, r, s.bodyLimit(queryBody), &in); err != nil {
		s.WriteError(w, r, s.confirm(r, asker, err))
		return
	}
	p, err := in.validate()
	if err != nil {
		s.WriteError(w, r, s.confirm(r, asker, err))
		return
	}
	if p.session != uuid.Nil {
		if err := s.confirm(r, asker, nil); err != nil {
			s.WriteError(w, r, err)
			return
		}
	}
	history, err := s.chatHistory(r, reply.user.ID, p.session)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	reply.session, reply.query = p.session, p.query
	out, err := s.ask(r, reply, p, history, asker)
	if err != nil {
		reply.fail(s.confirm(r, asker, err))
		return
	}
	reply.finish(p.query, out)
}

// ask asks rag in the caller's scope; again, once, in the scope of its
// role as stored, when the asker's role changed since the node saw it.
func (s *Server) ask(r *http.Request, reply *chatReply, p chatParams, history []rag.Turn, asker *rag.Pending) (rag.Reply, error) {
	scope := search.Scope{User: reply.user.ID, Admin: reply.user.IsAdmin()}
	q := rag.Question{Text: p.query, K: p.k, History: history, Rerank: s.rerankDefault(p.rerank),
		Kinds: p.kinds, ProjectID: p.project, MinLSN: p.minLSN, Asker: asker}
	out, err := s.rag.Ask(r.Context(), q, scope, reply)
	if errors.Is(err, rag.ErrRoleChanged) {
		s.auth.Forget(asker.User, asker.Session)
		reply.user.Role = asker.Role
		scope.Admin = reply.user.IsAdmin()
		return s.rag.Ask(r.Context(), q, scope, reply)
	}
	return out, err
}

// chatHistory loads the last turns of the asker's session (404 for a
// session that is not the asker's own); none outside a session.
func (s *Server) chatHistory(r *http.Request, user, session uuid.UUID) ([]rag.Turn, error) {
	if session == uuid.Nil {
		return nil, nil
	}
	if _, err := s.store.ChatSessionByID(r.Context(), user, session); err != nil {
		return nil, err
	}
	turns, err := s.store.RecentTurns(r.Context(), user, session, chatHistoryTurns)
	if err != nil {
		return nil, err
	}
	return mapItems(turns, func(t store.ChatTurn) rag.Turn { return rag.Turn{Question: t.Question, Answer: t.Answer} }), nil
}

// chatSessionResponse is a chat session as the API answers it.
type chatSessionResponse struct {
	ID        uuid.UUID `json:"id"`
	UserID    uuid.UUID `json:"user_id"`
	Title     string    `json:"title"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func newChatSessionResponse(c store.ChatSession) chatSessionResponse {
	return chatSessionResponse{ID: c.ID, UserID: c.UserID, Title: c.Title, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

// chatMessageResponse is one message of a session as the API answers it.
type chatMessageResponse struct {
	ID         uuid.UUID       `json:"id"`
	SessionID  uuid.UUID       `json:"session_id"`
	Role       string          `json:"role"`
	Content    string          `json:"content"`
	Sources    json.RawMessage `json:"sources"`
	Confidence *string         `json:"confidence"`
	Model      *string         `json:"model"`
	CreatedAt  time.Time       `json:"created_at"`
}

func newChatMessageResponse(m store.ChatMessage) chatMessageResponse {
	return chatMessageResponse{ID: m.ID, SessionID: m.SessionID, Role: m.Role, Content: m.Content,
		Sources: m.Sources, Confidence: m.Confidence, Model: m.Model, CreatedAt: m.CreatedAt}
}
