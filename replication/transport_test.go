package replication

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"

	"github.com/sostenuto/sostenuto/index"
	"github.com/sostenuto/sostenuto/replication/pki"
)

// testCA is a cluster CA in a temporary directory.
type testCA struct {
	t   testing.TB
	dir string
	ca  *pki.CA
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	dir := t.TempDir()
	ca, _, err := pki.LoadOrCreateCA(dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{t: t, dir: dir, ca: ca}
}

// node issues a node certificate for hosts and loads it as the transport
// will.
func (c *testCA) node(name string, hosts ...string) *TLS {
	c.t.Helper()
	cert, key, err := c.ca.Issue(pki.Node{Name: name, Hosts: hosts}, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := pki.WriteNode(c.dir, name, cert, key); err != nil {
		c.t.Fatal(err)
	}
	m, err := LoadTLS(filepath.Join(c.dir, pki.CAFile), filepath.Join(c.dir, pki.CertFile(name)), filepath.Join(c.dir, pki.KeyFile(name)))
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

// signed returns a certificate of this CA with the given extended key
// usages (pki only issues node certificates).
func (c *testCA) signed(name string, usages ...x509.ExtKeyUsage) tls.Certificate {
	c.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: usages, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{name}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca.Cert, key.Public(), c.ca.Key)
	if err != nil {
		c.t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// selfSigned is a node-shaped certificate no CA issued.
func selfSigned(t *testing.T) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mallory"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func testEngineConfig() index.Config {
	cfg := index.DefaultConfig()
	cfg.Vector.Dim = 4
	return cfg
}

// startTestNode starts a node on a free loopback port; with bootstrap it
// founds a cluster and leads it.
func startTestNode(t *testing.T, id string, m *TLS, bootstrap bool) *Node {
	t.Helper()
	n, err := StartNode(NodeConfig{ID: id, RaftBind: "127.0.0.1:0", Dir: t.TempDir(), Bootstrap: bootstrap, Fast: true,
		TLS: m, Insecure: m == nil, Index: testEngineConfig(), ApplyTimeout: 3 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.raft.Shutdown().Error() //nolint:errcheck // test teardown
		n.closeStores()
	})
	if bootstrap {
		waitFor(t, id+" leads", n.IsLeader)
	}
	return n
}

// secretDoc is a private document of a teacher, with one chunk.
type secretDoc struct {
	doc, owner, stranger index.ID
}

// seedPrivate commits the private document through the leader.
func seedPrivate(t *testing.T, n *Node) secretDoc {
	t.Helper()
	s := secretDoc{doc: index.ID(uuid.New()), owner: index.ID(uuid.New()), stranger: index.ID(uuid.New())}
	ops := index.Ops{Documents: []index.Document{{ID: s.doc, OwnerID: s.owner, Title: "Exam pieces"}},
		Upserts: []index.Chunk{{ID: index.ID(uuid.New()), DocumentID: s.doc, OwnerID: s.owner, Title: "Exam pieces",
			Text: "the secret sonata for the exam", Version: 1, Vector: []float32{1, 0, 0, 0}}},
		Position: index.Position{LSN: 100}}
	if err := n.Propose(context.Background(), ChangesEntry(ops, 1)); err != nil {
		t.Fatal(err)
	}
	// Raft records the applied index a moment after the proposal returns.
	waitFor(t, "the seed applied", func() bool { return n.raft.AppliedIndex() == n.raft.LastIndex() })
	if s.strangerSees(t, n) {
		t.Fatal("a stranger sees the private document before any attack")
	}
	return s
}

func (s secretDoc) strangerSees(t *testing.T, n *Node) bool {
	t.Helper()
	hits, err := n.Live.Engine().Search(index.Query{Text: "secret sonata", K: 5, Mode: index.ModeBM25, Scope: index.Scope{User: s.stranger}})
	if err != nil {
		t.Fatal(err)
	}
	return len(hits) > 0
}

// raftView is what an attack must not change.
type raftView struct {
	term, last, applied uint64
	leader              bool
	lsn                 index.LSN
}

func viewOf(n *Node) raftView {
	return raftView{term: n.raft.CurrentTerm(), last: n.raft.LastIndex(), applied: n.raft.AppliedIndex(),
		leader: n.IsLeader(), lsn: n.Live.Engine().Position().LSN}
}

// attack sends n, as a stranger, the three RPCs that would take the
// cluster over: an AppendEntries from a "leader" 100 terms ahead whose
// entry makes the private document public (and commits it), a RequestVote
// for a leadership transfer, and an InstallSnapshot. It returns each
// RPC's error.
func attack(t *testing.T, tr *raft.NetworkTransport, n *Node, s secretDoc) map[string]error {
	t.Helper()
	term, last := n.raft.CurrentTerm(), n.raft.LastIndex()
	lastTerm, _ := strconv.ParseUint(n.raft.Stats()["last_log_term"], 10, 64)
	entry, err := ChangesEntry(index.Ops{Position: index.Position{LSN: 101},
		Documents: []index.Document{{ID: s.doc, OwnerID: s.owner, IsPublic: true, Title: "Exam pieces"}}}, 2).Encode()
	if err != nil {
		t.Fatal(err)
	}
	target, me := raft.ServerAddress(n.cfg.RaftAdvertise), raft.ServerID("mallory")
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(me), Addr: []byte(tr.LocalAddr())}
	errs := map[string]error{}
	errs["AppendEntries"] = tr.AppendEntries(raft.ServerID(n.cfg.ID), target, &raft.AppendEntriesRequest{RPCHeader: hdr, Term: term + 100,
		PrevLogEntry: last, PrevLogTerm: lastTerm, LeaderCommitIndex: last + 1,
		Entries: []*raft.Log{{Index: last + 1, Term: term + 100, Type: raft.LogCommand, Data: entry}}}, &raft.AppendEntriesResponse{})
	// Without an id the candidate skips the membership check; a
	// leadership transfer skips the known-leader check.
	vote := &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, Addr: []byte(tr.LocalAddr())},
		Term: term + 200, LastLogIndex: last + 1000, LastLogTerm: term + 200, LeadershipTransfer: true}
	errs["RequestVote"] = tr.RequestVote(raft.ServerID(n.cfg.ID), target, vote, &raft.RequestVoteResponse{})
	// (Without a configuration, an InstallSnapshot makes Raft panic: the
	// process dies.)
	snap := bytes.Repeat([]byte{0}, 1024)
	conf := raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{ID: me, Address: tr.LocalAddr()}}})
	errs["InstallSnapshot"] = tr.InstallSnapshot(raft.ServerID(n.cfg.ID), target, &raft.InstallSnapshotRequest{RPCHeader: hdr, SnapshotVersion: 1,
		Term: term + 300, LastLogIndex: last + 1000, LastLogTerm: term + 300, Size: int64(len(snap)),
		Configuration: conf, ConfigurationIndex: last + 1000},
		&raft.InstallSnapshotResponse{}, bytes.NewReader(snap))
	return errs
}

