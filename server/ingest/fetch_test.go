package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/jobs"
)

const article = `<!doctype html><html><head><title>Pedalling basics</title></head><body>
<nav><a href="/">Home</a> | <a href="/shop">Shop</a></nav>
<article><h1>Pedalling basics</h1>
<p>The damper pedal lifts every damper so strings ring on. Change it with each harmony: lift as the new chord sounds, press again just after, so the old harmony clears and the new one is caught.</p>
<p>Practise syncopated pedalling slowly on a chain of triads before using it in repertoire. Listen for gaps and for blur; your ear is the judge, not your foot.</p>
<p>Half pedalling lets some dampers touch the strings again, thinning the sound without a full break, which is useful in Debussy and in fast bass passages.</p>
</article><footer>© 2026 Piano Notes</footer></body></html>`

// sentinel counts connections made to it: an SSRF attempt must make none.
func sentinel(t *testing.T) (string, *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), &n
}

func TestFetchArticle(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/article":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(article))
		case "/moved":
			http.Redirect(w, r, "/article", http.StatusFound)
		case "/pdf":
			w.Header().Set("Content-Type", "application/pdf")
			w.Write([]byte("%PDF-1.4"))
		case "/huge":
			w.Header().Set("Content-Type", "text/html")
			for range 200 {
				w.Write([]byte(strings.Repeat("<p>lorem ipsum</p>", 1000)))
			}
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	f := NewFetcher(FetchConfig{MaxBytes: 1 << 20, Timeout: 5 * time.Second, MaxRedirects: 3, AllowAddrs: []string{srv.Listener.Addr().String()}})
	ctx := context.Background()
	for _, path := range []string{"/article", "/moved"} {
		p, err := f.FetchArticle(ctx, srv.URL+path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if p.Title != "Pedalling basics" || !strings.Contains(p.Text, "Half pedalling") || strings.Contains(p.Text, "Shop") {
			t.Errorf("%s: title %q text %q", path, p.Title, p.Text)
		}
	}
	for path, want := range map[string]string{"/pdf": "not an HTML page", "/huge": "larger than", "/loop": "redirects", "/missing": "HTTP 404"} {
		if _, err := f.FetchArticle(ctx, srv.URL+path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}

// Every fetch failure is a *FetchError classified where it happened: its
// code, whether a retry may help, the HTTP status; its sentence carries no
// address, resolver or library text (the detail stays in Error()).
func TestFetchClassification(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/pdf":
			w.Header().Set("Content-Type", "application/pdf")
		case "/huge":
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(strings.Repeat("<p>lorem ipsum</p>", 100)))
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/empty":
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html><body></body></html>"))
		case "/slow":
			<-r.Context().Done()
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		default:
			code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
			w.WriteHeader(code)
		}
	}))
	defer srv.Close()
	f := NewFetcher(FetchConfig{MaxBytes: 1000, Timeout: 300 * time.Millisecond, MaxRedirects: 3, AllowAddrs: []string{srv.Listener.Addr().String()}})
	for _, tc := range []struct {
		url       string
		code      string
		permanent bool
		status    int
	}{
		{srv.URL + "/status/404", CodeNotFoundAtSource, true, 404},
		{srv.URL + "/status/410", CodeNotFoundAtSource, true, 410},
		{srv.URL + "/status/403", CodeFetchFailed, true, 403},
		{srv.URL + "/status/429", CodeFetchFailed, false, 429},
		{srv.URL + "/status/503", CodeFetchFailed, false, 503},
		{srv.URL + "/pdf", CodeUnsupported, true, 0},
		{srv.URL + "/huge", CodeTooLarge, true, 0},
		{srv.URL + "/loop", CodeFetchFailed, true, 0},
		{srv.URL + "/empty", CodeNoText, true, 0},
		{srv.URL + "/slow", CodeTimeout, false, 0},
		{srv.URL + "/to-metadata", CodeBlockedAddress, true, 0},
		{"http://no-such-host.invalid/", CodeFetchFailed, false, 0},
		{"http://localhost/", CodeBlockedAddress, true, 0},
		{"http://[::1%25lo]/", CodeBlockedAddress, true, 0},
	} {
		_, err := f.FetchArticle(context.Background(), tc.url)
		var fe *FetchError
		if !errors.As(err, &fe) {
			t.Errorf("%s: %v is not a *FetchError", tc.url, err)
			continue
		}
		if fe.Code != tc.code || fe.Permanent != tc.permanent || fe.Status != tc.status {
			t.Errorf("%s: %s permanent=%v status=%d, want %s %v %d (%v)", tc.url, fe.Code, fe.Permanent, fe.Status, tc.code, tc.permanent, tc.status, err)
		}
		if code, msg := Describe(fmt.Errorf("wrapped: %w", err)); code != tc.code || msg != fe.Message {
			t.Errorf("%s: Describe = %s %q", tc.url, code, msg)
		}
		if m := regexp.MustCompile(`\d+\.\d+\.\d+\.\d+|::|lookup|dial|tcp|ingest:|deadline|Get "`).FindString(fe.Message); m != "" {
			t.Errorf("%s: message %q carries %q", tc.url, fe.Message, m)
		}
		if errors.Is(markPermanent(err), jobs.ErrPermanent) != tc.permanent {
			t.Errorf("%s: markPermanent disagrees with Permanent=%v", tc.url, tc.permanent)
		}
	}
	if code, _ := Describe(errors.New("embed: HTTP 500: secret")); code != CodeFailed {
		t.Errorf("an unclassified failure has code %s", code)
	}
}

