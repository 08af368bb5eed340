package replication

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TLS is the Raft transport's mutual TLS material: the cluster's CA and
// this node's certificate (pki writes both).
type TLS struct {
	CA   *x509.CertPool
	Cert tls.Certificate // Leaf is set
}

// ErrNotNodeCert marks a peer certificate that is not a cluster node's.
var ErrNotNodeCert = errors.New("replication: not a node certificate (needs extended key usages serverAuth and clientAuth)")

// LoadTLS reads the CA certificates (PEM) peers must chain to, and this
// node's certificate and key. The certificate must chain to the CA and be
// a node certificate.
func LoadTLS(caFile, certFile, keyFile string) (*TLS, error) {
	pool, err := loadCAs(caFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("replication: node certificate: %w", err)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("replication: %s does not chain to the CA in %s: %w", certFile, caFile, err)
	}
	if !isNodeCert(cert.Leaf) {
		return nil, fmt.Errorf("%w: %s", ErrNotNodeCert, certFile)
	}
	return &TLS{CA: pool, Cert: cert}, nil
}

// loadCAs reads one or more CA certificates (more than one while a CA is
// being replaced).
func loadCAs(path string) (*x509.CertPool, error) {
	rest, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("replication: cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("replication: cluster CA %s: %w", path, err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("replication: cluster CA %s: %q is not a CA certificate", path, c.Subject.CommonName)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("replication: cluster CA %s: no PEM certificate", path)
	}
	return pool, nil
}

// isNodeCert reports whether c may serve both ends of a Raft connection:
// a leaf with the extended key usages serverAuth and clientAuth.
func isNodeCert(c *x509.Certificate) bool {
	return !c.IsCA && slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) &&
		slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
}

// requireNodeCert runs after Go verified the peer's chain (and, when
// dialing, its name): the peer's certificate must be a node certificate.
func requireNodeCert(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 || !isNodeCert(cs.PeerCertificates[0]) {
		return ErrNotNodeCert
	}
	return nil
}

// serverConfig accepts only peers presenting a node certificate of the
// cluster's CA, over TLS 1.3.
func (t *TLS) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{t.Cert},
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        t.CA,
		VerifyConnection: requireNodeCert,
	}
}

// clientConfig presents this node's certificate and accepts a server whose
// node certificate of the cluster's CA names host (an IP address or a DNS
// name: the host of the Raft address dialed).
func (t *TLS) clientConfig(host string) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{t.Cert},
		RootCAs:          t.CA,
		ServerName:       host,
		VerifyConnection: requireNodeCert,
	}
}

// handshakeTimeout bounds a peer's TLS handshake on an accepted connection.
const handshakeTimeout = 10 * time.Second

// tlsStream is a raft.StreamLayer of mutual TLS over TCP.
type tlsStream struct {
	net.Listener // TCP
	advertise    net.Addr
	tls          *TLS
	server       *tls.Config
	logger       *slog.Logger
}

// Accept returns the next connection; its handshake runs (bounded) on
// its first read or write, in Raft's goroutine for the connection.
func (s *tlsStream) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: tls.Server(c, s.server), logger: s.logger}, nil
}

// Addr is the address peers dial.
func (s *tlsStream) Addr() net.Addr { return s.advertise }

