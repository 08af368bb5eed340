package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sostenuto/sostenuto/migrations/pgtest"
	"github.com/sostenuto/sostenuto/replication"
)

// raftTLS issues, with the binary's `cluster certs`, a node certificate
// for name on 127.0.0.1 under dir's CA (made on first use) and returns
// the settings that make a node use it.
func raftTLS(t testing.TB, bin, dir, name string) []string {
	t.Helper()
	cmd := exec.Command(bin, "cluster", "certs", "--dir", dir, "--nodes", name+"=127.0.0.1")
	cmd.Env = childEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cluster certs: %v\n%s", err, out)
	}
	return []string{"SOSTENUTO_RAFT_TLS_CA=" + filepath.Join(dir, "ca.pem"),
		"SOSTENUTO_RAFT_TLS_CERT=" + filepath.Join(dir, name+".pem"), "SOSTENUTO_RAFT_TLS_KEY=" + filepath.Join(dir, name+"-key.pem")}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// `cluster certs` makes a CA once and node certificates a node accepts:
// keys 0600, names and addresses in the SANs, both TLS usages, and a CA
// kept across runs (a second run adds or renews nodes under it).
func TestClusterCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	code, out, stderr := runCmd(t, nil, "", "cluster", "certs", "--dir", dir, "--nodes", "n1=10.0.0.1,n2=10.0.0.2+n2.internal", "--days", "90")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "CA made") {
		t.Errorf("output %q", out)
	}
	ca := readCert(t, filepath.Join(dir, "ca.pem"))
	for _, f := range []string{"ca-key.pem", "n1-key.pem", "n2-key.pem"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, st.Mode(), err)
		}
	}
	n2 := readCert(t, filepath.Join(dir, "n2.pem"))
	if n2.Subject.CommonName != "n2" || !n2.IPAddresses[0].Equal(net.ParseIP("10.0.0.2")) || !strings.Contains(strings.Join(n2.DNSNames, ","), "n2.internal") {
		t.Errorf("n2: CN %q, IPs %v, DNS %v", n2.Subject.CommonName, n2.IPAddresses, n2.DNSNames)
	}
	if d := time.Until(n2.NotAfter); d < 89*24*time.Hour || d > 91*24*time.Hour {
		t.Errorf("n2 valid for %v, want 90 days", d)
	}
	if _, err := replication.LoadTLS(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "n2.pem"), filepath.Join(dir, "n2-key.pem")); err != nil {
		t.Errorf("a node refuses its certificate: %v", err)
	}
	code, out, stderr = runCmd(t, nil, "", "cluster", "certs", "--dir", dir, "--nodes", "n3=10.0.0.3")
	if code != 0 || !strings.Contains(out, "CA kept") {
		t.Fatalf("second run: %d %q %q", code, out, stderr)
	}
	if again := readCert(t, filepath.Join(dir, "ca.pem")); !again.Equal(ca) {
		t.Error("the second run replaced the CA")
	}
	if err := readCert(t, filepath.Join(dir, "n3.pem")).CheckSignatureFrom(ca); err != nil {
		t.Errorf("n3 not issued by the CA: %v", err)
	}
	for _, bad := range []string{"n1", "n1=", "bad name=10.0.0.1", "n1=10.0.0.1,n1=10.0.0.2", "n1=not_a_host"} {
		if code, _, stderr := runCmd(t, nil, "", "cluster", "certs", "--dir", dir, "--nodes", bad); code != 2 || !strings.Contains(stderr, "--nodes") {
			t.Errorf("--nodes %q: exit %d, %q", bad, code, stderr)
		}
	}
}

// strangerRaft is a Raft transport on plain TCP: a process without the
// cluster's certificate.
func strangerRaft(t *testing.T) *raft.NetworkTransport {
	t.Helper()
	tr, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 3*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func postJoin(t *testing.T, base, secret string, body map[string]string) int {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+"/api/cluster/nodes", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("X-Sostenuto-Cluster-Secret", secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A real node (TLS from `cluster certs`) refuses a process without its
// cluster's certificate: the join route without the secret, a join with
// the secret whose Raft address shows no node certificate, and Raft RPCs
// over plain TCP (AppendEntries and RequestVote from a "leader" 100 terms
// ahead). The cluster keeps one voter, its term and its leader.
func TestClusterRefusesStrangers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process cluster")
	}
	db := pgtest.NewEmptyDB(t, "")
	c := newTestCluster(t, db.URL)
	n1 := c.add("n1")
	c.ready(n1)
	c.login(n1)
	before, err := c.status(n1)
	if err != nil {
		t.Fatal(err)
	}
	stranger := strangerRaft(t)
	join := map[string]string{"id": "mallory", "raft_address": string(stranger.LocalAddr())}
	for _, tc := range []struct {
		name, secret string
		want         int
	}{{"no secret", "", 401}, {"wrong secret", "not-the-cluster-secret", 401}, {"secret, no certificate", testSecret, 503}} {
		if code := postJoin(t, n1.base, tc.secret, join); code != tc.want {
			t.Errorf("join with %s: %d, want %d", tc.name, code, tc.want)
		}
	}
	target := raft.ServerAddress(n1.raft)
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("mallory"), Addr: []byte(stranger.LocalAddr())}
	if err := stranger.AppendEntries("n1", target, &raft.AppendEntriesRequest{RPCHeader: hdr, Term: before.Term + 100,
		LeaderCommitIndex: 1 << 20}, &raft.AppendEntriesResponse{}); err == nil {
		t.Error("AppendEntries over plain TCP succeeded")
	}
	vote := &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, Addr: []byte(stranger.LocalAddr())},
		Term: before.Term + 200, LastLogIndex: 1 << 20, LastLogTerm: before.Term + 200, LeadershipTransfer: true}
	if err := stranger.RequestVote("n1", target, vote, &raft.RequestVoteResponse{}); err == nil {
		t.Error("RequestVote over plain TCP succeeded")
	}
	time.Sleep(500 * time.Millisecond)
	after, err := c.status(n1)
	if err != nil {
		t.Fatal(err)
	}
	if after.Term != before.Term || after.Role != "leader" || len(after.Nodes) != 1 {
		t.Errorf("after the strangers: term %d (was %d), role %s, %d nodes", after.Term, before.Term, after.Role, len(after.Nodes))
	}
	if !strings.Contains(n1.logs.String(), "refused a Raft connection") {
		t.Error("the node did not log the refused connections")
	}
}
