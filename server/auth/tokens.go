package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"
)

// ErrInvalidToken marks a token that must not be accepted; the wrapped
// message says why (for logs; clients get a plain 401).
var ErrInvalidToken = errors.New("invalid token")

// AccessTokenType is the JWT header "typ" of access tokens (RFC 9068).
// Refresh tokens are opaque random strings, never JWTs, so neither can pass
// for the other.
const AccessTokenType = "at+jwt"

// MaxLeeway bounds the clock skew tolerated on exp, nbf and iat.
const MaxLeeway = 60 * time.Second

// TokenConfig sets the claims access tokens carry and require.
type TokenConfig struct {
	Issuer    string
	Audience  string
	AccessTTL time.Duration
	Leeway    time.Duration
}

// AccessClaims are the claims of a Sostenuto access token. Sub is the user;
// Sid is the refresh-token family (the login) it belongs to, so logout ends
// the access tokens of that login too. Roles are never taken from claims.
type AccessClaims struct {
	jwt.RegisteredClaims
	Sid string `json:"sid"`
}

// Tokens issues and verifies access tokens with one signing key and any
// number of verification-only keys (retired during rotation).
type Tokens struct {
	cfg     TokenConfig
	signing Key
	byKID   map[string]Key
	algs    []string
	now     func() time.Time
	// verified keeps the tokens whose signature and claims checked out,
	// so a token presented again is not verified again (an Ed25519 check
	// is most of a request's authentication); its times are checked anew
	// on every use (verifiedAccess.usable).
	verified *lru.Cache[string, verifiedAccess]
	// keyLookups counts full verifications (keyFor calls), for tests.
	keyLookups atomic.Int64
}

// verifiedTokens bounds the verified tokens kept (about 1 KiB each).
const verifiedTokens = 10000

// NewTokens builds the token service. previous keys only verify, each until
// its NotAfter.
func NewTokens(cfg TokenConfig, signing Key, previous []Key, now func() time.Time) (*Tokens, error) {
	if !signing.CanSign() {
		return nil, errors.New("auth: the signing key has no private half")
	}
	if cfg.Issuer == "" || cfg.Audience == "" || cfg.AccessTTL <= 0 {
		return nil, errors.New("auth: issuer, audience and access TTL are required")
	}
	if cfg.Leeway < 0 || cfg.Leeway > MaxLeeway {
		return nil, fmt.Errorf("auth: leeway must be within [0, %s]", MaxLeeway)
	}
	if now == nil {
		now = time.Now
	}
	verified, err := lru.New[string, verifiedAccess](verifiedTokens)
	if err != nil {
		return nil, fmt.Errorf("auth: verified tokens: %w", err)
	}
	t := &Tokens{cfg: cfg, signing: signing, byKID: map[string]Key{signing.KID: signing}, now: now, verified: verified}
	seen := map[string]bool{signing.Method.Alg(): true}
	t.algs = []string{signing.Method.Alg()}
	for _, k := range previous {
		if _, dup := t.byKID[k.KID]; dup {
			continue
		}
		t.byKID[k.KID] = k
		if !seen[k.Method.Alg()] {
			seen[k.Method.Alg()] = true
			t.algs = append(t.algs, k.Method.Alg())
		}
	}
	return t, nil
}

// SigningKID is the id of the current signing key.
func (t *Tokens) SigningKID() string { return t.signing.KID }

// IssueAccess signs an access token for user in login session sid.
func (t *Tokens) IssueAccess(user, sid uuid.UUID) (string, time.Time, error) {
	now := t.now().UTC().Truncate(time.Second)
	exp := now.Add(t.cfg.AccessTTL)
	claims := AccessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.cfg.Issuer,
			Subject:   user.String(),
			Audience:  jwt.ClaimStrings{t.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		Sid: sid.String(),
	}
	tok := jwt.NewWithClaims(t.signing.Method, claims)
	tok.Header["kid"] = t.signing.KID
	tok.Header["typ"] = AccessTokenType
	s, err := tok.SignedString(t.signing.sign)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign: %w", err)
	}
	return s, exp, nil
}

// VerifiedAccess is what a valid access token establishes.
type VerifiedAccess struct {
	UserID    uuid.UUID
	SessionID uuid.UUID
	ExpiresAt time.Time
}

// verifiedAccess is a token that verified, with the times that bound its
// use: what a token's bytes establish does not change (the keys are fixed
// for the life of Tokens), only whether now is within those times.
type verifiedAccess struct {
	access      VerifiedAccess
	nbf, iat    time.Time // zero: absent
	keyNotAfter time.Time // zero: the key never retires
}

