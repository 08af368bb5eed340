package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sostenuto/sostenuto/server/access"
	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/rag"
	"github.com/sostenuto/sostenuto/server/store"
)

// chatReply delivers one chat answer: as JSON (revalidatable outside a
// session), or as a stream of Server-Sent Events (sources, deltas, then
// done or error). It is the rag.Emitter of the question.
type chatReply struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	user    access.Actor
	session uuid.UUID // Nil: none
	query   string    // as asked
	stream  bool
	sse     *sseWriter
	slot    bool   // a stream slot is held
	etag    string // a JSON answer's tag, outside a session
	began   time.Time
	outcome string // answered, cached, not_modified, error
}

// errStreamGone: the stream could not be written; nothing more can be said.
var errStreamGone = errors.New("chat: the stream is gone")

func (s *Server) newChatReply(w http.ResponseWriter, r *http.Request) *chatReply {
	return &chatReply{s: s, w: w, r: r, user: actor(r), began: time.Now(), outcome: "error",
		stream: strings.Contains(r.Header.Get("Accept"), "text/event-stream")}
}

// Retrieved implements rag.Emitter: a JSON answer outside a session gets
// a tag naming the retrieved sources (after the PostgreSQL re-check) and
// the answer key, checked against If-None-Match before anything is
// answered; a stream takes one of the user's stream slots and opens with
// the sources.
func (c *chatReply) Retrieved(sources []rag.Source, key string) error {
	if key != "" && !c.stream && c.session == uuid.Nil {
		src, _ := json.Marshal(sources)
		c.etag = etagOf("chat", c.s.cfg.NodeID, key, c.query, string(src))
		return ifNoneMatch(c.r, c.etag)
	}
	if !c.stream {
		return nil
	}
	if !c.s.streams.take(c.user.ID) {
		c.s.metrics.limited.WithLabelValues("streams").Inc()
		c.w.Header().Set("Retry-After", "5")
		return NewProblem(http.StatusTooManyRequests, CodeRateLimited,
			fmt.Sprintf("at most %d answer streams may be open at once per user; close one first", c.s.cfg.Limits.MaxStreamsPerUser))
	}
	c.slot = true
	c.sse = newSSE(c.w, c.r, c.s.cfg.Limits.StreamWriteTimeout)
	if err := c.sse.event("sources", sources); err != nil {
		return fmt.Errorf("%w: %w", errStreamGone, err)
	}
	return nil
}

// Delta implements rag.Emitter.
func (c *chatReply) Delta(text string) error {
	if c.sse == nil {
		return nil
	}
	return c.sse.event("delta", map[string]string{"text": text})
}

// fail answers err: before a stream opens as a problem, after it as the
// stream's error event; nothing when the client is gone.
func (c *chatReply) fail(err error) {
	switch {
	case errors.Is(err, errNotModified):
		c.outcome = "not_modified"
		writeNotModified(c.w, c.etag)
	case errors.Is(err, errStreamGone), errors.Is(err, rag.ErrDelivery):
	case errors.Is(err, fault.ErrLanguageModel):
		if c.r.Context().Err() != nil {
			return // the client went away; nothing to answer
		}
		c.problem(c.s.upstreamProblem(c.r, upstreamOf(err)))
	case c.sse != nil:
		prob := problemOf(err)
		if prob == nil {
			prob = NewProblem(http.StatusInternalServerError, CodeInternal, "the answer failed")
		}
		c.problem(prob)
	default:
		c.s.WriteError(c.w, c.r, err)
	}
}

// problem sends prob as the stream's error event, or as the answer.
func (c *chatReply) problem(prob *Problem) {
	if c.sse != nil {
		c.sse.event("error", prob) //nolint:errcheck // the stream ends either way
		return
	}
	WriteProblem(c.w, c.r, prob)
}

// chatAnswer is an answer as the API gives it: the reply and, in a
// session, the id of its stored message.
type chatAnswer struct {
	rag.Reply
	MessageID *uuid.UUID `json:"message_id"`
}

// finish stores the exchange when a session is named and sends the answer
// (JSON, or the stream's done event); a kept JSON answer with a tag may be
// revalidated.
func (c *chatReply) finish(question string, out rag.Reply) {
	c.outcome = "answered"
	if out.Cached {
		c.outcome = "cached"
	}
	ans := chatAnswer{Reply: out}
	if c.session != uuid.Nil {
		srcJSON, _ := json.Marshal(out.Sources)
		conf, model := out.Confidence, out.Model
		id, err := c.s.store.AddExchange(c.r.Context(), c.user.ID, c.session, question,
			store.ChatMessage{Content: out.Content, Sources: srcJSON, Confidence: &conf, Model: &model})
		ans.MessageID = &id
		if err != nil && c.sse != nil {
			prob := problemOf(err)
			if prob == nil {
				prob = NewProblem(http.StatusInternalServerError, CodeInternal, "the exchange could not be stored")
			}
			c.problem(prob)
			return
		}
		if err != nil {
			c.s.WriteError(c.w, c.r, err)
			return
		}
	}
	if c.sse != nil {
		c.sse.event("done", ans) //nolint:errcheck // the stream ends either way
		return
	}
	revalidatable(c.w, c.etag, out.Kept)
	WriteJSON(c.w, http.StatusOK, ans)
}

// close ends the stream, frees its slot and times the question.
func (c *chatReply) close() {
	if c.sse != nil {
		c.sse.close()
	}
	if c.slot {
		c.s.streams.release(c.user.ID)
	}
	delivery := "json"
	if c.stream {
		delivery = "stream"
	}
	c.s.metrics.rag.WithLabelValues(delivery, c.outcome).Observe(time.Since(c.began).Seconds())
}
