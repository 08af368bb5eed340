package pki

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseNodes(t *testing.T) {
	nodes, err := ParseNodes(" n1=10.0.0.1, n2=10.0.0.2+node2.internal ,")
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[1].Name != "n2" || !slices.Equal(nodes[1].Hosts, []string{"10.0.0.2", "node2.internal"}) {
		t.Errorf("nodes = %+v", nodes)
	}
	for _, bad := range []string{"", "n1", "n1=", "=10.0.0.1", "n_1=10.0.0.1", "n1=10.0.0.1,n1=10.0.0.2", "n1=bad host", "n1=-x.example"} {
		if _, err := ParseNodes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A node certificate names its hosts, serves both TLS ends, ends no
// later than the CA, and chains to it; a directory holding half a CA, or a
// CA certificate of another key, is refused.
func TestIssue(t *testing.T) {
	dir := t.TempDir()
	ca, created, err := LoadOrCreateCA(dir, 48*time.Hour)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateCA: %v %v", created, err)
	}
	certPEM, keyPEM, err := ca.Issue(Node{Name: "n1", Hosts: []string{"10.0.0.1", "n1.internal"}}, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(keyPEM), "PRIVATE KEY") {
		t.Error("no PEM key")
	}
	block, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "n1.internal", KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("usage %v: %v", u, err)
		}
	}
	if c.VerifyHostname("10.0.0.1") != nil || c.VerifyHostname("n1") != nil || c.VerifyHostname("10.0.0.2") == nil {
		t.Errorf("SANs: %v %v", c.IPAddresses, c.DNSNames)
	}
	if c.NotAfter.After(ca.Cert.NotAfter) || c.IsCA {
		t.Errorf("not after %v (CA %v), CA %v", c.NotAfter, ca.Cert.NotAfter, c.IsCA)
	}

	again, created, err := LoadOrCreateCA(dir, time.Hour)
	if err != nil || created || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("reload: %v %v", created, err)
	}
	other := t.TempDir()
	if _, _, err := LoadOrCreateCA(other, time.Hour); err != nil {
		t.Fatal(err)
	}
	os.Rename(filepath.Join(other, CAKeyFile), filepath.Join(dir, CAKeyFile)) //nolint:errcheck // checked below
	if _, _, err := LoadOrCreateCA(dir, time.Hour); err == nil || !strings.Contains(err.Error(), "not a CA certificate of the key") {
		t.Errorf("mismatched key: %v", err)
	}
	if _, _, err := LoadOrCreateCA(other, time.Hour); err == nil || !strings.Contains(err.Error(), "key is needed") {
		t.Errorf("half a CA: %v", err)
	}
}