// SSRF attempts fail with a clear error and no connection.
func TestSSRFGuard(t *testing.T) {
	sentAddr, conns := sentinel(t)
	_, sentPort, _ := net.SplitHostPort(sentAddr)
	// A reachable page that redirects to forbidden places.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	}))
	defer srv.Close()
	f := NewFetcher(FetchConfig{MaxBytes: 1 << 20, Timeout: 5 * time.Second, MaxRedirects: 3, AllowAddrs: []string{srv.Listener.Addr().String()}})
	targets := []string{
		"http://127.0.0.1/", "http://127.1/", "http://0x7f000001/", "http://2130706433/", "http://0177.0.0.1/",
		"http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[64:ff9b::7f00:1]/",
		"http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/", "http://100.64.0.1/",
		"http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://0.0.0.0/",
		"http://localhost/", "http://localhost:" + sentPort + "/", "http://" + sentAddr + "/",
		"http://example.com:8080/", "ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1/",
		"http://user:pass@example.com/",
		// Zoned literals: a zone makes every netip.Prefix.Contains false.
		"http://[::1%25lo]/", "http://[::1%251]/", "http://[fe80::1%25eth0]/", "http://[fd00:ec2::254%25eth0]/",
		"http://[::ffff:127.0.0.1%25lo]/", "http://[0:0:0:0:0:0:0:1%25lo]/", "http://127.0.0.1%25lo/",
		// Other notations of loopback, private and metadata addresses.
		"http://[0:0:0:0:0:0:0:1]/", "http://[0000:0000:0000:0000:0000:0000:0000:0001]/", "http://[::127.0.0.1]/",
		"http://[::ffff:0:7f00:1]/", "http://[2002:7f00:1::]/", "http://[2002:a9fe:a9fe::]/", "http://[64:ff9b::10.0.0.1]/",
		"http://[64:ff9b:1::a00:1]/", "http://[2001::1]/", "http://[fec0::1]/", "http://[100::1]/",
		"http://%31%32%37.0.0.1/", "http://127.0.0.1./", "http://127.1./", "http://0x7f.1/", "http://0x7f.0.0.1/",
		"http://00000177.0.0.1/", "http://127.0.0.1:80/", "http://evil@127.0.0.1/", "http://evil.com@127.0.0.1/",
		"http://127.0.0.1#@evil.com/", "http://１２７.０.０.１/", "http://127。0。0。1/",
	}
	for _, target := range targets {
		for _, via := range []string{"direct", "redirect"} {
			u := target
			if _, err := url.Parse(target); err != nil && via == "redirect" {
				continue // the client refuses such a Location before any check
			}
			if via == "redirect" {
				u = srv.URL + "/?to=" + url.QueryEscape(target)
			}
			_, err := f.FetchArticle(context.Background(), u)
			var fe *FetchError
			if !errors.Is(err, ErrBlocked) || !errors.As(err, &fe) || fe.Code != CodeBlockedAddress || !fe.Permanent {
				t.Errorf("%s %s: %v, want ErrBlocked with code blocked_address", via, target, err)
			}
		}
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("%d connections reached the sentinel", n)
	}
}

