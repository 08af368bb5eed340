package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

func mustEd25519(t testing.TB) Key {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keys, err := ParseKeysPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return keys[0]
}

var rsaKeyOnce *rsa.PrivateKey

func mustRSA(t *testing.T) (Key, *rsa.PrivateKey) {
	t.Helper()
	if rsaKeyOnce == nil {
		rsaKeyOnce, _ = rsa.GenerateKey(rand.Reader, 2048)
	}
	keys, err := ParseKeysPEM(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKeyOnce)}))
	if err != nil {
		t.Fatal(err)
	}
	return keys[0], rsaKeyOnce
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTokens(t testing.TB, k Key, previous ...Key) (*Tokens, *clock) {
	t.Helper()
	c := &clock{t: time.Now()}
	tk, err := NewTokens(TokenConfig{Issuer: "sostenuto", Audience: "sostenuto-api", AccessTTL: time.Hour, Leeway: 30 * time.Second}, k, previous, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return tk, c
}

func TestAccessTokenRoundTrip(t *testing.T) {
	for name, k := range map[string]Key{"ed25519": mustEd25519(t), "rsa": func() Key { k, _ := mustRSA(t); return k }()} {
		t.Run(name, func(t *testing.T) {
			tk, _ := newTokens(t, k)
			user, sid := uuid.New(), uuid.New()
			raw, exp, err := tk.IssueAccess(user, sid)
			if err != nil {
				t.Fatal(err)
			}
			v, err := tk.VerifyAccess(raw)
			if err != nil || v.UserID != user || v.SessionID != sid || !v.ExpiresAt.Equal(exp) {
				t.Errorf("VerifyAccess = %+v, %v", v, err)
			}
		})
	}
}

// sign makes a token with arbitrary header and claims, for attacks.
func sign(t *testing.T, m jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func goodClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{"iss": "sostenuto", "aud": []string{"sostenuto-api"}, "sub": uuid.NewString(), "sid": uuid.NewString(),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

func TestAccessTokenAttacks(t *testing.T) {
	ed := mustEd25519(t)
	rk, rsaPriv := mustRSA(t)
	tk, clk := newTokens(t, ed)
	tkRSA, _ := newTokens(t, rk)
	now := clk.t
	hdr := map[string]any{"kid": ed.KID, "typ": AccessTokenType}
	valid := sign(t, jwt.SigningMethodEdDSA, ed.sign, hdr, goodClaims(now))
	if _, err := tk.VerifyAccess(valid); err != nil {
		t.Fatalf("control token rejected: %v", err)
	}
	with := func(mut func(jwt.MapClaims)) jwt.MapClaims {
		c := goodClaims(now)
		mut(c)
		return c
	}
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsaPubDER := x509.MarshalPKCS1PublicKey(&rsaPriv.PublicKey)
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: rsaPubDER})

	cases := []struct {
		name  string
		tk    *Tokens
		token string
	}{
		{"expired", tk, sign(t, jwt.SigningMethodEdDSA, ed.sign, hdr, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() }))},
		{"missing exp", tk, sign(t, jwt.SigningMethodEdDSA, ed.sign, hdr, with(func(c jwt.MapClaims) { delete(c, "exp") }))},
		{"not yet valid", tk, sign(t, jwt.SigningMethodEdDSA, ed.sign, hdr, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Minute).Unix() }))},
		{"issued in the future", tk, sign(t, jwt.SigningMethodEdDSA, ed.sign, hdr, with(func(c jwt.MapClaims) { c["iat"] = now.Add(5 * time.Minute).Unix() }))},
		{"wrong audience", tk, sign(t, jwt.SigningMethodEdDSA, ed.sign, hdr, with(func(c jwt.MapClaims) { c["aud"] = "other-api" }))},
		{"no audience", tk, sign(t, jwt.SigningMethodEdDSA, ed.sign, hdr, with(func(c jwt.MapClaims) { delete(c, "aud") }))},
		{"wrong issuer", tk, sign(t, jwt.SigningMethodEdDSA, ed.sign, hdr, with(func(c jwt.MapClaims) { c["iss"] = "evil" }))},
		{"sub not a user id", tk, sign(t, jwt.SigningMethodEdDSA, ed.sign, hdr, with(func(c jwt.MapClaims) { c["sub"] = "admin" }))},
		{"no sid", tk, sign(t, jwt.SigningMethodEdDSA, ed.sign, hdr, with(func(c jwt.MapClaims) { delete(c, "sid") }))},
		{"typ missing", tk, sign(t, jwt.SigningMethodEdDSA, ed.sign, map[string]any{"kid": ed.KID}, goodClaims(now))},
		{"typ JWT", tk, sign(t, jwt.SigningMethodEdDSA, ed.sign, map[string]any{"kid": ed.KID, "typ": "JWT"}, goodClaims(now))},
		{"unknown kid", tk, sign(t, jwt.SigningMethodEdDSA, ed.sign, map[string]any{"kid": "nope", "typ": AccessTokenType}, goodClaims(now))},
		{"signed by another key with our kid", tk, sign(t, jwt.SigningMethodEdDSA, otherPriv, hdr, goodClaims(now))},
		{"alg none", tk, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, hdr, goodClaims(now))},
		{"alg none unsigned by hand", tk, noneToken(goodClaims(now), ed.KID)},
		// HS/RS confusion: an HS256 token "signed" with the RSA public key
		// as the HMAC secret must not verify against the RSA key.
		{"HS256 with the RSA public key as secret", tkRSA, sign(t, jwt.SigningMethodHS256, rsaPubPEM, map[string]any{"kid": rk.KID, "typ": AccessTokenType}, goodClaims(now))},
		{"HS256 with the RSA public key DER as secret", tkRSA, sign(t, jwt.SigningMethodHS256, rsaPubDER, map[string]any{"kid": rk.KID, "typ": AccessTokenType}, goodClaims(now))},
		{"tampered payload", tk, tamper(valid)},
		{"tampered signature", tk, valid[:len(valid)-4] + flip(valid[len(valid)-4:])},
		{"garbage", tk, "not.a.jwt"},
		{"empty", tk, ""},
		{"refresh token used as access token", tk, "srt_" + strings.Repeat("A", 43)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.tk.VerifyAccess(tc.token); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("accepted or odd error: %v", err)
			}
		})
	}
}

