// Package clientip finds the address of the client behind a request when
// trusted proxies (the edge, a load balancer) stand in front: the peer
// address, unless the peer is trusted, in which case X-Forwarded-For is read
// from the right, skipping trusted hops, and the first untrusted address is
// the client. Addresses a client wrote into the header itself sit left of
// the first untrusted hop and are never believed.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Trusted lists the networks whose X-Forwarded-For is believed.
type Trusted []netip.Prefix

// Parse reads a comma-separated list of CIDRs or addresses.
func Parse(list string) (Trusted, error) {
	var out Trusted
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("clientip: %q is neither an address nor a CIDR", f)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("clientip: %q is neither an address nor a CIDR", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (t Trusted) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Peer is the address of the connection's other end.
func Peer(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Of returns the client's address for r.
func (t Trusted) Of(r *http.Request) string {
	peer := Peer(r)
	a, err := netip.ParseAddr(peer)
	if err != nil || !t.contains(a) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			h := strings.TrimSpace(parts[j])
			ha, err := netip.ParseAddr(h)
			if err != nil {
				return client // garbage: stop at the last hop we could read
			}
			client = ha.Unmap().String()
			if !t.contains(ha) {
				return client
			}
		}
	}
	return client
}

// Trusts reports whether addr (an address, no port) is a trusted proxy.
func (t Trusted) Trusts(addr string) bool {
	a, err := netip.ParseAddr(addr)
	return err == nil && t.contains(a)
}
