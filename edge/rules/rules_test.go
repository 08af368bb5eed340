package rules

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// A key set reads Ed25519, RSA and EC keys from JWKS documents; each
// verifies its own tokens, a kid names one key, an unknown kid is
// ErrUnknownKey and a key published for another algorithm is refused.
func TestKeySet(t *testing.T) {
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	doc, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA", "use": "sig", "x": b64(edPub)},
		{"kty": "RSA", "kid": "rsa", "alg": "RS256", "n": b64(rsaKey.N.Bytes()), "e": b64(big.NewInt(int64(rsaKey.E)).Bytes())},
		{"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(ecKey.X.FillBytes(make([]byte, 32))), "y": b64(ecKey.Y.FillBytes(make([]byte, 32)))},
		{"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": b64(edPub)},
		{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
	}})
	ks := NewKeySet(nil)
	if err := ks.AddJWKS(doc); err != nil {
		t.Fatal(err)
	}
	if ks.Len() != 3 {
		t.Fatalf("%d keys, want 3 (signing keys of known types)", ks.Len())
	}
	p := Policy{Issuers: []string{"sostenuto"}, Audiences: []string{"sostenuto-api"}, Algs: AsymmetricAlgs}
	claims := jwt.MapClaims{"iss": "sostenuto", "aud": "sostenuto-api", "sub": "u", "exp": time.Now().Add(time.Hour).Unix()}
	sign := func(m jwt.SigningMethod, kid string, key any) string {
		tok := jwt.NewWithClaims(m, claims)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for name, raw := range map[string]string{"ed": sign(jwt.SigningMethodEdDSA, "ed", edKey),
		"rsa": sign(jwt.SigningMethodRS256, "rsa", rsaKey), "ec": sign(jwt.SigningMethodES256, "ec", ecKey)} {
		if sub, _, err := Verify(raw, ks.Keyfunc, p, time.Now()); err != nil || sub != "sostenuto|u" {
			t.Errorf("%s: %q %v", name, sub, err)
		}
	}
	if _, _, err := Verify(sign(jwt.SigningMethodEdDSA, "gone", edKey), ks.Keyfunc, p, time.Now()); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown kid: %v, want ErrUnknownKey", err)
	}
	if _, _, err := Verify(sign(jwt.SigningMethodRS384, "rsa", rsaKey), ks.Keyfunc, p, time.Now()); err == nil {
		t.Error("an RS384 token verified with a key published for RS256")
	}
	if _, _, err := Verify(sign(jwt.SigningMethodEdDSA, "enc", edKey), ks.Keyfunc, p, time.Now()); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("an encryption key verified a token: %v", err)
	}
}

// A malformed key set is an error; a bad key in it too.
func TestKeySetRefusesBadDocuments(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":      `{"keys":`,
		"short ed25519": `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"a","x":"AAAA"}]}`,
		"short rsa":     `{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`,
		"ec off curve":  `{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"AQ","y":"AQ"}]}`,
	} {
		if err := NewKeySet(nil).AddJWKS([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
