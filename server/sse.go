package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

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