// tlsDialer is a stranger's stream layer: TLS with the certificate it
// has (or none), trusting any server.
type tlsDialer struct {
	net.Listener
	cert *tls.Certificate
}

func (d *tlsDialer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // the stranger does not care
	if d.cert != nil {
		cfg.Certificates = []tls.Certificate{*d.cert}
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), cfg)
}

func strangerTransport(t *testing.T, cert *tls.Certificate, plain bool) *raft.NetworkTransport {
	t.Helper()
	var tr *raft.NetworkTransport
	if plain {
		var err error
		if tr, err = raft.NewTCPTransport("127.0.0.1:0", nil, 1, 3*time.Second, io.Discard); err != nil {
			t.Fatal(err)
		}
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tr = raft.NewNetworkTransport(&tlsDialer{Listener: ln, cert: cert}, 1, 3*time.Second, io.Discard)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// A process without a node certificate of the cluster's CA can neither
// append entries, nor win a vote, nor install a snapshot: every RPC fails,
// and the node's term, log and index stay as they were. The controls run
// the same attack where it must succeed (plain TCP, or a node certificate
// of the cluster), so the test would see a takeover.
func TestRaftTransportRefusesStrangers(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	n := startTestNode(t, "n1", ca.node("n1", "127.0.0.1"), true)
	s := seedPrivate(t, n)
	before := viewOf(n)

	foreign := other.node("mallory", "127.0.0.1").Cert
	self := selfSigned(t)
	clientOnly := ca.signed("mallory", x509.ExtKeyUsageClientAuth)
	serverOnly := ca.signed("mallory", x509.ExtKeyUsageServerAuth)
	for _, tc := range []struct {
		name  string
		cert  *tls.Certificate
		plain bool
	}{
		{"plain TCP", nil, true},
		{"TLS without a certificate", nil, false},
		{"certificate of another CA", &foreign, false},
		{"self-signed certificate", &self, false},
		{"cluster CA, client-only certificate", &clientOnly, false},
		{"cluster CA, server-only certificate", &serverOnly, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for rpc, err := range attack(t, strangerTransport(t, tc.cert, tc.plain), n, s) {
				if err == nil {
					t.Errorf("%s succeeded", rpc)
				}
			}
			time.Sleep(200 * time.Millisecond) // what was accepted would apply by now
			if after := viewOf(n); after != before {
				t.Errorf("the node changed: before %+v, after %+v", before, after)
			}
			if s.strangerSees(t, n) {
				t.Error("the private document turned public")
			}
		})
	}

	t.Run("control: node certificate of the cluster", func(t *testing.T) {
		legit := ca.node("n9", "127.0.0.1").Cert
		errs := attack(t, strangerTransport(t, &legit, false), n, s)
		if errs["AppendEntries"] != nil {
			t.Fatalf("AppendEntries with a node certificate: %v", errs["AppendEntries"])
		}
		waitFor(t, "the forged entry applied", func() bool { return s.strangerSees(t, n) })
		if n.raft.CurrentTerm() <= before.term {
			t.Errorf("term %d, want past %d", n.raft.CurrentTerm(), before.term)
		}
	})
	t.Run("control: plain TCP node", func(t *testing.T) {
		plain := startTestNode(t, "p1", nil, true)
		ps := seedPrivate(t, plain)
		errs := attack(t, strangerTransport(t, nil, true), plain, ps)
		if errs["AppendEntries"] != nil {
			t.Fatalf("AppendEntries over plain TCP: %v", errs["AppendEntries"])
		}
		waitFor(t, "the forged entry applied", func() bool { return ps.strangerSees(t, plain) })
	})
}

// impostor accepts TLS connections with cert and reads until they close.
func impostor(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }() //nolint:errcheck // a sink
		}
	}()
	return ln.Addr().String()
}

