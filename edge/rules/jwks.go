package rules

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/golang-jwt/jwt/v5"
)

// KeySet holds verification keys by key id, read from JWKS documents, and
// shared HS256 secrets.
type KeySet struct {
	keys    map[string]crypto.PublicKey
	algs    map[string]string // a key's "alg", when its JWK names one
	secrets [][]byte
}

// NewKeySet makes a key set of the given HS256 secrets and no public keys.
func NewKeySet(secrets [][]byte) *KeySet {
	return &KeySet{keys: map[string]crypto.PublicKey{}, algs: map[string]string{}, secrets: secrets}
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
	Use string `json:"use"`
}

// AddJWKS adds the signing keys of a JWKS document; keys of unknown types
// are skipped, a malformed document is an error.
func (s *KeySet) AddJWKS(doc []byte) error {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return fmt.Errorf("rules: jwks: %w", err)
	}
	for _, k := range set.Keys {
		if k.Kid == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		pub, err := k.public()
		if err != nil {
			return fmt.Errorf("rules: jwks key %s: %w", k.Kid, err)
		}
		if pub != nil {
			s.keys[k.Kid], s.algs[k.Kid] = pub, k.Alg
		}
	}
	return nil
}

// Len says how many public keys the set holds.
func (s *KeySet) Len() int { return len(s.keys) }

func (k jwk) public() (crypto.PublicKey, error) {
	b := func(v string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(v) }
	switch k.Kty {
	case "OKP":
		x, err := b(k.X)
		if err != nil || k.Crv != "Ed25519" || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		return ed25519.PublicKey(x), nil
	case "RSA":
		n, err1 := b(k.N)
		e, err2 := b(k.E)
		if err1 != nil || err2 != nil || len(n) < 256 || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA key")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	case "EC":
		return ecKey(k, b)
	}
	return nil, nil
}

func ecKey(k jwk, b func(string) ([]byte, error)) (crypto.PublicKey, error) {
	var c elliptic.Curve
	switch k.Crv {
	case "P-256":
		c = elliptic.P256()
	case "P-384":
		c = elliptic.P384()
	default:
		return nil, nil
	}
	x, err1 := b(k.X)
	y, err2 := b(k.Y)
	if err1 != nil || err2 != nil {
		return nil, errors.New("bad EC key")
	}
	pub := &ecdsa.PublicKey{Curve: c, X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
	if !c.IsOnCurve(pub.X, pub.Y) { //nolint:staticcheck // a check, not arithmetic
		return nil, errors.New("EC point not on the curve")
	}
	return pub, nil
}

// Keyfunc gives a token's verification key: the secrets for HS256; for a
// token without a kid every public key (as keyfunc does for the Go edge);
// otherwise the key its kid names (ErrUnknownKey when none does), whose
// JWK "alg", when given, must be the token's.
func (s *KeySet) Keyfunc(tok *jwt.Token) (any, error) {
	if tok.Method.Alg() == "HS256" {
		keys := make([]jwt.VerificationKey, len(s.secrets))
		for i, k := range s.secrets {
			keys[i] = k
		}
		return jwt.VerificationKeySet{Keys: keys}, nil
	}
	kidv, ok := tok.Header["kid"]
	if !ok {
		set := jwt.VerificationKeySet{}
		for _, k := range s.keys {
			set.Keys = append(set.Keys, k)
		}
		return set, nil
	}
	kid, _ := kidv.(string)
	pub, ok := s.keys[kid]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
	}
	if a := s.algs[kid]; a != "" && a != tok.Method.Alg() {
		return nil, fmt.Errorf("rules: key %s is for %s, not %s", kid, a, tok.Method.Alg())
	}
	return pub, nil
}

// Secrets are the set's HS256 secrets.
func (s *KeySet) Secrets() [][]byte { return s.secrets }
