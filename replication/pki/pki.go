// Package pki makes a cluster's certificate authority and its nodes'
// certificates, for the mutual TLS of the Raft transport
// (replication.LoadTLS reads what it writes).
//
// Layout of a certificate directory: ca.pem and ca-key.pem (the CA), and
// for each node NAME.pem and NAME-key.pem. Keys are ECDSA P-256 in PKCS #8
// PEM, written with mode 0600. A node certificate names the node (its
// common name and a DNS name) and the hosts peers dial it at (IP addresses
// or DNS names), and may serve both ends of a TLS connection (extended key
// usages serverAuth and clientAuth): the Raft transport accepts no other.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Files of the CA in a certificate directory.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

// CertFile is the name of a node's certificate file.
func CertFile(node string) string { return node + ".pem" }

// KeyFile is the name of a node's private key file.
func KeyFile(node string) string { return node + "-key.pem" }

// Default validities: the CA ten years, a node certificate two.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultNodeValidity = 2 * 365 * 24 * time.Hour
)

// backdate covers clocks of peers a little behind the issuer's.
const backdate = 5 * time.Minute

// CA is a cluster's certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte // Cert, PEM-encoded
}

// NewCA makes a self-signed CA valid from now for validity.
func NewCA(validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Sostenuto"}, CommonName: "Sostenuto cluster CA " + now.UTC().Format("2006-01-02T15:04Z")},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, PEM: pemBlock("CERTIFICATE", der)}, nil
}

// LoadCA reads the CA of dir.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("pki: %w (the CA's key is needed to issue node certificates)", err)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", CAFile, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", CAKeyFile, err)
	}
	if !cert.IsCA || !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("pki: %s is not a CA certificate of the key in %s", CAFile, CAKeyFile)
	}
	return &CA{Cert: cert, Key: key, PEM: certPEM}, nil
}

// LoadOrCreateCA reads the CA of dir, or makes one and writes it there
// when dir holds neither of its files.
func LoadOrCreateCA(dir string, validity time.Duration) (ca *CA, created bool, err error) {
	_, errCert := os.Stat(filepath.Join(dir, CAFile))
	_, errKey := os.Stat(filepath.Join(dir, CAKeyFile))
	if !errors.Is(errCert, os.ErrNotExist) || !errors.Is(errKey, os.ErrNotExist) {
		ca, err := LoadCA(dir)
		return ca, false, err
	}
	if ca, err = NewCA(validity); err != nil {
		return nil, false, err
	}
	keyPEM, err := marshalKey(ca.Key)
	if err != nil {
		return nil, false, err
	}
	if err := writeFiles(dir, CAFile, ca.PEM, CAKeyFile, keyPEM); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// Node is a node to certify.
type Node struct {
	Name string
	// Hosts are the IP addresses and DNS names peers dial the node's Raft
	// transport at (the host of its raft-advertise address).
	Hosts []string
}

// Issue signs a certificate for n, valid from now for validity (at most
// until the CA expires), with a fresh key. It returns both PEM-encoded.
func (ca *CA) Issue(n Node, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if err := n.validate(); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: node key: %w", err)
	}
	tmpl, err := nodeTemplate(n, validity, ca.Cert.NotAfter)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: certificate of %s: %w", n.Name, err)
	}
	if keyPEM, err = marshalKey(key); err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), keyPEM, nil
}

func nodeTemplate(n Node, validity time.Duration, caEnd time.Time) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Sostenuto"}, CommonName: n.Name},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:              []string{n.Name},
	}
	if tmpl.NotAfter.After(caEnd) {
		tmpl.NotAfter = caEnd
	}
	for _, h := range n.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if !strings.EqualFold(h, n.Name) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl, nil
}

// WriteNode writes a node's certificate and key into dir, replacing older
// ones (a renewal).
func WriteNode(dir, name string, certPEM, keyPEM []byte) error {
	return writeFiles(dir, CertFile(name), certPEM, KeyFile(name), keyPEM)
}

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$`)
	hostPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
)

func (n Node) validate() error {
	if !namePattern.MatchString(n.Name) {
		return fmt.Errorf("pki: node name %q: use 1-63 letters, digits, '.' or '-'", n.Name)
	}
	if len(n.Hosts) == 0 {
		return fmt.Errorf("pki: node %s: name the IP address or host name its Raft transport is reached at", n.Name)
	}
	for _, h := range n.Hosts {
		if net.ParseIP(h) == nil && !hostPattern.MatchString(h) {
			return fmt.Errorf("pki: node %s: %q is neither an IP address nor a host name", n.Name, h)
		}
	}
	return nil
}

// ParseNodes reads a node list: NAME=HOST[+HOST...] separated by commas,
// e.g. "n1=10.0.0.1,n2=10.0.0.2+node2.internal".
func ParseNodes(spec string) ([]Node, error) {
	var nodes []Node
	seen := map[string]bool{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, hosts, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("pki: %q: use NAME=HOST[+HOST...]", item)
		}
		n := Node{Name: strings.TrimSpace(name)}
		for _, h := range strings.Split(hosts, "+") {
			if h = strings.TrimSpace(h); h != "" {
				n.Hosts = append(n.Hosts, h)
			}
		}
		if err := n.validate(); err != nil {
			return nil, err
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("pki: node %s is named twice", n.Name)
		}
		seen[n.Name] = true
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return nil, errors.New("pki: no nodes (use NAME=HOST, e.g. n1=10.0.0.1)")
	}
	return nodes, nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

func marshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode key: %w", err)
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("the key cannot sign")
	}
	return signer, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// writeFiles writes a certificate (0644) and its key (0600) into dir,
// each through a temporary file renamed into place.
func writeFiles(dir, certName string, certPEM []byte, keyName string, keyPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, keyName), keyPEM, 0o600); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, certName), certPEM, 0o644)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	defer os.Remove(f.Name()) //nolint:errcheck // gone after the rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}
