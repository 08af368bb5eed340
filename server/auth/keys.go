package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Key is one token key: it signs (when it has the private half) and verifies
// tokens whose header names its KID and whose algorithm is its Method.
type Key struct {
	KID    string
	Method jwt.SigningMethod
	sign   any // ed25519.PrivateKey, *rsa.PrivateKey or []byte
	verify any // ed25519.PublicKey, *rsa.PublicKey or []byte
	// NotAfter, when set, ends the key's use for verification (a retired
	// key during rotation).
	NotAfter time.Time
}

// CanSign reports whether the key holds a private or shared secret.
func (k Key) CanSign() bool { return k.sign != nil }

// ParseKeysPEM reads every private or public key in PEM data: Ed25519 or RSA
// (PKCS#8, PKCS#1 or PKIX). Each key's id is derived from its public half.
func ParseKeysPEM(data []byte) ([]Key, error) {
	var keys []Key
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		k, err := keyFromBlock(block)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("auth: no PEM key found")
	}
	return keys, nil
}

func keyFromBlock(b *pem.Block) (Key, error) {
	var parsed any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "PUBLIC KEY":
		parsed, err = x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		parsed, err = x509.ParsePKCS1PublicKey(b.Bytes)
	default:
		return Key{}, fmt.Errorf("auth: unsupported PEM block %q", b.Type)
	}
	if err != nil {
		return Key{}, fmt.Errorf("auth: parse %s: %w", b.Type, err)
	}
	switch k := parsed.(type) {
	case ed25519.PrivateKey:
		return asymmetric(jwt.SigningMethodEdDSA, k, k.Public())
	case ed25519.PublicKey:
		return asymmetric(jwt.SigningMethodEdDSA, nil, k)
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return Key{}, errors.New("auth: RSA keys must have at least 2048 bits")
		}
		return asymmetric(jwt.SigningMethodRS256, k, &k.PublicKey)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return Key{}, errors.New("auth: RSA keys must have at least 2048 bits")
		}
		return asymmetric(jwt.SigningMethodRS256, nil, k)
	default:
		return Key{}, fmt.Errorf("auth: unsupported key type %T (use Ed25519 or RSA)", parsed)
	}
}

func asymmetric(m jwt.SigningMethod, priv any, pub crypto.PublicKey) (Key, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return Key{}, fmt.Errorf("auth: marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	k := Key{KID: hex.EncodeToString(sum[:8]), Method: m, verify: pub}
	if priv != nil {
		k.sign = priv
	}
	return k, nil
}

// HS256Key makes a shared-secret key; the secret must have 32 bytes or more.
func HS256Key(secret []byte) (Key, error) {
	if len(secret) < 32 {
		return Key{}, errors.New("auth: an HS256 secret needs at least 32 bytes")
	}
	sum := sha256.Sum256(append([]byte("sostenuto-hs256-kid:"), secret...))
	return Key{KID: "hs-" + hex.EncodeToString(sum[:6]), Method: jwt.SigningMethodHS256, sign: secret, verify: secret}, nil
}

// EnsureKeyFile returns the Ed25519 key in path, generating it (mode 0600)
// when the file does not exist: the embedded default, so a single node needs
// no key configuration and keeps its tokens valid across restarts.
func EnsureKeyFile(path string) (Key, bool, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		keys, err := ParseKeysPEM(data)
		if err != nil {
			return Key{}, false, fmt.Errorf("auth: %s: %w", path, err)
		}
		if !keys[0].CanSign() {
			return Key{}, false, fmt.Errorf("auth: %s holds no private key", path)
		}
		return keys[0], false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Key{}, false, fmt.Errorf("auth: read key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, false, fmt.Errorf("auth: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return Key{}, false, fmt.Errorf("auth: marshal key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Key{}, false, fmt.Errorf("auth: key directory: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return Key{}, false, fmt.Errorf("auth: write key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Key{}, false, fmt.Errorf("auth: write key: %w", err)
	}
	k, err := asymmetric(jwt.SigningMethodEdDSA, priv, priv.Public())
	return k, true, err
}
