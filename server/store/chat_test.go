package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Two questions asked at once in one session: the first to begin its
// transaction takes the session's lock first, but the second one's
// exchange may be written in between. Each answer still pairs with its
// own question, in the model's history (RecentTurns) and in the feedback
// review view.
func TestConcurrentExchangesPair(t *testing.T) {
	w := newRLSWorld(t)
	ctx := context.Background()
	lock, err := w.app.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx) //nolint:errcheck
	if _, err := lock.Exec(ctx, `SELECT set_config('sostenuto.user_id', $1, true)`, w.alice.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `SELECT id FROM chat_sessions WHERE id = $1 FOR UPDATE`, w.session); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	answers := map[string]uuid.UUID{}
	var mu sync.Mutex
	for _, q := range []string{"first question", "second question"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := w.app.AddExchange(ctx, w.alice, w.session, q, ChatMessage{Content: "answer to " + q, Sources: []byte("[]"), Confidence: ptr("LOW")})
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			answers[q] = id
			mu.Unlock()
		}()
		time.Sleep(300 * time.Millisecond) // the first waits for the lock before the second begins
	}
	if err := lock.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	turns, err := w.app.RecentTurns(ctx, w.alice, w.session, 10)
	if err != nil || len(turns) != 2 {
		t.Fatalf("turns %+v, %v", turns, err)
	}
	for _, turn := range turns {
		if turn.Answer != "answer to "+turn.Question {
			t.Errorf("history pairs %q with %q", turn.Question, turn.Answer)
		}
	}
	for _, id := range answers {
		if err := w.app.RateMessage(ctx, w.alice, id, "down", ""); err != nil {
			t.Fatal(err)
		}
	}
	items, _, err := w.app.ListFeedback(ctx, w.admin, "", Page{Limit: 10})
	if err != nil || len(items) != 2 {
		t.Fatalf("review %+v, %v", items, err)
	}
	for _, it := range items {
		if it.Answer != "answer to "+it.Question {
			t.Errorf("review pairs %q with %q", it.Question, it.Answer)
		}
	}
}
