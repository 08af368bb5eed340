package server

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/clientip"
)

// These tests run the production throttle policy (auth.DefaultConfig) over
// real HTTP, each client connecting from its own loopback address so the
// server sees distinct client addresses. Time is moved by shifting the
// throttle records into the past (advanceThrottleClock), as if it had passed.

const (
	victimEmail   = "victim@example.com"
	rightPassword = "correct horse battery"
)

func (a *testAPI) loginFrom(ip, email, password string, hdr ...string) response {
	a.t.Helper()
	return a.callFrom(ip, "POST", "/api/auth/login", "", map[string]string{"email": email, "password": password}, hdr...)
}

// advanceThrottleClock moves every sign-in throttle record d into the past.
func (a *testAPI) advanceThrottleClock(d time.Duration) {
	a.t.Helper()
	_, err := a.ownerPool().Exec(context.Background(), `UPDATE auth_throttle
		SET window_start = window_start - $1::interval, blocked_until = blocked_until - $1::interval`, d)
	if err != nil {
		a.t.Fatal(err)
	}
}

// mustThrottle checks r is a 429 rate_limited whose Retry-After lies in
// [lo, hi] seconds, and returns it.
func (a *testAPI) mustThrottle(r response, lo, hi int) int {
	a.t.Helper()
	if r.status != 429 || r.problem(a.t).Code != CodeRateLimited {
		a.t.Fatalf("status %d, want 429 rate_limited: %s", r.status, r.body)
	}
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < lo || ra > hi {
		a.t.Fatalf("Retry-After %q, want %d..%d s", r.header.Get("Retry-After"), lo, hi)
	}
	return ra
}

// (a) Wrong passwords from one address never keep the owner out elsewhere.
func TestSignInFailuresFromOneAddressLeaveOwnerIn(t *testing.T) {
	a := newAPI(t)
	a.register(victimEmail, "student")
	for i := range 8 {
		r := a.loginFrom("127.0.0.2", victimEmail, "wrong guess "+strconv.Itoa(i))
		if want := map[bool]int{true: 401, false: 429}[i < 4]; r.status != want {
			t.Fatalf("failure %d from the attacker's address: %d, want %d", i+1, r.status, want)
		}
	}
	a.mustStatus(a.loginFrom("127.0.0.3", victimEmail, rightPassword), 200)
}

// (b) The failing address itself is throttled: 429 with Retry-After, even
// for the right password, a forged X-Forwarded-For does not escape it, and
// the block doubles with each failure after it.
func TestSignInThrottledAtFailingAddress(t *testing.T) {
	a := newAPI(t)
	a.register(victimEmail, "student")
	const attacker = "127.0.0.2"
	for i := range 4 {
		a.mustStatus(a.loginFrom(attacker, victimEmail, "wrong guess "+strconv.Itoa(i)), 401)
	}
	a.mustThrottle(a.loginFrom(attacker, victimEmail, "wrong guess 5"), 1, 30)
	a.mustThrottle(a.loginFrom(attacker, victimEmail, rightPassword), 1, 30)
	// The peer is no trusted proxy: its own X-Forwarded-For is not believed.
	a.mustThrottle(a.loginFrom(attacker, victimEmail, rightPassword, "X-Forwarded-For", "198.51.100.7"), 1, 30)
	a.advanceThrottleClock(31 * time.Second)
	a.mustThrottle(a.loginFrom(attacker, victimEmail, "wrong guess 6"), 31, 60)
	a.advanceThrottleClock(61 * time.Second)
	a.mustThrottle(a.loginFrom(attacker, victimEmail, "wrong guess 7"), 61, 120)
}

// (c) Failures for one account across many addresses put it under attack
// (100 in 15 minutes): each address then gets one wrong guess at it per 15
// minutes, while the owner, from an address without failures, still gets
// in. The state lasts while failures go on and ends 15 minutes after them.
func TestSignInAccountBoundAcrossAddresses(t *testing.T) {
	a := newAPI(t)
	a.register(victimEmail, "student")
	a.register("other@example.com", "student")
	for i := range 20 {
		ip := fmt.Sprintf("127.0.1.%d", i+1)
		for j := range 4 {
			if r := a.loginFrom(ip, victimEmail, "wrong guess"); r.status != 401 {
				t.Fatalf("address %s, failure %d: %d %s", ip, j+1, r.status, r.body)
			}
		}
		a.mustThrottle(a.loginFrom(ip, victimEmail, "wrong guess"), 1, 30)
	}
	// 100 failures: a fresh address's first wrong guess blocks it for 15 min.
	a.mustThrottle(a.loginFrom("127.0.2.1", victimEmail, "wrong guess"), 800, 900)
	a.mustThrottle(a.loginFrom("127.0.2.1", victimEmail, rightPassword), 800, 900)
	a.mustStatus(a.loginFrom("127.0.3.1", victimEmail, rightPassword), 200)
	// Other accounts keep the ordinary bound.
	a.mustStatus(a.loginFrom("127.0.2.2", "other@example.com", "wrong guess"), 401)
	// Failures keep the state on; the owner keeps getting in.
	a.advanceThrottleClock(10 * time.Minute)
	a.mustThrottle(a.loginFrom("127.0.2.3", victimEmail, "wrong guess"), 800, 900)
	a.advanceThrottleClock(10 * time.Minute)
	a.mustThrottle(a.loginFrom("127.0.2.4", victimEmail, "wrong guess"), 800, 900)
	a.mustStatus(a.loginFrom("127.0.3.2", victimEmail, rightPassword), 200)
	// 15 quiet minutes end it: a fresh address has the ordinary bound again.
	a.advanceThrottleClock(16 * time.Minute)
	a.mustStatus(a.loginFrom("127.0.2.5", victimEmail, "wrong guess"), 401)
}

