package clientip

import (
	"net/http/httptest"
	"testing"
)

func TestOf(t *testing.T) {
	trusted, err := Parse("10.0.0.0/8, 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		peer string
		xff  []string
		want string
	}{
		{"203.0.113.9:5000", nil, "203.0.113.9"},
		{"203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"}, // untrusted peer: header ignored
		{"127.0.0.1:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"127.0.0.1:5000", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},             // forged left part
		{"127.0.0.1:5000", []string{"6.6.6.6", "198.51.100.7, 10.1.2.3"}, "198.51.100.7"}, // trusted hops skipped
		{"127.0.0.1:5000", []string{"10.1.2.3"}, "10.1.2.3"},                              // all trusted: the leftmost
		{"127.0.0.1:5000", []string{"not-an-ip"}, "127.0.0.1"},
		{"127.0.0.1:5000", nil, "127.0.0.1"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, h := range c.xff {
			r.Header.Add("X-Forwarded-For", h)
		}
		if got := trusted.Of(r); got != c.want {
			t.Errorf("peer %s xff %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
	if _, err := Parse("10.0.0.0/33"); err == nil {
		t.Error("bad CIDR accepted")
	}
}
