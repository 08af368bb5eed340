package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	readability "codeberg.org/readeck/go-readability/v2"
)

// ErrBlocked marks a URL the SSRF guard refuses; no connection was made.
var ErrBlocked = errors.New("ingest: address not allowed")

// FetchConfig bounds web fetches.
type FetchConfig struct {
	MaxBytes     int64         // body limit (after decompression)
	Timeout      time.Duration // whole fetch, redirects included
	MaxRedirects int
	// Ports are the ports a URL may name; 80 and 443 when empty.
	Ports []uint16
	// AllowAddrs lets exact ip:port addresses through the guard. For tests
	// that serve pages on loopback; never set in production.
	AllowAddrs []string
}

// DefaultFetchConfig suits web articles.
var DefaultFetchConfig = FetchConfig{MaxBytes: 5 << 20, Timeout: 20 * time.Second, MaxRedirects: 3}

// Fetcher gets web pages through the SSRF guard: http(s) on ports 80 and
// 443 only; the resolved address of every dial (redirects included) is
// checked at connect time, so DNS cannot be used to slip past the check;
// loopback, private, link-local, CGNAT, multicast, metadata and
// IPv4-mapped/embedded IPv6 forms of them are refused; no proxy from the
// environment; at most MaxRedirects redirects; size and time limits;
// text/html only.
type Fetcher struct {
	cfg    FetchConfig
	client *http.Client
	allow  map[string]bool
	ports  map[uint16]bool
}

// NewFetcher returns a guarded fetcher.
func NewFetcher(cfg FetchConfig) *Fetcher {
	f := &Fetcher{cfg: cfg, allow: map[string]bool{}, ports: map[uint16]bool{80: true, 443: true}}
	if len(cfg.Ports) > 0 {
		f.ports = map[uint16]bool{}
		for _, p := range cfg.Ports {
			f.ports[p] = true
		}
	}
	for _, a := range cfg.AllowAddrs {
		f.allow[a] = true
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: f.control}
	f.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 15 * time.Second,
			MaxIdleConns:          10,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > cfg.MaxRedirects {
				return fmt.Errorf("ingest: more than %d redirects", cfg.MaxRedirects)
			}
			_, err := f.CheckURL(req.URL.String())
			return err
		},
	}
	return f
}

// control runs on every connection attempt with the resolved address.
func (f *Fetcher) control(_, address string, _ syscall.RawConn) error {
	if f.allow[address] {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrBlocked, address)
	}
	if p := ap.Port(); !f.ports[p] {
		return fmt.Errorf("%w: port %d is not allowed", ErrBlocked, p)
	}
	if reason := blockedAddr(ap.Addr()); reason != "" {
		return fmt.Errorf("%w: %s is %s", ErrBlocked, ap.Addr(), reason)
	}
	return nil
}

var blockedPrefixes = []struct {
	p      netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/3"), "multicast or reserved"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "unique local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "cloud metadata"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
}

// blockedAddr says why an address may not be fetched from ("" if it may).
// IPv4 inside IPv6 (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4
// 2002::/16) is judged by the IPv4 address it carries.
func blockedAddr(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() {
		b := a.As16()
		switch {
		case netip.MustParsePrefix("64:ff9b::/96").Contains(a):
			return blockedAddr(netip.AddrFrom4([4]byte(b[12:16])))
		case netip.MustParsePrefix("2002::/16").Contains(a):
			return blockedAddr(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	for _, bp := range blockedPrefixes {
		if bp.p.Contains(a) {
			return bp.reason
		}
	}
	return ""
}

// CheckURL refuses what the guard can see before any lookup: schemes other
// than http(s), credentials, ports other than 80/443, and IP literals in
// blocked ranges, including numeric forms like 127.1 or 0x7f000001.
func (f *Fetcher) CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: not an absolute URL", ErrBlocked)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: scheme %q (only http and https)", ErrBlocked, u.Scheme)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: credentials in the URL", ErrBlocked)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if f.allow[net.JoinHostPort(host, port)] {
		return u, nil
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || !f.ports[uint16(p)] {
		return nil, fmt.Errorf("%w: port %s is not allowed", ErrBlocked, port)
	}
	if a, ok := numericHost(host); ok {
		if reason := blockedAddr(a); reason != "" {
			return nil, fmt.Errorf("%w: %s is %s", ErrBlocked, host, reason)
		}
		if a.Is4() && a.String() != host {
			return nil, fmt.Errorf("%w: non-canonical IP address %q", ErrBlocked, host)
		}
	}
	return u, nil
}

// numericHost parses IP literals, including the legacy IPv4 forms
// inet_aton accepts (127.1, 0x7f000001, 017700000001).
func numericHost(h string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return a, true
	}
	parts := strings.Split(h, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	nums := make([]uint64, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 0, 32) // 0x.. hex, 0.. octal
		if err != nil {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	var v uint64
	switch len(nums) {
	case 1:
		v = nums[0]
	case 2:
		v = nums[0]<<24 | nums[1]
	case 3:
		v = nums[0]<<24 | nums[1]<<16 | nums[2]
	case 4:
		v = nums[0]<<24 | nums[1]<<16 | nums[2]<<8 | nums[3]
	}
	if v > 0xffffffff {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// Page is a fetched web page.
type Page struct {
	URL   string // after redirects
	Title string
	Text  string
}

// FetchArticle fetches an HTML page and extracts its main text with
// Readability.
func (f *Fetcher) FetchArticle(ctx context.Context, raw string) (Page, error) {
	u, err := f.CheckURL(raw)
	if err != nil {
		return Page{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Page{}, err
	}
	req.Header.Set("User-Agent", "Sostenuto/1 (+knowledge ingestion)")
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := f.client.Do(req)
	if err != nil {
		return Page{}, fmt.Errorf("ingest: fetch %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Page{}, fmt.Errorf("ingest: fetch %s: HTTP %d", u.Redacted(), resp.StatusCode)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "text/html" && mt != "application/xhtml+xml" {
		return Page{}, fmt.Errorf("ingest: %s is %q, not an HTML page", u.Redacted(), mt)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		return Page{}, fmt.Errorf("ingest: read %s: %w", u.Redacted(), err)
	}
	if int64(len(body)) > f.cfg.MaxBytes {
		return Page{}, fmt.Errorf("ingest: %s is larger than %d bytes", u.Redacted(), f.cfg.MaxBytes)
	}
	return extractArticle(body, resp.Request.URL)
}

func extractArticle(body []byte, u *url.URL) (Page, error) {
	art, err := readability.FromReader(bytes.NewReader(body), u)
	if err != nil {
		return Page{}, fmt.Errorf("ingest: readability: %w", err)
	}
	var b strings.Builder
	if err := art.RenderText(&b); err != nil {
		return Page{}, fmt.Errorf("ingest: readability: %w", err)
	}
	text := strings.TrimSpace(b.String())
	if text == "" {
		return Page{}, errors.New("ingest: the page has no readable text")
	}
	return Page{URL: u.String(), Title: art.Title(), Text: text}, nil
}
