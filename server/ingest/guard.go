package ingest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/net/idna"
)

// The SSRF guard. Every address it judges — a URL's IP literal when a
// document is created, each redirect's, and the resolved address of every
// dial — passes through canonicalAddr first, then blockedAddr, so no
// notation (zone, IPv4-mapped, expanded, legacy IPv4) reaches a range check
// in a form the check does not recognise.

// ErrBlocked marks a URL the SSRF guard refuses; no connection was made.
var ErrBlocked = errors.New("ingest: address not allowed")

// blocked is the guard's refusal, permanent, with error code
// blocked_address. Its sentence names the rule (reason), never the address
// a name resolved to; detail is for the logs.
func blocked(reason, detail string) *FetchError {
	return permanentFailure(CodeBlockedAddress,
		"The source's address is not allowed ("+reason+"); only public web hosts are fetched.",
		fmt.Errorf("%w: %s (%s)", ErrBlocked, reason, detail))
}

// reasonZone is why a zoned IPv6 literal is refused: a zone says which
// interface to use, which a public host never needs.
const reasonZone = "an IPv6 address with a zone"

// canonicalAddr is the one form in which the guard judges an address: no
// zone (a zoned address is refused outright, since netip.Prefix.Contains is
// false for any address carrying one), IPv4-mapped IPv6 (::ffff:a.b.c.d)
// unmapped to IPv4. netip.Addr holds no notation, so expanded and
// compressed forms of one address are already one value. It returns why
// the address is refused, or "".
func canonicalAddr(a netip.Addr) (netip.Addr, string) {
	if !a.IsValid() {
		return netip.Addr{}, "not an IP address"
	}
	if a.Zone() != "" {
		return netip.Addr{}, reasonZone
	}
	return a.Unmap(), ""
}

type blockedPrefix struct {
	p      netip.Prefix
	reason string
}

var blockedPrefixes4 = []blockedPrefix{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address (cloud metadata)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("192.88.99.0/24"), "a 6to4 relay address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("224.0.0.0/3"), "a multicast or reserved address"},
}

var blockedPrefixes6 = []blockedPrefix{
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible address"},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "an IPv4-translated address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "a discard address"},
	{netip.MustParsePrefix("2001::/23"), "an IETF protocol address (Teredo included)"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("3fff::/20"), "a documentation address"},
	{netip.MustParsePrefix("fc00::/7"), "a unique local address (cloud metadata included)"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

var (
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
	globalUni6  = netip.MustParsePrefix("2000::/3")
	reasonNot6G = "a reserved IPv6 address"
)

// blockedAddr says why an address may not be fetched from ("" if it may).
// It canonicalises first, whatever the caller did. IPv4 carried in IPv6
// (NAT64 64:ff9b::/96, 6to4 2002::/16) is judged by the IPv4 address it
// carries; other IPv6 outside global unicast (2000::/3) is refused.
func blockedAddr(a netip.Addr) string {
	a, reason := canonicalAddr(a)
	if reason != "" {
		return reason
	}
	if a.Is4() {
		return firstMatch(blockedPrefixes4, a)
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return blockedAddr(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(a):
		return blockedAddr(netip.AddrFrom4([4]byte(b[2:6])))
	}
	if reason := firstMatch(blockedPrefixes6, a); reason != "" {
		return reason
	}
	if !globalUni6.Contains(a) {
		return reasonNot6G
	}
	return ""
}

func firstMatch(list []blockedPrefix, a netip.Addr) string {
	for _, bp := range list {
		if bp.p.Contains(a) {
			return bp.reason
		}
	}
	return ""
}

// control runs on every connection attempt with the resolved address.
func (f *Fetcher) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return blocked("an address the guard cannot read", address)
	}
	a, reason := canonicalAddr(ap.Addr())
	if reason != "" {
		return blocked(reason, address)
	}
	if f.allow[netip.AddrPortFrom(a, ap.Port()).String()] {
		return nil
	}
	if !f.ports[ap.Port()] {
		return blocked("port "+strconv.Itoa(int(ap.Port())), address)
	}
	if reason := blockedAddr(a); reason != "" {
		return blocked(reason, address)
	}
	return nil
}

// CheckURL refuses what the guard can see before any lookup: schemes other
// than http(s), credentials, ports not allowed, zones, and IP literals in
// blocked ranges in any notation (127.1, 0x7f000001, [::ffff:7f00:1],
// [0:0:0:0:0:0:0:1], fullwidth digits, a trailing dot). Its refusals are
// *FetchError with code blocked_address, wrapping ErrBlocked.
func (f *Fetcher) CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, blocked("not an absolute http(s) URL", "unparsable")
	}
	if err := f.checkURL(u); err != nil {
		return nil, err
	}
	return u, nil
}

// checkURL is CheckURL on a parsed URL (redirects arrive parsed).
func (f *Fetcher) checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return blocked("only http and https URLs are fetched", "scheme "+strconv.Quote(u.Scheme))
	}
	if u.Host == "" || u.Opaque != "" {
		return blocked("not an absolute http(s) URL", "no host")
	}
	if u.User != nil {
		return blocked("credentials in the URL", "userinfo")
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if strings.Contains(host, "%") {
		return blocked(reasonZone, "zone in "+strconv.Quote(host))
	}
	return f.checkHost(host, port)
}

// checkHost judges a URL's host and port as the transport will dial them:
// non-ASCII names through IDNA's lookup mapping, a trailing dot dropped.
func (f *Fetcher) checkHost(host, port string) error {
	ascii, err := asciiHost(host)
	if err != nil {
		return blocked("not a valid host name", err.Error())
	}
	a, numeric := numericHost(strings.TrimSuffix(ascii, "."))
	if numeric {
		var reason string
		if a, reason = canonicalAddr(a); reason != "" {
			return blocked(reason, host)
		}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return blocked("port "+port, "unparsable port")
	}
	if (numeric && f.allow[netip.AddrPortFrom(a, uint16(p)).String()]) || f.allow[net.JoinHostPort(host, port)] {
		return nil
	}
	if !f.ports[uint16(p)] {
		return blocked("port "+port, "port not allowed")
	}
	if !numeric {
		return nil // judged when dialed, by its resolved addresses
	}
	if reason := blockedAddr(a); reason != "" {
		return blocked(reason, host)
	}
	if a.Is4() && a.String() != ascii {
		return blocked("a non-canonical IP address", host)
	}
	return nil
}

// asciiHost maps a host name as net/http does before dialing: ASCII names
// as they are, others through IDNA's lookup profile (which turns fullwidth
// digits and ideographic full stops into ASCII ones).
func asciiHost(host string) (string, error) {
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return idna.Lookup.ToASCII(host)
		}
	}
	return host, nil
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
