package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenBytes bounds a bearer token (real ones are under 2 KiB).
const MaxTokenBytes = 8 << 10

// ErrNoToken marks a request without a bearer token: it passes (the nodes
// answer 401 where one is needed).
var ErrNoToken = errors.New("rules: no bearer token")

// ErrUnknownKey marks a token signed with a key id no known key set
// holds: the verifier should fetch the sets again (rate-limited) and retry
// once.
var ErrUnknownKey = errors.New("rules: unknown key id")

// AsymmetricAlgs are the algorithms accepted with published keys (JWKS).
var AsymmetricAlgs = []string{"EdDSA", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256"}

// Policy is what a token must satisfy besides its signature.
type Policy struct {
	Issuers   []string
	Audiences []string
	Leeway    time.Duration
	// Algs are the accepted signing algorithms (AsymmetricAlgs with key
	// sets, "HS256" with shared secrets).
	Algs []string
}

// BearerToken reads the token of an Authorization header value: ErrNoToken
// for none, an error for anything else than one bearer token of at most
// MaxTokenBytes.
func BearerToken(header string) (string, error) {
	if header == "" {
		return "", ErrNoToken
	}
	scheme, raw, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return "", errors.New("rules: the Authorization header is not a bearer token")
	}
	if len(raw) > MaxTokenBytes {
		return "", errors.New("rules: the token is too long")
	}
	return raw, nil
}

// Verify checks raw against p at now with the keys keyFn gives and returns
// the token's issuer|subject: the identity the answer cache and the
// decision cache are keyed by. It returns the token's claims too, so a
// verifier that keeps verified tokens can check them again (CheckClaims)
// without the signature.
func Verify(raw string, keyFn jwt.Keyfunc, p Policy, now time.Time) (string, jwt.RegisteredClaims, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(raw, &claims, keyFn, jwt.WithValidMethods(p.Algs), jwt.WithoutClaimsValidation())
	if err != nil {
		return "", claims, err
	}
	sub, err := CheckClaims(claims, p, now)
	return sub, claims, err
}

// CheckClaims checks a token's claims at now: exp required, iat and nbf
// within the leeway, an accepted issuer and audience, a subject. It
// returns issuer|subject.
func CheckClaims(claims jwt.RegisteredClaims, p Policy, now time.Time) (string, error) {
	v := jwt.NewValidator(jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(p.Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }))
	if err := v.Validate(claims); err != nil {
		return "", fmt.Errorf("rules: token has invalid claims: %w", err)
	}
	if !slices.Contains(p.Issuers, claims.Issuer) {
		return "", fmt.Errorf("rules: issuer %q is not accepted", claims.Issuer)
	}
	if !slices.ContainsFunc(claims.Audience, func(a string) bool { return slices.Contains(p.Audiences, a) }) {
		return "", errors.New("rules: no accepted audience")
	}
	if claims.Subject == "" {
		return "", errors.New("rules: the token has no subject")
	}
	return claims.Issuer + "|" + claims.Subject, nil
}

// Outcome is what an edge does with a request's token.
type Outcome string

// The outcomes of CheckToken.
const (
	TokenNone    Outcome = "none"    // no token: the request passes
	TokenValid   Outcome = "valid"   // verified: the request passes with its subject
	TokenDropped Outcome = "dropped" // bad, on a public route: the request passes without it
	TokenRefused Outcome = "refused" // bad: 401 at the edge
)

// Decide turns a verification result into what the edge does, for a
// request to path.
func Decide(err error, path string) Outcome {
	switch {
	case errors.Is(err, ErrNoToken):
		return TokenNone
	case err == nil:
		return TokenValid
	case PublicPath(path):
		return TokenDropped
	}
	return TokenRefused
}