func TestBlockedAddr(t *testing.T) {
	for addr, blocked := range map[string]bool{
		"127.0.0.1": true, "10.1.2.3": true, "169.254.169.254": true, "100.100.100.100": true, "::1": true,
		"::ffff:10.0.0.1": true, "fe80::1": true, "fc00::1": true, "2002:7f00:1::": true, "224.0.0.1": true,
		"::1%lo": true, "fe80::1%eth0": true, "fd00:ec2::254%eth0": true, "::ffff:127.0.0.1%lo": true, "2001:db8::1%1": true,
		"0:0:0:0:0:0:0:1": true, "::7f00:1": true, "::ffff:0:a00:1": true, "64:ff9b::a9fe:a9fe": true, "64:ff9b:1::808:808": true,
		"2001::1": true, "fec0::1": true, "100::1": true, "5f00::1": true, "192.88.99.1": true,
		"64:ff9b::808:808": false, "2002:808:808::1": false, "2606:4700:4700::1111": false, "::ffff:8.8.8.8": false,
		"93.184.216.34": false, "2606:2800:220:1:248:1893:25c8:1946": false, "1.1.1.1": false,
	} {
		if got := blockedAddr(netip.MustParseAddr(addr)) != ""; got != blocked {
			t.Errorf("%s: blocked=%v, want %v", addr, got, blocked)
		}
	}
}

// sentinel6 is a sentinel on IPv6 loopback.
func sentinel6(t *testing.T) (uint16, *atomic.Int32) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("IPv6 loopback [::1] is unavailable: %v", err)
	}
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return uint16(ln.Addr().(*net.TCPAddr).Port), &n
}

// With the sentinels' ports allowed, only the address decides: zoned,
// mapped and expanded forms of loopback never connect, directly or through a
// redirect.
func TestSSRFZonedNeverConnects(t *testing.T) {
	p6, conns6 := sentinel6(t)
	addr4, conns4 := sentinel(t)
	_, s4, _ := net.SplitHostPort(addr4)
	p4, _ := strconv.Atoi(s4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	}))
	defer srv.Close()
	_, sp, _ := net.SplitHostPort(srv.Listener.Addr().String())
	ps, _ := strconv.Atoi(sp)
	f := NewFetcher(FetchConfig{MaxBytes: 1 << 20, Timeout: 5 * time.Second, MaxRedirects: 3,
		Ports: []uint16{80, 443, p6, uint16(p4), uint16(ps)}, AllowAddrs: []string{srv.Listener.Addr().String()}})
	q6, q4 := strconv.Itoa(int(p6)), s4
	for _, target := range []string{
		"http://[::1%25lo]:" + q6 + "/", "http://[::1%251]:" + q6 + "/", "http://[0:0:0:0:0:0:0:1%25lo]:" + q6 + "/",
		"http://[::1]:" + q6 + "/", "http://[0:0:0:0:0:0:0:1]:" + q6 + "/", "http://[::ffff:127.0.0.1]:" + q4 + "/",
		"http://[::ffff:127.0.0.1%25lo]:" + q4 + "/", "http://127.0.0.1:" + q4 + "/", "http://localhost:" + q4 + "/",
		"http://2130706433:" + q4 + "/", "http://0x7f.1:" + q4 + "/",
	} {
		for _, via := range []string{"direct", "redirect"} {
			u := target
			if via == "redirect" {
				u = srv.URL + "/?to=" + url.QueryEscape(target)
			}
			if _, err := f.FetchArticle(context.Background(), u); !errors.Is(err, ErrBlocked) {
				t.Errorf("%s %s: %v, want ErrBlocked", via, target, err)
			}
		}
	}
	if n := conns6.Load() + conns4.Load(); n != 0 {
		t.Errorf("%d connections reached the loopback sentinels", n)
	}
}
