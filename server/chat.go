package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/server/cache"
	"github.com/sostenuto/sostenuto/server/rag"
	"github.com/sostenuto/sostenuto/server/store"
)

func (s *Server) chatRoutes(r chi.Router) {
	r.Post("/chat/sessions", s.createChatSession)
	r.Get("/chat/sessions", s.listChatSessions)
	r.Get("/chat/sessions/{id}", s.getChatSession)
	r.Delete("/chat/sessions/{id}", s.deleteChatSession)
	r.With(s.limitChat).Post("/chat/query", s.chatQuery)
}

const (
	maxSessionTitle = 200
	chatDefaultK    = 5
	chatMaxK        = 20
	// contextBudget bounds the passages handed to the answerer (runes).
	contextBudget = 12000
	snippetRunes  = 240
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
	Query     string  `json:"query"`
	SessionID *string `json:"session_id"`
	K         *int    `json:"k"`
}

type chatParams struct {
	query   string
	session uuid.UUID // Nil: none
	k       int
}

func (in chatRequest) validate() (chatParams, error) {
	var errs []FieldError
	p := chatParams{query: strings.TrimSpace(in.Query), k: chatDefaultK}
	if n := utf8.RuneCountInString(p.query); n == 0 || n > maxQueryChars {
		errs = append(errs, FieldError{"query", fmt.Sprintf("must be 1 to %d characters", maxQueryChars)})
	}
	if in.K != nil {
		if *in.K < 1 || *in.K > chatMaxK {
			errs = append(errs, FieldError{"k", fmt.Sprintf("must be 1 to %d", chatMaxK)})
		}
		p.k = *in.K
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

// Source is a passage an answer may cite as [n].
type Source struct {
	N          int       `json:"n"`
	DocumentID uuid.UUID `json:"document_id"`
	Title      string    `json:"title"`
	Page       int       `json:"page"`
	Snippet    string    `json:"snippet"`
	Score      float64   `json:"score"`
}

type chatTimings struct {
	EmbedMs  int64 `json:"embed_ms"`
	SearchMs int64 `json:"search_ms"`
	LLMMs    int64 `json:"llm_ms"`
}

type chatAnswer struct {
	Content    string      `json:"content"`
	Sources    []Source    `json:"sources"`
	Confidence string      `json:"confidence"`
	Model      string      `json:"model"`
	Cached     bool        `json:"cached"`
	Timings    chatTimings `json:"timings"`
}

// chatQuery answers a question from what the caller may see: embed, hybrid
// search in the caller's scope, the final chunks' visibility checked again
// in PostgreSQL, passages deduplicated within a budget, the answerer, the
// confidence rule; stored in the session when one is named. JSON, or SSE
// when the client accepts text/event-stream.
func (s *Server) chatQuery(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	delivery, outcome := "json", "error"
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		delivery = "stream"
	}
	defer func() { s.metrics.rag.WithLabelValues(delivery, outcome).Observe(time.Since(began).Seconds()) }()
	var in chatRequest
	if err := DecodeJSON(w, r, s.bodyLimit(queryBody), &in); err != nil {
		s.WriteError(w, r, err)
		return
	}
	p, err := in.validate()
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	ctx := r.Context()
	user := actor(r)
	if p.session != uuid.Nil {
		if _, err := s.store.ChatSessionByID(ctx, user.ID, p.session); err != nil {
			s.WriteError(w, r, err)
			return
		}
	}
	var timings chatTimings
	passages, sources, searchKey, err := s.retrieve(ctx, user.ID, user.IsAdmin(), p, &timings)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	model := s.answerModel()
	answerKey := ""
	if searchKey != "" {
		answerKey = cache.Key("answer", searchKey, model)
	}
	stream := delivery == "stream"
	// A JSON answer outside a session may be kept by the caller (the edge)
	// and revalidated: its tag names the retrieved sources (after the
	// PostgreSQL re-check) and the answer key.
	etag := ""
	if answerKey != "" && !stream && p.session == uuid.Nil {
		src, _ := json.Marshal(sources)
		etag = etagOf("chat", s.cfg.NodeID, answerKey, string(src))
		if notModified(w, r, etag) {
			outcome = "not_modified"
			return
		}
	}
	var sse *sseWriter
	emit := func(string) error { return nil }
	if stream {
		if !s.streams.take(user.ID) {
			s.metrics.limited.WithLabelValues("streams").Inc()
			w.Header().Set("Retry-After", "5")
			WriteProblem(w, r, NewProblem(http.StatusTooManyRequests, CodeRateLimited,
				fmt.Sprintf("at most %d answer streams may be open at once per user; close one first", s.cfg.Limits.MaxStreamsPerUser)))
			return
		}
		defer s.streams.release(user.ID)
		sse = newSSE(w, r, s.cfg.Limits.StreamWriteTimeout)
		defer sse.close()
		if err := sse.event("sources", sources); err != nil {
			return
		}
		emit = func(delta string) error {
			return sse.event("delta", map[string]string{"text": rag.Sanitize(delta, s.cfg.LinkAllowlist)})
		}
	}
	var out chatAnswer
	if answerKey != "" && s.caches.Answers.Get(ctx, answerKey, &out) && out.Content != "" {
		out.Cached, out.Timings = true, timings
		if err := emit(out.Content); err != nil {
			return
		}
		outcome = "cached"
		s.finishChat(w, r, p, user.ID, out, sse, etag)
		return
	}
	start := time.Now()
	ans, err := s.answerer.Answer(ctx, rag.Request{Question: p.query, Passages: passages}, emit)
	timings.LLMMs = time.Since(start).Milliseconds()
	llmOutcome := "ok"
	if err != nil {
		llmOutcome = "error"
	}
	s.metrics.llm.WithLabelValues(model, llmOutcome).Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() != nil {
			return // the client went away; nothing to answer
		}
		prob := s.upstreamProblem(r, &upstreamError{service: "the language model", err: err})
		if stream {
			sse.event("error", prob) //nolint:errcheck // the stream ends either way
			return
		}
		WriteProblem(w, r, prob)
		return
	}
	out = chatAnswer{Content: rag.Sanitize(ans.Content, s.cfg.LinkAllowlist), Sources: sources,
		Confidence: rag.Confidence(ans, passages), Model: ans.Model, Timings: timings}
	if answerKey != "" && ans.Model == model { // a fallback answer is not kept
		s.caches.Answers.Set(ctx, answerKey, out)
	} else {
		etag = ""
	}
	outcome = "answered"
	s.finishChat(w, r, p, user.ID, out, sse, etag)
}

