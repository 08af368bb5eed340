package ratelimit

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Rule{"10/s": {Rate: 10, Burst: 10}, "60/m:5": {Rate: 1, Burst: 5}, "3600/h": {Rate: 1, Burst: 3600}, "0.5/s": {Rate: 0.5, Burst: 1}} {
		got, err := Parse(in)
		if err != nil || got.Rate != want.Rate || got.Burst != want.Burst {
			t.Errorf("%s: %+v %v", in, got, err)
		}
	}
	if r, err := Parse("off"); err != nil || !r.Off() || New(r) != nil {
		t.Errorf("off: %+v %v", r, err)
	}
	for _, bad := range []string{"10", "10/d", "x/s", "-1/s", "10/s:0", "10/s:x"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestAllow(t *testing.T) {
	l := New(MustParse("60/m:3"))
	now := time.Unix(1_000_000, 0)
	l.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("burst token %d refused", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait <= 0 || wait > time.Second {
		t.Errorf("empty bucket: %v %s", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Error("another key shares the bucket")
	}
	now = now.Add(time.Second) // one token back
	if ok, _ := l.Allow("a"); !ok {
		t.Error("refilled token refused")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Error("a refused request took a token it should not have (the cancel)")
	}
	var nilL *Limiter
	if ok, _ := nilL.Allow("x"); !ok {
		t.Error("an off limiter refused")
	}
}
