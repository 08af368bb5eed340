package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/sostenuto/sostenuto/edge/rules"
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
		v.algs = append(v.algs, rules.AsymmetricAlgs...)
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

// verify checks the request's bearer token and returns its
// issuer|subject (rules.Verify: the rules both edges share).
func (v *verifier) verify(r *http.Request) (string, error) {
	raw, err := rules.BearerToken(r.Header.Get("Authorization"))
	if err != nil {
		return "", err
	}
	sub, _, err := rules.Verify(raw, v.key, rules.Policy{Issuers: v.issuers, Audiences: v.audiences, Leeway: v.leeway, Algs: v.algs}, v.now())
	return sub, err
}