// The leader adds a node only if a node certificate of this cluster
// naming its Raft address answers there; a node with one joins and
// receives the log over TLS.
func TestRaftJoinNeedsNodeCertificate(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	n1 := startTestNode(t, "n1", ca.node("n1", "127.0.0.1"), true)
	s := seedPrivate(t, n1)
	plain := strangerTransport(t, nil, true)
	for _, tc := range []struct{ name, addr string }{
		{"plain TCP Raft", string(plain.LocalAddr())},
		{"certificate of another CA", impostor(t, other.node("mallory", "127.0.0.1").Cert)},
		{"cluster certificate for another address", impostor(t, ca.node("n7", "127.0.0.7").Cert)},
		{"cluster CA, client-only certificate", impostor(t, ca.signed("mallory", x509.ExtKeyUsageClientAuth))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := n1.Join(context.Background(), Member{ID: "mallory", RaftAddr: tc.addr})
			if err == nil || !strings.Contains(err.Error(), "no node certificate of this cluster") {
				t.Fatalf("join = %v, want refused", err)
			}
			if servers := configuration(t, n1); len(servers) != 1 {
				t.Errorf("configuration %v, want n1 alone", servers)
			}
		})
	}

	n2 := startTestNode(t, "n2", ca.node("n2", "127.0.0.1"), false)
	if err := n1.Join(context.Background(), Member{ID: "n2", RaftAddr: n2.cfg.RaftAdvertise}); err != nil {
		t.Fatalf("join n2: %v", err)
	}
	waitFor(t, "n2 applied the log", func() bool { return n2.Live.Engine().Position().LSN == 100 })
	if s.strangerSees(t, n2) {
		t.Error("a stranger sees the private document on n2")
	}
}

