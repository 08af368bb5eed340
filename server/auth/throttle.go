package auth

import "net/netip"

// signInKeys are the throttle keys one sign-in is counted under.
type signInKeys struct {
	pair    string // this account from this address: the strict bound
	ip      string // this address, any account
	account string // this account, any address: detects a distributed attack
}

func newSignInKeys(email, clientIP string) signInKeys {
	addr := throttleAddr(clientIP)
	return signInKeys{pair: "pair:" + addr + "|" + email, ip: "ip:" + addr, account: "account:" + email}
}

// throttleAddr is the address a client is counted under: an IPv4 address
// as it is, an IPv6 address by its /64 (what one subscriber is given, so
// the addresses of one line count as one). What does not parse is kept as
// it is, bounded to 64 bytes.
func throttleAddr(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip[:min(len(ip), 64)]
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}
