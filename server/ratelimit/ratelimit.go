// Package ratelimit keeps one token bucket (golang.org/x/time/rate) per
// key — a client address, a user — in a bounded, expiring map
// (golang-lru/v2), and says how long to wait when a bucket is empty.
package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"
)

// Rule is a bucket's refill rate and size.
type Rule struct {
	Rate  rate.Limit // tokens per second
	Burst int
	text  string
}

// Off reports whether the rule limits nothing.
func (r Rule) Off() bool { return r.Burst == 0 }

func (r Rule) String() string { return r.text }

// Parse reads "N/s", "N/m" or "N/h", optionally ":BURST" (the burst is N
// by default, at least 1); "0" or "off" turns the limit off.
func Parse(s string) (Rule, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "off" || s == "" {
		return Rule{text: "off"}, nil
	}
	spec, burstText, hasBurst := strings.Cut(s, ":")
	num, unit, ok := strings.Cut(spec, "/")
	n, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || n <= 0 {
		return Rule{}, fmt.Errorf("ratelimit: %q is not N/s, N/m or N/h[:burst]", s)
	}
	var per time.Duration
	switch unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return Rule{}, fmt.Errorf("ratelimit: %q: the unit must be s, m or h", s)
	}
	burst := max(1, int(n))
	if hasBurst {
		b, err := strconv.Atoi(burstText)
		if err != nil || b < 1 {
			return Rule{}, fmt.Errorf("ratelimit: %q: the burst must be a positive integer", s)
		}
		burst = b
	}
	return Rule{Rate: rate.Limit(n / per.Seconds()), Burst: burst, text: s}, nil
}

// MustParse is Parse for rules written in code.
func MustParse(s string) Rule {
	r, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return r
}

// Limiter holds the buckets of one rule.
type Limiter struct {
	rule    Rule
	mu      sync.Mutex
	buckets *expirable.LRU[string, *rate.Limiter]
	now     func() time.Time
}

// maxKeys bounds the buckets kept; the least recently used go first (a
// forgotten key starts again with a full bucket).
const maxKeys = 100_000

// New returns a limiter for rule; nil when the rule is off.
func New(rule Rule) *Limiter {
	if rule.Off() {
		return nil
	}
	// A bucket idle long enough to refill entirely is forgotten.
	ttl := time.Duration(float64(rule.Burst)/float64(rule.Rate)*float64(time.Second)) + time.Minute
	return &Limiter{rule: rule, buckets: expirable.NewLRU[string, *rate.Limiter](maxKeys, nil, ttl), now: time.Now}
}

// Allow takes a token from key's bucket; when it is empty it returns false
// and how long until a token is there.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	b, ok := l.buckets.Get(key)
	if !ok {
		b = rate.NewLimiter(l.rule.Rate, l.rule.Burst)
		l.buckets.Add(key, b)
	}
	l.mu.Unlock()
	now := l.now()
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Rule is the limiter's rule.
func (l *Limiter) Rule() Rule {
	if l == nil {
		return Rule{text: "off"}
	}
	return l.rule
}
