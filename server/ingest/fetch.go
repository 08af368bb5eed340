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
	"strings"
	"time"

	readability "codeberg.org/readeck/go-readability/v2"
)

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

// Fetcher gets web pages through the SSRF guard (guard.go): http(s) on the
// allowed ports only; URL literals are judged before any lookup and the
// resolved address of every dial (redirects included) at connect time, so
// DNS cannot be used to slip past the check; loopback, private, link-local,
// CGNAT, multicast, metadata, zoned and IPv4-mapped/embedded IPv6 forms of
// them are refused; no proxy from the environment; at most MaxRedirects
// redirects; size and time limits; text/html only.
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
		if ap, err := netip.ParseAddrPort(a); err == nil {
			if c, reason := canonicalAddr(ap.Addr()); reason == "" {
				f.allow[netip.AddrPortFrom(c, ap.Port()).String()] = true
			}
		}
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
				return permanentFailure(CodeFetchFailed, "The page redirects too many times.",
					fmt.Errorf("ingest: more than %d redirects", cfg.MaxRedirects))
			}
			return f.checkURL(req.URL)
		},
	}
	return f
}

// Page is a fetched web page.
type Page struct {
	URL   string // after redirects
	Title string
	Text  string
}

// FetchArticle fetches an HTML page and extracts its main text with
// Readability. Every failure is a *FetchError.
func (f *Fetcher) FetchArticle(ctx context.Context, raw string) (Page, error) {
	u, err := f.CheckURL(raw)
	if err != nil {
		return Page{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Page{}, permanentFailure(CodeUnsupported, "The URL cannot be requested.", fmt.Errorf("ingest: request %s: %w", u.Redacted(), err))
	}
	req.URL, req.Host = u, u.Host // exactly the URL the guard judged
	req.Header.Set("User-Agent", "Sostenuto/1 (+knowledge ingestion)")
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := f.client.Do(req)
	if err != nil {
		return Page{}, transportFailure(fmt.Errorf("ingest: fetch %s: %w", u.Redacted(), err))
	}
	defer resp.Body.Close()
	body, err := f.readPage(resp)
	if err != nil {
		return Page{}, err
	}
	return extractArticle(body, resp.Request.URL)
}

// readPage checks the answer (status, media type) and reads its body
// within the size limit.
func (f *Fetcher) readPage(resp *http.Response) ([]byte, error) {
	u := resp.Request.URL.Redacted()
	if resp.StatusCode != http.StatusOK {
		return nil, statusFailure(resp.StatusCode, fmt.Errorf("ingest: fetch %s: HTTP %d", u, resp.StatusCode))
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "text/html" && mt != "application/xhtml+xml" {
		return nil, permanentFailure(CodeUnsupported, "The source is not an HTML page.",
			fmt.Errorf("ingest: %s is %q, not an HTML page", u, mt))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.cfg.MaxBytes+1))
	if err != nil {
		return nil, transportFailure(fmt.Errorf("ingest: read %s: %w", u, err))
	}
	if int64(len(body)) > f.cfg.MaxBytes {
		return nil, permanentFailure(CodeTooLarge, fmt.Sprintf("The page is larger than the limit of %d bytes.", f.cfg.MaxBytes),
			fmt.Errorf("ingest: %s is larger than %d bytes", u, f.cfg.MaxBytes))
	}
	return body, nil
}

// extractArticle reads the main text of a page; a page Readability cannot
// read, or whose text is empty, has no text to index.
func extractArticle(body []byte, u *url.URL) (Page, error) {
	noText := func(err error) (Page, error) {
		return Page{}, permanentFailure(CodeNoText, "The page has no readable text.", err)
	}
	art, err := readability.FromReader(bytes.NewReader(body), u)
	if err != nil {
		return noText(fmt.Errorf("ingest: readability: %w", err))
	}
	var b strings.Builder
	if err := art.RenderText(&b); err != nil {
		return noText(fmt.Errorf("ingest: readability: %w", err))
	}
	text := strings.TrimSpace(b.String())
	if text == "" {
		return noText(errors.New("ingest: the page has no readable text"))
	}
	return Page{URL: u.String(), Title: art.Title(), Text: text}, nil
}