func configuration(t *testing.T, n *Node) []raft.Server {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	return f.Configuration().Servers
}

// A node refuses to start on plain TCP off loopback, without TLS material,
// or with a certificate that does not name its Raft address.
func TestStartNodeTransportChecks(t *testing.T) {
	ca := newTestCA(t)
	for _, tc := range []struct {
		name      string
		bind, adv string
		tls       *TLS
		insecure  bool
		want      string
	}{
		{"insecure on all interfaces", "0.0.0.0:0", "", nil, true, "not a loopback address"},
		{"insecure advertising a LAN address", "127.0.0.1:0", "10.0.0.1:7000", nil, true, "not a loopback address"},
		{"neither TLS nor insecure", "127.0.0.1:0", "", nil, false, "needs TLS material"},
		{"certificate for another address", "127.0.0.1:0", "", ca.node("n2", "10.0.0.2"), false, "does not name its Raft address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := StartNode(NodeConfig{ID: "n1", RaftBind: tc.bind, RaftAdvertise: tc.adv, Dir: t.TempDir(), TLS: tc.tls,
				Insecure: tc.insecure, Index: testEngineConfig(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), LogOutput: io.Discard})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("StartNode = %v, want %q", err, tc.want)
			}
		})
	}
}

// LoadTLS takes only a node certificate chaining to the CA it is given.
func TestLoadTLS(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	ca.node("n1", "127.0.0.1")
	_, err := LoadTLS(filepath.Join(other.dir, pki.CAFile), filepath.Join(ca.dir, pki.CertFile("n1")), filepath.Join(ca.dir, pki.KeyFile("n1")))
	if err == nil || !strings.Contains(err.Error(), "does not chain") {
		t.Errorf("another CA: %v", err)
	}
	_, err = LoadTLS(filepath.Join(ca.dir, pki.CertFile("n1")), filepath.Join(ca.dir, pki.CertFile("n1")), filepath.Join(ca.dir, pki.KeyFile("n1")))
	if err == nil || !strings.Contains(err.Error(), "not a CA certificate") {
		t.Errorf("a node certificate as CA: %v", err)
	}
	if !errors.Is(requireNodeCert(tls.ConnectionState{}), ErrNotNodeCert) {
		t.Error("a connection without a peer certificate passed")
	}
}

// BenchmarkTransport measures one AppendEntries round trip (an entry of
// 4 KiB, pooled connections) between two transports on loopback, over
// mutual TLS and over plain TCP.
func BenchmarkTransport(b *testing.B) {
	ca := newTestCA(b)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name     string
		tls      func(string) *TLS
		insecure bool
	}{{"tls", func(n string) *TLS { return ca.node(n, "127.0.0.1") }, false}, {"plain", func(string) *TLS { return nil }, true}} {
		b.Run(tc.name, func(b *testing.B) {
			open := func(id string) *raft.NetworkTransport {
				tr, _, err := newTransport(NodeConfig{ID: id, RaftBind: "127.0.0.1:0", TLS: tc.tls(id), Insecure: tc.insecure, Logger: logger}, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { tr.Close() })
				return tr
			}
			server, client := open("s"), open("c")
			go func() {
				for rpc := range server.Consumer() {
					rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
				}
			}()
			req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("c"), Addr: []byte(client.LocalAddr())},
				Term: 1, Entries: []*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{'x'}, 4096)}}}
			b.ResetTimer()
			for range b.N {
				if err := client.AppendEntries("s", server.LocalAddr(), req, &raft.AppendEntriesResponse{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