// finishChat stores the exchange when a session is named and sends the
// answer (JSON, or the stream's done event); a JSON answer with a tag may
// be kept and revalidated.
func (s *Server) finishChat(w http.ResponseWriter, r *http.Request, p chatParams, user uuid.UUID, out chatAnswer, sse *sseWriter, etag string) {
	ctx := r.Context()
	stream := sse != nil
	if p.session != uuid.Nil {
		srcJSON, _ := json.Marshal(out.Sources)
		conf, model := out.Confidence, out.Model
		err := s.store.AddExchange(ctx, user, p.session, p.query,
			store.ChatMessage{Content: out.Content, Sources: srcJSON, Confidence: &conf, Model: &model})
		if err != nil {
			if stream {
				prob := problemOf(err)
				if prob == nil {
					prob = NewProblem(http.StatusInternalServerError, CodeInternal, "the exchange could not be stored")
				}
				sse.event("error", prob) //nolint:errcheck // the stream ends either way
				return
			}
			s.WriteError(w, r, err)
			return
		}
	}
	if stream {
		sse.event("done", out) //nolint:errcheck // the stream ends either way
		return
	}
	if etag != "" {
		setValidator(w, etag)
	} else {
		noStore(w)
	}
	WriteJSON(w, http.StatusOK, out)
}

