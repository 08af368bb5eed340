package embed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// RetryPolicy bounds retries of remote calls.
type RetryPolicy struct {
	Attempts int           // total tries
	Base     time.Duration // first backoff; doubles
	Max      time.Duration // backoff and Retry-After cap
	Timeout  time.Duration // per attempt
}

// DefaultRetry suits hosted endpoints.
var DefaultRetry = RetryPolicy{Attempts: 5, Base: 500 * time.Millisecond, Max: 30 * time.Second, Timeout: 30 * time.Second}

// StatusError is a non-2xx answer.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string { return fmt.Sprintf("embed: HTTP %d: %s", e.Status, e.Body) }

// retryable reports whether a failure may pass on retry: 429, 5xx and
// transport errors.
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status == http.StatusTooManyRequests || se.Status >= 500
	}
	return !errors.Is(err, context.Canceled)
}

// postJSON POSTs in as JSON and decodes the answer into out, retrying per
// policy and honouring Retry-After.
func postJSON(ctx context.Context, client *http.Client, p RetryPolicy, url string, hdr http.Header, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	var last error
	for attempt := 1; attempt <= max(1, p.Attempts); attempt++ {
		wait, err := postOnce(ctx, client, p.Timeout, url, hdr, body, out)
		if err == nil {
			return nil
		}
		last = err
		if !retryable(err) || attempt == p.Attempts || ctx.Err() != nil {
			break
		}
		if wait <= 0 {
			wait = p.Base << (attempt - 1)
			wait = time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		}
		wait = min(wait, p.Max)
		select {
		case <-ctx.Done():
			return errors.Join(last, ctx.Err())
		case <-time.After(wait):
		}
	}
	return last
}

// postOnce makes one attempt; it returns the Retry-After the server asked
// for, if any.
func postOnce(ctx context.Context, client *http.Client, timeout time.Duration, url string, hdr http.Header, body []byte, out any) (time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header = hdr.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("embed: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, fmt.Errorf("embed: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return retryAfter(resp.Header.Get("Retry-After")), &StatusError{Status: resp.StatusCode, Body: truncate(string(raw), 300)}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return 0, fmt.Errorf("embed: decode answer: %w", err)
	}
	return 0, nil
}

// retryAfter reads seconds or an HTTP date.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return time.Until(t)
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
