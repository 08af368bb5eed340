package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// verifier checks access tokens at the edge: the signature with the
// nodes' published keys (JWKS) or a shared HS256 secret, the issuer, the
// audience and the times. A request whose bearer token fails never reaches
// a node. The nodes still check the token's login session and the user.
type verifier struct {
	jwks      keyfunc.Keyfunc // nil without JWKS URLs
	secrets   [][]byte
	issuers   []string
	audiences []string
	leeway    time.Duration
	algs      []string
	now       func() time.Time
}

// errNoToken marks a request without a bearer token.
var errNoToken = errors.New("no bearer token")

func newVerifier(ctx context.Context, cfg Config) (*verifier, error) {
	v := &verifier{secrets: cfg.HS256Secrets, issuers: cfg.Issuers, audiences: cfg.Audiences, leeway: cfg.Leeway, now: time.Now}
	if len(v.issuers) == 0 || len(v.audiences) == 0 {
		return nil, errors.New("edge: token issuers and audiences are required")
	}
	if len(cfg.JWKSURLs) > 0 {
		noErr := true
		kf, err := keyfunc.NewDefaultOverrideCtx(ctx, cfg.JWKSURLs, keyfunc.Override{
			HTTPTimeout:               5 * time.Second,
			RefreshInterval:           cfg.JWKSRefresh,
			NoErrorReturnFirstHTTPReq: &noErr, // a node down at start is fetched later
			// An unknown kid (a rotated key) re-fetches the sets, at most
			// every 10 s.
			RefreshUnknownKID: rate.NewLimiter(rate.Every(10*time.Second), 1),
			RateLimitWaitMax:  2 * time.Second,
		})
		if err != nil {
			return nil, fmt.Errorf("edge: jwks: %w", err)
		}
		v.jwks = kf
		v.algs = append(v.algs, "EdDSA", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
	}
	if len(v.secrets) > 0 {
		v.algs = append(v.algs, "HS256")
	}
	if len(v.algs) == 0 {
		return nil, errors.New("edge: no way to verify tokens: give JWKS URLs or an HS256 secret")
	}
	return v, nil
}

func (v *verifier) key(tok *jwt.Token) (any, error) {
	if tok.Method.Alg() == "HS256" {
		keys := make([]jwt.VerificationKey, len(v.secrets))
		for i, s := range v.secrets {
			keys[i] = s
		}
		return jwt.VerificationKeySet{Keys: keys}, nil
	}
	return v.jwks.Keyfunc(tok)
}

// verify checks the request's bearer token and returns its subject.
func (v *verifier) verify(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", errNoToken
	}
	scheme, raw, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return "", errors.New("the Authorization header is not a bearer token")
	}
	if len(raw) > maxTokenBytes {
		return "", errors.New("the token is too long")
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(raw, &claims, v.key,
		jwt.WithValidMethods(v.algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
	)
	if err != nil {
		return "", err
	}
	if !slices.Contains(v.issuers, claims.Issuer) {
		return "", fmt.Errorf("issuer %q is not accepted", claims.Issuer)
	}
	if !slices.ContainsFunc(claims.Audience, func(a string) bool { return slices.Contains(v.audiences, a) }) {
		return "", errors.New("no accepted audience")
	}
	if claims.Subject == "" {
		return "", errors.New("the token has no subject")
	}
	return claims.Issuer + "|" + claims.Subject, nil
}

// maxTokenBytes bounds a bearer token (real ones are under 2 KiB).
const maxTokenBytes = 8 << 10