// usable reports whether a token verified before would verify at now: the
// time checks of VerifyAccess (jwt's, with the leeway) and its key's
// retirement, as keyFor makes them.
func (v verifiedAccess) usable(now time.Time, leeway time.Duration) bool {
	if !now.Add(-leeway).Before(v.access.ExpiresAt) {
		return false
	}
	if !v.nbf.IsZero() && now.Add(leeway).Before(v.nbf) {
		return false
	}
	if !v.iat.IsZero() && now.Add(leeway).Before(v.iat) {
		return false
	}
	return v.keyNotAfter.IsZero() || !now.After(v.keyNotAfter)
}

// VerifyAccess checks signature (the algorithm pinned to the key named by
// kid), typ, iss, aud, exp (required), nbf and iat within the leeway. A
// token verified before is not verified again: only its times are checked
// (verifiedAccess.usable), and one no longer usable is verified in full,
// which fails it with jwt's reason.
func (t *Tokens) VerifyAccess(raw string) (VerifiedAccess, error) {
	if v, ok := t.verified.Get(raw); ok && v.usable(t.now(), t.cfg.Leeway) {
		return v.access, nil
	}
	v, err := t.verifyAccess(raw)
	if err != nil {
		return VerifiedAccess{}, err
	}
	t.verified.Add(raw, v)
	return v.access, nil
}

// verifyAccess is VerifyAccess in full: the signature and every claim.
func (t *Tokens) verifyAccess(raw string) (verifiedAccess, error) {
	var claims AccessClaims
	tok, err := jwt.ParseWithClaims(raw, &claims, t.keyFor,
		jwt.WithValidMethods(t.algs),
		jwt.WithIssuer(t.cfg.Issuer),
		jwt.WithAudience(t.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(t.cfg.Leeway),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return verifiedAccess{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if typ, _ := tok.Header["typ"].(string); typ != AccessTokenType {
		return verifiedAccess{}, fmt.Errorf("%w: typ %q is not an access token", ErrInvalidToken, typ)
	}
	user, err := uuid.Parse(claims.Subject)
	if err != nil {
		return verifiedAccess{}, fmt.Errorf("%w: sub is not a user id", ErrInvalidToken)
	}
	sid, err := uuid.Parse(claims.Sid)
	if err != nil {
		return verifiedAccess{}, fmt.Errorf("%w: sid is not a session id", ErrInvalidToken)
	}
	kid, _ := tok.Header["kid"].(string)
	return verifiedAccess{access: VerifiedAccess{UserID: user, SessionID: sid, ExpiresAt: claims.ExpiresAt.Time},
		nbf: timeOf(claims.NotBefore), iat: timeOf(claims.IssuedAt), keyNotAfter: t.byKID[kid].NotAfter}, nil
}

// timeOf is a claim's time; zero when the claim is absent.
func timeOf(d *jwt.NumericDate) time.Time {
	if d == nil {
		return time.Time{}
	}
	return d.Time
}

// keyFor returns the verification key the token's kid names, only when the
// token's algorithm is that key's: an RS256 key is never used as an HS256
// secret, nor the reverse.
func (t *Tokens) keyFor(tok *jwt.Token) (any, error) {
	t.keyLookups.Add(1)
	kid, _ := tok.Header["kid"].(string)
	k, ok := t.byKID[kid]
	if !ok {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	if tok.Method.Alg() != k.Method.Alg() {
		return nil, fmt.Errorf("algorithm %s does not match key %s (%s)", tok.Method.Alg(), kid, k.Method.Alg())
	}
	if !k.NotAfter.IsZero() && t.now().After(k.NotAfter) {
		return nil, fmt.Errorf("key %s retired at %s", kid, k.NotAfter.Format(time.RFC3339))
	}
	return k.verify, nil
}

// JWKS is the JSON Web Key Set of the public halves of the keys that
// verify access tokens (the signing key and previous keys not yet
// retired), for verifiers outside the node such as the edge. Shared HS256
// secrets are never published: verifiers of HS256 tokens need the secret.
func (t *Tokens) JWKS() ([]byte, error) {
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
	kids := make([]string, 0, len(t.byKID))
	for kid := range t.byKID {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	for _, kid := range kids {
		k := t.byKID[kid]
		if k.Method == jwt.SigningMethodHS256 || (!k.NotAfter.IsZero() && t.now().After(k.NotAfter)) {
			continue
		}
		j, err := jwkset.NewJWKFromKey(k.verify, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: k.KID, ALG: jwkset.ALG(k.Method.Alg()), USE: jwkset.UseSig}})
		if err != nil {
			return nil, fmt.Errorf("auth: jwk %s: %w", k.KID, err)
		}
		set.Keys = append(set.Keys, j.Marshal())
	}
	return json.Marshal(set)
}