// (d) One address guessing across many accounts is blocked (30 failures in
// 15 minutes) for every account, and only that address.
func TestSignInAddressBoundAcrossAccounts(t *testing.T) {
	a := newAPI(t)
	a.register("other@example.com", "student")
	const sprayer = "127.0.0.2"
	for i := range 29 {
		a.mustStatus(a.loginFrom(sprayer, fmt.Sprintf("nobody%d@example.com", i), "wrong guess"), 401)
	}
	a.mustThrottle(a.loginFrom(sprayer, "nobody29@example.com", "wrong guess"), 1, 30)
	a.mustThrottle(a.loginFrom(sprayer, "other@example.com", rightPassword), 1, 30)
	a.mustStatus(a.loginFrom("127.0.0.3", "other@example.com", rightPassword), 200)
}

// (e) An attacker renewing its block from one address, the moment each
// block ends, for over half an hour, never keeps the owner out.
func TestSignInLockNotRenewableAgainstOwner(t *testing.T) {
	a := newAPI(t)
	a.register(victimEmail, "student")
	const attacker, owner = "127.0.0.2", "127.0.0.3"
	for round := range 8 {
		var r response
		for range 5 {
			if r = a.loginFrom(attacker, victimEmail, "wrong guess"); r.status == 429 {
				break
			}
		}
		ra := a.mustThrottle(r, 1, 900)
		a.mustThrottle(a.loginFrom(attacker, victimEmail, rightPassword), 1, ra)
		if s := a.loginFrom(owner, victimEmail, rightPassword); s.status != 200 {
			t.Fatalf("round %d: the owner's sign-in from another address answered %d: %s", round, s.status, s.body)
		}
		a.advanceThrottleClock(time.Duration(ra+1) * time.Second)
	}
}

// Concurrent guesses cannot outrun the bound: of 20 wrong passwords sent at
// once from one address (real argon2id cost, so they overlap), only 5 are
// judged; the rest are refused unjudged, so the block is the first one
// (30 s), not one doubled per extra guess.
func TestSignInConcurrentGuessesBounded(t *testing.T) {
	a := newAPI(t, func(c *auth.Config, _ *auth.SupabaseConfig) { c.Hash = auth.DefaultHashParams })
	a.register(victimEmail, "student")
	const attacker = "127.0.0.2"
	a.loginFrom(attacker, "warm-up@example.com", "wrong guess") // one connection open
	var wg sync.WaitGroup
	statuses := make([]int, 20)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = a.loginFrom(attacker, victimEmail, "wrong guess "+strconv.Itoa(i)).status
		}()
	}
	wg.Wait()
	var judged int
	a.ownerPool().QueryRow(context.Background(), `SELECT max(failures) FROM auth_throttle WHERE key LIKE '%victim@example.com'`).Scan(&judged)
	if judged != 5 {
		t.Errorf("%d wrong guesses counted for the victim (statuses %v), want 5", judged, statuses)
	}
	a.mustThrottle(a.loginFrom(attacker, victimEmail, rightPassword), 1, 30)
	a.mustStatus(a.loginFrom("127.0.0.3", victimEmail, rightPassword), 200)
}

// Behind a trusted proxy (the edge), the client address is the one the
// proxy names in X-Forwarded-For: a flood through the edge keeps out only
// its own client, not the owner's, though both reach the node from the
// edge's address.
func TestSignInThroughTrustedProxy(t *testing.T) {
	trusted, err := clientip.Parse("127.0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	a := newAPIWith(t, apiSettings{trusted: trusted})
	a.register(victimEmail, "student")
	const edge = "127.0.0.4"
	for range 8 {
		a.loginFrom(edge, victimEmail, "wrong guess", "X-Forwarded-For", "198.51.100.7")
	}
	a.mustThrottle(a.loginFrom(edge, victimEmail, rightPassword, "X-Forwarded-For", "198.51.100.7"), 1, 30)
	a.mustStatus(a.loginFrom(edge, victimEmail, rightPassword, "X-Forwarded-For", "203.0.113.5"), 200)
	// A client's own header before the proxy's is not believed.
	a.mustThrottle(a.loginFrom(edge, victimEmail, rightPassword, "X-Forwarded-For", "203.0.113.5, 198.51.100.7"), 1, 30)
}
