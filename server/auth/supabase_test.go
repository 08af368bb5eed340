package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const sbIssuer = "https://demo.supabase.co/auth/v1"

// jwksServer serves a JWK Set the way Supabase's
// /auth/v1/.well-known/jwks.json does, with keys that can be rotated.
type jwksServer struct {
	mu    sync.Mutex
	keys  map[string]*ecdsa.PrivateKey
	hits  atomic.Int32
	httpd *httptest.Server
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{keys: map[string]*ecdsa.PrivateKey{}}
	s.httpd = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		var set struct {
			Keys []map[string]string `json:"keys"`
		}
		for kid, k := range s.keys {
			enc := base64.RawURLEncoding
			set.Keys = append(set.Keys, map[string]string{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
				"x": enc.EncodeToString(k.PublicKey.X.FillBytes(make([]byte, 32))), "y": enc.EncodeToString(k.PublicKey.Y.FillBytes(make([]byte, 32)))})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(s.httpd.Close)
	return s
}

func (s *jwksServer) addKey(kid string) *ecdsa.PrivateKey {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s.mu.Lock()
	s.keys[kid] = k
	s.mu.Unlock()
	return k
}

func sbClaims(mut ...func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"iss": sbIssuer, "aud": "authenticated", "sub": "5f0c-user-1", "email": "Pupil@Example.com",
		"role": "authenticated", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for _, m := range mut {
		m(c)
	}
	return c
}

func TestSupabaseJWKS(t *testing.T) {
	srv := newJWKSServer(t)
	k1 := srv.addKey("k1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sb, err := NewSupabase(ctx, SupabaseConfig{Issuer: sbIssuer, JWKSURL: srv.httpd.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, jwt.SigningMethodES256, k1, map[string]any{"kid": "k1"}, sbClaims())
	c, err := sb.Verify(ctx, tok)
	if err != nil || c.Subject != "5f0c-user-1" || c.Email != "pupil@example.com" {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	fetches := srv.hits.Load()
	for range 5 {
		if _, err := sb.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if srv.hits.Load() != fetches {
		t.Errorf("the key set was fetched again for known keys (%d → %d): not cached", fetches, srv.hits.Load())
	}

	// Supabase rotates: a token with a new kid makes the verifier re-fetch.
	k2 := srv.addKey("k2")
	tok2 := sign(t, jwt.SigningMethodES256, k2, map[string]any{"kid": "k2"}, sbClaims())
	if _, err := sb.Verify(ctx, tok2); err != nil {
		t.Errorf("token of a rotated-in key: %v", err)
	}

	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad := map[string]string{
		"signed by an unknown key":   sign(t, jwt.SigningMethodES256, stranger, map[string]any{"kid": "k1"}, sbClaims()),
		"wrong audience":             sign(t, jwt.SigningMethodES256, k1, map[string]any{"kid": "k1"}, sbClaims(func(c jwt.MapClaims) { c["aud"] = "other" })),
		"wrong issuer":               sign(t, jwt.SigningMethodES256, k1, map[string]any{"kid": "k1"}, sbClaims(func(c jwt.MapClaims) { c["iss"] = "https://evil.supabase.co/auth/v1" })),
		"expired":                    sign(t, jwt.SigningMethodES256, k1, map[string]any{"kid": "k1"}, sbClaims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })),
		"no exp":                     sign(t, jwt.SigningMethodES256, k1, map[string]any{"kid": "k1"}, sbClaims(func(c jwt.MapClaims) { delete(c, "exp") })),
		"anon key":                   sign(t, jwt.SigningMethodES256, k1, map[string]any{"kid": "k1"}, sbClaims(func(c jwt.MapClaims) { c["role"] = "anon" })),
		"HS256 without a secret set": sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), nil, sbClaims()),
		"alg none":                   sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": "k1"}, sbClaims()),
	}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := sb.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("accepted: %v", err)
			}
		})
	}
}

func TestSupabaseHS256(t *testing.T) {
	secret := []byte("super-secret-jwt-token-with-at-least-32-characters-long")
	sb, err := NewSupabase(context.Background(), SupabaseConfig{Issuer: sbIssuer, JWTSecret: secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, secret, nil, sbClaims())); err != nil {
		t.Errorf("HS256 token: %v", err)
	}
	if _, err := sb.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("y", 40)), nil, sbClaims())); err == nil {
		t.Error("HS256 token of another secret accepted")
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := sb.Verify(context.Background(), sign(t, jwt.SigningMethodES256, ec, nil, sbClaims())); err == nil {
		t.Error("ES256 token accepted without a JWKS URL")
	}
}

func TestUnverifiedIssuer(t *testing.T) {
	tok := sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), nil, sbClaims())
	if got := UnverifiedIssuer(tok); got != sbIssuer {
		t.Errorf("UnverifiedIssuer = %q", got)
	}
	if got := UnverifiedIssuer("junk"); got != "" {
		t.Errorf("UnverifiedIssuer(junk) = %q", got)
	}
}