// retrieve finds the passages for a question: only chunks the caller may
// see, checked in the index and again in PostgreSQL, deduplicated and
// within the context budget, numbered from 1.
func (s *Server) retrieve(ctx context.Context, user uuid.UUID, admin bool, p chatParams, t *chatTimings) ([]rag.Passage, []Source, string, error) {
	start := time.Now()
	// Cached only when the local index answers: keyed by what the caller
	// may see and what the index holds, and re-checked against PostgreSQL
	// on every hit, like a fresh search.
	key := ""
	var teachers []uuid.UUID
	content, cachable := s.contentKey(ctx)
	if cachable {
		scope, ts, err := s.scopeKey(ctx, user, admin)
		teachers = ts
		if err != nil {
			return nil, nil, "", err
		}
		key = cache.Key("search", scope, content, s.embedder.Model(), cache.Normalize(p.query), fmt.Sprint(p.k))
		var hit retrieved
		if s.caches.Searches.Get(ctx, key, &hit) {
			visible, err := s.store.VisibleChunks(ctx, user, hit.ChunkIDs)
			if err != nil {
				return nil, nil, "", err
			}
			if len(visible) == len(hit.ChunkIDs) {
				t.SearchMs = time.Since(start).Milliseconds()
				return hit.Passages, hit.Sources, key, nil
			}
			// Something was hidden since: search again, answer afresh.
			s.caches.Answers.Set(ctx, cache.Key("answer", key, s.answerModel()), nil)
		}
	}
	start = time.Now()
	mode := index.ModeHybrid
	vec, err := s.embedQuestion(ctx, user, p.query)
	switch {
	case errors.Is(err, errNothingToEmbed):
		mode = index.ModeBM25
	case err != nil:
		return nil, nil, "", fmt.Errorf("chat: embed the question: %w", err)
	}
	t.EmbedMs = time.Since(start).Milliseconds()
	start = time.Now()
	sp := SearchParams{Query: p.query, K: p.k, Mode: mode, Use: "chat"}
	var res searchResponse
	if e := s.localEngine(ctx, 0); e != nil {
		res, err = s.searchLocal(ctx, e, user, admin, sp, vec, teachers, cachable)
	} else {
		res, err = s.searchFallback(ctx, user, admin, sp, vec)
	}
	if err != nil {
		return nil, nil, "", err
	}
	ids := make([]uuid.UUID, len(res.Results))
	for i, h := range res.Results {
		ids[i] = h.ChunkID
	}
	visible, err := s.store.VisibleChunks(ctx, user, ids)
	if err != nil {
		return nil, nil, "", err
	}
	t.SearchMs = time.Since(start).Milliseconds()
	seen := map[string]bool{}
	budget := contextBudget
	passages := []rag.Passage{}
	sources := []Source{}
	for _, h := range res.Results {
		if !visible[h.ChunkID] {
			continue // hidden or deleted since the index answered
		}
		key := strings.Join(strings.Fields(strings.ToLower(h.Text)), " ")
		if seen[key] {
			continue
		}
		n := utf8.RuneCountInString(h.Text)
		if n > budget {
			break
		}
		seen[key] = true
		budget -= n
		num := len(passages) + 1
		passages = append(passages, rag.Passage{N: num, Title: h.Title, Page: h.PageStart, Text: h.Text,
			VectorRank: deref(h.VectorRank), BM25Rank: deref(h.BM25Rank)})
		sources = append(sources, Source{N: num, DocumentID: h.DocumentID, Title: h.Title, Page: h.PageStart,
			Snippet: snippet(h.Text), Score: h.Score})
	}
	if key != "" {
		var used []uuid.UUID
		for _, h := range res.Results {
			if visible[h.ChunkID] {
				used = append(used, h.ChunkID)
			}
		}
		s.caches.Searches.Set(ctx, key, retrieved{Passages: passages, Sources: sources, ChunkIDs: used})
	}
	return passages, sources, key, nil
}

// retrieved is what the search layer of the cache keeps.
type retrieved struct {
	Passages []rag.Passage `json:"passages"`
	Sources  []Source      `json:"sources"`
	ChunkIDs []uuid.UUID   `json:"chunk_ids"` // re-checked on every hit
}

// answerModel names the configured answerer (part of answer keys).
func (s *Server) answerModel() string {
	if m, ok := s.answerer.(interface{ Model() string }); ok {
		return m.Model()
	}
	return fmt.Sprintf("%T", s.answerer)
}

func snippet(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= snippetRunes {
		return s
	}
	return string(r[:snippetRunes-1]) + "…"
}

// sseWriter writes Server-Sent Events, flushing each, with a heartbeat
// comment every 15 s while the answer is produced.
type sseWriter struct {
	mu sync.Mutex
	w  http.ResponseWriter
	rc *http.ResponseController
	// writeTimeout bounds each event's write: a reader that stalls is
	// dropped instead of holding the stream.
	writeTimeout time.Duration
	stop         chan struct{}
	done         chan struct{}
}

func newSSE(w http.ResponseWriter, r *http.Request, writeTimeout time.Duration) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	s := &sseWriter{w: w, rc: http.NewResponseController(w), writeTimeout: writeTimeout, stop: make(chan struct{}), done: make(chan struct{})}
	s.deadline()
	w.WriteHeader(http.StatusOK)
	s.rc.Flush() //nolint:errcheck // a failed flush shows on the next write
	go func() {
		defer close(s.done)
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-r.Context().Done():
				return
			case <-t.C:
				s.mu.Lock()
				s.deadline()
				fmt.Fprint(s.w, ": heartbeat\n\n")
				s.rc.Flush() //nolint:errcheck // the client may be gone
				s.mu.Unlock()
			}
		}
	}()
	return s
}

func (s *sseWriter) event(name string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadline()
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// deadline gives the next write writeTimeout.
func (s *sseWriter) deadline() {
	if s.writeTimeout > 0 {
		s.rc.SetWriteDeadline(time.Now().Add(s.writeTimeout)) //nolint:errcheck // not every writer supports deadlines
	}
}

func (s *sseWriter) close() {
	close(s.stop)
	<-s.done
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