// Dial connects to a peer and completes the handshake within timeout.
func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(string(addr))
	if err != nil {
		return nil, fmt.Errorf("replication: raft address %q: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: s.tls.clientConfig(host)}
	c, err := d.DialContext(ctx, "tcp", string(addr))
	if err != nil {
		return nil, fmt.Errorf("replication: TLS to %s: %w", addr, err)
	}
	return c, nil
}

// serverConn is an accepted connection whose handshake is bounded by
// handshakeTimeout; a refused peer is logged once.
type serverConn struct {
	*tls.Conn
	logger *slog.Logger
	once   sync.Once
	err    error
}

func (c *serverConn) handshake() error {
	c.once.Do(func() {
		c.Conn.SetDeadline(time.Now().Add(handshakeTimeout)) //nolint:errcheck // a closed conn fails the handshake
		c.err = c.Conn.Handshake()
		c.Conn.SetDeadline(time.Time{}) //nolint:errcheck // as above
		if c.err != nil {
			c.logger.Warn("refused a Raft connection", "component", "replication", "remote", c.RemoteAddr().String(), "error", c.err)
		}
	})
	return c.err
}

func (c *serverConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *serverConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// newTransport opens the Raft transport on cfg.RaftBind: mutual TLS with
// cfg.TLS, or plain TCP when cfg.Insecure (loopback only). It returns the
// transport and the address peers dial.
func newTransport(cfg NodeConfig, hl hclog.Logger) (*raft.NetworkTransport, *tlsStream, error) {
	if cfg.TLS == nil && !cfg.Insecure {
		return nil, nil, errors.New("replication: the Raft transport needs TLS material (or Insecure, on loopback)")
	}
	if cfg.Insecure {
		if err := CheckLoopback(cfg.RaftBind, cfg.RaftAdvertise); err != nil {
			return nil, nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.RaftBind)
	if err != nil {
		return nil, nil, fmt.Errorf("replication: raft transport on %s: %w", cfg.RaftBind, err)
	}
	adv, host, err := advertiseAddr(cfg.RaftAdvertise, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	if cfg.Insecure {
		stream := &plainStream{Listener: ln, advertise: adv}
		return raft.NewNetworkTransportWithConfig(transportConfig(stream, hl)), nil, nil
	}
	if err := cfg.TLS.Cert.Leaf.VerifyHostname(host); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("replication: this node's certificate does not name its Raft address %s, so peers would refuse it (issue one for that address): %w", adv, err)
	}
	if left := time.Until(cfg.TLS.Cert.Leaf.NotAfter); left < 30*24*time.Hour {
		cfg.Logger.Warn("this node's Raft certificate expires soon: issue a new one (docs/CLUSTER.md)", "component", "replication",
			"not_after", cfg.TLS.Cert.Leaf.NotAfter, "left", left.Round(time.Hour))
	}
	stream := &tlsStream{Listener: ln, advertise: adv, tls: cfg.TLS, server: cfg.TLS.serverConfig(), logger: cfg.Logger}
	return raft.NewNetworkTransportWithConfig(transportConfig(stream, hl)), stream, nil
}

func transportConfig(stream raft.StreamLayer, hl hclog.Logger) *raft.NetworkTransportConfig {
	return &raft.NetworkTransportConfig{Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: hl}
}

// advertiseAddr is the address peers dial, as Raft records it: advertise
// as given (an IP address or a DNS name), or the bound address.
func advertiseAddr(advertise string, bound net.Addr) (addr stringAddr, host string, err error) {
	a := advertise
	if a == "" {
		a = bound.String()
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", "", fmt.Errorf("replication: raft advertise address %q: %w", a, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) || port == "0" {
		return "", "", fmt.Errorf("replication: raft address %q is not one peers can dial (set the advertise address)", a)
	}
	return stringAddr(a), host, nil
}

// stringAddr is a TCP address kept as written (a host name stays a name).
type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

// plainStream is Raft's plain TCP, for development on loopback.
type plainStream struct {
	net.Listener
	advertise net.Addr
}

func (s *plainStream) Addr() net.Addr { return s.advertise }

func (s *plainStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

// CheckLoopback refuses any address (host:port) whose host is not a
// loopback address; empty addresses are skipped.
func CheckLoopback(addrs ...string) error {
	for _, a := range addrs {
		if a == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("replication: %q is not host:port", a)
		}
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("replication: %s is not a loopback address: plain TCP Raft is for development on one machine only", a)
		}
	}
	return nil
}

// verifyPeer checks that a node certificate of this cluster answers at a
// Raft address (the leader asks before adding a node).
func (s *tlsStream) verifyPeer(addr string) error {
	c, err := s.Dial(raft.ServerAddress(addr), 5*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// Verify dials a peer's Raft address as a Raft connection would (mutual
// TLS 1.3, a node certificate of the cluster naming that address) and
// closes it. A peer that refuses this node's certificate says so right
// after the handshake; Verify waits up to 500 ms for that refusal.
func (t *TLS) Verify(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("replication: raft address %q: %w", addr, err)
	}
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: t.clientConfig(host)}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("replication: TLS to %s: %w", addr, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond)) //nolint:errcheck // a fresh connection
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("replication: %s refused this node's certificate: %w", addr, err)
	}
	return nil
}
