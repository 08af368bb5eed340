package ingest

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzExtractArticle: any HTML gives a page or an error, never a panic,
// and the text is valid UTF-8.
func FuzzExtractArticle(f *testing.F) {
	f.Add([]byte(`<html><head><title>Pedalling</title></head><body><article><h1>Pedalling</h1><p>Change the pedal after the chord. ` + strings.Repeat("More words here. ", 40) + `</p></article></body></html>`))
	f.Add([]byte(`<html><body><script>alert(1)</script><p>x</p>`))
	f.Add([]byte(strings.Repeat("<div>", 5000)))
	f.Add([]byte("\xff\xfe<html>\x00"))
	f.Add([]byte(""))
	u, _ := url.Parse("https://example.com/a")
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 1<<20 {
			return
		}
		p, err := extractArticle(body, u)
		if err == nil && !utf8.ValidString(p.Text) {
			t.Fatalf("text is not UTF-8: %q", p.Text)
		}
	})
}

// FuzzParseCaptions: any caption file gives segments in order with
// start ≤ end, or an error.
func FuzzParseCaptions(f *testing.F) {
	f.Add("WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nPlace the thumb under.\n\n00:00:04.500 --> 00:00:06.000\nThen the third finger.\n")
	f.Add("1\n00:00:01,000 --> 00:00:02,500\nHello\n\n2\n00:00:03,000 --> 00:00:04,000\nWorld\n")
	f.Add("WEBVTT\n\n99:99:99.999 --> 00:00:00.000\nbackwards\n")
	f.Add("WEBVTT\n\nNOTE comment\n\nSTYLE\n::cue {}\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, data string) {
		segs, err := ParseCaptions(data)
		if err != nil {
			return
		}
		for _, s := range segs {
			if s.TimeStartMs == nil || s.TimeEndMs == nil || *s.TimeStartMs < 0 || *s.TimeEndMs < *s.TimeStartMs {
				t.Fatalf("segment times %v %v", s.TimeStartMs, s.TimeEndMs)
			}
		}
	})
}

// FuzzChunker: chunks are non-empty spans of the document, in order, each
// within the token budget, whose character offsets point at their text.
func FuzzChunker(f *testing.F) {
	f.Add("Play scales slowly. Keep the wrist loose.\n\nThe second page.", 2)
	f.Add(strings.Repeat("word ", 2000), 1)
	f.Add("日本語のテキスト。ピアノ。", 3)
	f.Add("\x00\xff broken utf8 \xc3", 1)
	f.Add("", 1)
	c, err := NewChunker(64, 16)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string, pages int) {
		if len(text) > 64<<10 || pages < 1 || pages > 20 {
			return
		}
		var segs []Segment
		parts := strings.SplitN(text, "\n\n", pages)
		for i, p := range parts {
			segs = append(segs, Segment{Text: p, Page: i + 1})
		}
		texts := make([]string, len(segs))
		for i, s := range segs {
			texts[i] = strings.ToValidUTF8(s.Text, "\uFFFD") // as Split reads it
		}
		doc := []rune(strings.Join(texts, SegmentSeparator))
		prev := -1
		for i, ch := range c.Split(segs) {
			if ch.Ordinal != i || strings.TrimSpace(ch.Text) == "" || ch.TokenCount < 1 || ch.TokenCount > 64 {
				t.Fatalf("chunk %d: %+v", i, ch)
			}
			if ch.CharStart < 0 || ch.CharEnd > len(doc) || ch.CharStart >= ch.CharEnd {
				t.Fatalf("chunk %d offsets %d..%d of %d", i, ch.CharStart, ch.CharEnd, len(doc))
			}
			if !utf8.ValidString(ch.Text) || string(doc[ch.CharStart:ch.CharEnd]) != ch.Text {
				t.Fatalf("chunk %d text %q is not doc[%d:%d] %q", i, ch.Text, ch.CharStart, ch.CharEnd, string(doc[ch.CharStart:ch.CharEnd]))
			}
			if ch.PageStart < 1 || ch.PageEnd < ch.PageStart || ch.PageEnd > len(segs) {
				t.Fatalf("chunk %d pages %d..%d", i, ch.PageStart, ch.PageEnd)
			}
			if ch.CharStart < prev {
				t.Fatalf("chunk %d starts at %d, before the previous one (%d)", i, ch.CharStart, prev)
			}
			prev = ch.CharStart
		}
	})
}

// FuzzCheckURL: the SSRF guard never lets through a URL whose host is a
// loopback, private, link-local or otherwise internal address literal, in
// any notation, nor a scheme other than http(s) or a port other than 80
// and 443.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://example.com/a", "http://127.0.0.1/", "http://127.1/", "http://0x7f000001/", "http://017700000001/",
		"http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1:443/",
		"http://example.com:8080/", "file:///etc/passwd", "http://user:pw@example.com/", "http://[fe80::1%25eth0]/", "http://0/", "gopher://x",
		"http://[::1%25lo]/", "http://[::1%251]/", "http://[fd00:ec2::254%25eth0]/", "http://[::ffff:127.0.0.1%25lo]/",
		"http://[0:0:0:0:0:0:0:1]/", "http://[::127.0.0.1]/", "http://[::ffff:0:7f00:1]/", "http://[64:ff9b::a9fe:a9fe]/",
		"http://[2002:7f00:1::]/", "http://%31%32%37.0.0.1/", "http://127.0.0.1./", "http://0x7f.1/", "http://0177.0.0.1/",
		"http://evil@127.0.0.1/", "http://１２７.０.０.１/", "http://127.0.0.1%25lo/"} {
		f.Add(s)
	}
	fe := NewFetcher(DefaultFetchConfig)
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := fe.CheckURL(raw)
		if err != nil {
			var fe *FetchError
			if !errors.Is(err, ErrBlocked) || !errors.As(err, &fe) || fe.Code != CodeBlockedAddress {
				t.Fatalf("error %v is not ErrBlocked with code blocked_address", err)
			}
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("scheme %q let through", u.Scheme)
		}
		if p := u.Port(); p != "" && p != "80" && p != "443" {
			t.Fatalf("port %q let through", p)
		}
		if strings.Contains(u.Hostname(), "%") {
			t.Fatalf("zoned or escaped host %q let through (%q)", u.Hostname(), raw)
		}
		if a, ok := numericHost(u.Hostname()); ok && blockedAddr(a) != "" {
			t.Fatalf("internal address %s let through (%q)", a, raw)
		}
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && blockedAddr(a) != "" {
			t.Fatalf("internal address %s let through (%q)", a, raw)
		}
	})
}