func noneToken(c jwt.MapClaims, kid string) string {
	enc := base64.RawURLEncoding
	h := enc.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt","kid":"` + kid + `"}`))
	p, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c).SigningString()
	return h + "." + strings.Split(p, ".")[1] + "."
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = []byte(strings.Replace(string(payload), `"iss":"sostenuto"`, `"iss":"sostenuto","role":"admin"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestLeewayBounds(t *testing.T) {
	ed := mustEd25519(t)
	tk, clk := newTokens(t, ed)
	raw, _, _ := tk.IssueAccess(uuid.New(), uuid.New())
	clk.t = clk.t.Add(time.Hour + 20*time.Second) // within the 30 s leeway
	if _, err := tk.VerifyAccess(raw); err != nil {
		t.Errorf("within leeway: %v", err)
	}
	clk.t = clk.t.Add(20 * time.Second)
	if _, err := tk.VerifyAccess(raw); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("past leeway accepted: %v", err)
	}
	if _, err := NewTokens(TokenConfig{Issuer: "i", Audience: "a", AccessTTL: time.Hour, Leeway: 2 * time.Minute}, ed, nil, nil); err == nil {
		t.Error("a leeway over 60 s was accepted")
	}
}

// Rotation: tokens of the previous key verify until its window ends; new
// tokens carry the new kid.
func TestKeyRotation(t *testing.T) {
	old, cur := mustEd25519(t), mustEd25519(t)
	oldTk, _ := newTokens(t, old)
	raw, _, _ := oldTk.IssueAccess(uuid.New(), uuid.New())

	retired := old
	retired.sign = nil
	retired.NotAfter = time.Now().Add(10 * time.Minute)
	tk, clk := newTokens(t, cur, retired)
	if _, err := tk.VerifyAccess(raw); err != nil {
		t.Errorf("old key inside its window: %v", err)
	}
	newRaw, _, _ := tk.IssueAccess(uuid.New(), uuid.New())
	tok, _, _ := jwt.NewParser().ParseUnverified(newRaw, jwt.MapClaims{})
	if tok.Header["kid"] != cur.KID {
		t.Errorf("new token kid %v, want %s", tok.Header["kid"], cur.KID)
	}
	clk.t = clk.t.Add(11 * time.Minute)
	if _, err := tk.VerifyAccess(raw); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("old key after its window: %v", err)
	}
	// Without the previous key, the old token is refused at once.
	tk2, _ := newTokens(t, cur)
	if _, err := tk2.VerifyAccess(raw); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("unconfigured old key accepted: %v", err)
	}
}

func TestHS256Key(t *testing.T) {
	if _, err := HS256Key([]byte("short")); err == nil {
		t.Error("short HS256 secret accepted")
	}
	k, err := HS256Key([]byte(strings.Repeat("s", 32)))
	if err != nil {
		t.Fatal(err)
	}
	tk, _ := newTokens(t, k)
	raw, _, _ := tk.IssueAccess(uuid.New(), uuid.New())
	if _, err := tk.VerifyAccess(raw); err != nil {
		t.Errorf("HS256 round trip: %v", err)
	}
	other, _ := HS256Key([]byte(strings.Repeat("t", 32)))
	tk2, _ := newTokens(t, other)
	if _, err := tk2.VerifyAccess(raw); err == nil {
		t.Error("token of another secret accepted")
	}
}

func TestEnsureKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "key.pem")
	k1, created, err := EnsureKeyFile(path)
	if err != nil || !created || !k1.CanSign() {
		t.Fatalf("first EnsureKeyFile = %v %v", created, err)
	}
	k2, created, err := EnsureKeyFile(path)
	if err != nil || created || k2.KID != k1.KID {
		t.Errorf("second EnsureKeyFile = %s %v %v; want the same key", k2.KID, created, err)
	}
}

func TestParseKeysRejects(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for name, data := range map[string][]byte{
		"empty":     nil,
		"not pem":   []byte("hello"),
		"small rsa": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}),
		"cert type": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}),
	} {
		if _, err := ParseKeysPEM(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The published key set verifies tokens of the current and previous keys
// (an outside verifier: keyfunc), leaves out retired keys and never
// publishes an HS256 secret.
func TestJWKS(t *testing.T) {
	old, cur := mustEd25519(t), mustEd25519(t)
	rsaKey, _ := mustRSA(t)
	oldTk, _ := newTokens(t, old)
	oldRaw, _, _ := oldTk.IssueAccess(uuid.New(), uuid.New())
	retired := old
	retired.sign = nil
	retired.NotAfter = time.Now().Add(10 * time.Minute)
	rsaPrev := rsaKey
	rsaPrev.sign = nil
	tk, clk := newTokens(t, cur, retired, rsaPrev)
	raw, _, _ := tk.IssueAccess(uuid.New(), uuid.New())
	set, err := tk.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(set, &doc); err != nil || len(doc.Keys) != 3 {
		t.Fatalf("JWKS %s: %v", set, err)
	}
	kf, err := keyfunc.NewJWKSetJSON(set)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]string{"current": raw, "previous": oldRaw} {
		if _, err := jwt.Parse(r, kf.Keyfunc); err != nil {
			t.Errorf("%s token with the published set: %v", name, err)
		}
	}
	clk.t = clk.t.Add(11 * time.Minute)
	set, _ = tk.JWKS()
	if json.Unmarshal(set, &doc) != nil || len(doc.Keys) != 2 {
		t.Errorf("after the previous key retired: %s", set)
	}
	hs, _ := HS256Key([]byte("0123456789abcdef0123456789abcdef"))
	hsTk, _ := newTokens(t, hs)
	if set, _ := hsTk.JWKS(); string(set) != `{"keys":[]}` {
		t.Errorf("HS256 set %s", set)
	}
}

// A token verified once is not verified again (one key lookup, the
// signature check's first step, for three uses), but its times are: moved
// before its nbf/iat (a clock set back) or past its exp, it is refused,
// cached or not (TestLeewayBounds and TestKeyRotation check exp and a
// retired key on the second use too).
func TestVerifiedTokenKeptWithItsTimes(t *testing.T) {
	tk, clk := newTokens(t, mustEd25519(t))
	issued := clk.t
	raw, _, _ := tk.IssueAccess(uuid.New(), uuid.New())
	for range 3 {
		if _, err := tk.VerifyAccess(raw); err != nil {
			t.Fatal(err)
		}
	}
	if n := tk.keyLookups.Load(); n != 1 {
		t.Errorf("three uses verified %d times in full, want 1", n)
	}
	clk.t = issued.Add(-time.Minute) // before nbf and iat, past the 30 s leeway
	if _, err := tk.VerifyAccess(raw); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a kept token used before its nbf: %v", err)
	}
	clk.t = issued.Add(time.Hour + 31*time.Second)
	if _, err := tk.VerifyAccess(raw); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a kept token used after its exp: %v", err)
	}
	clk.t = issued.Add(time.Minute)
	if _, err := tk.VerifyAccess(raw); err != nil {
		t.Errorf("back within its times: %v", err)
	}
}
