package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// SupabaseConfig turns on Supabase Auth access tokens. Issuer is the
// project's auth URL (https://<ref>.supabase.co/auth/v1). Tokens are
// verified with the legacy HS256 JWT secret, with the keys published at
// JWKSURL (ES256, RS256 or EdDSA), or both.
type SupabaseConfig struct {
	Issuer      string
	Audience    string // "authenticated" by default
	JWTSecret   []byte
	JWKSURL     string
	JWKSRefresh time.Duration // how often the key set is re-fetched
	Leeway      time.Duration
	HTTPClient  *http.Client
}

// SupabaseClaims are what Sostenuto takes from a Supabase token.
type SupabaseClaims struct {
	Subject string
	Email   string
	// EmailConfirmed: the token says its email is confirmed (see
	// supabaseJWTClaims.emailConfirmed).
	EmailConfirmed bool
}

// Supabase verifies Supabase Auth access tokens.
type Supabase struct {
	cfg  SupabaseConfig
	jwks keyfunc.Keyfunc
	algs []string
	now  func() time.Time
}

// NewSupabase builds the verifier. With a JWKS URL it fetches the key set in
// the background, caches it, refreshes it every JWKSRefresh and re-fetches
// (rate-limited) on an unknown kid; ctx ends the refreshing.
func NewSupabase(ctx context.Context, cfg SupabaseConfig, now func() time.Time) (*Supabase, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("auth: supabase: the issuer is required")
	}
	if len(cfg.JWTSecret) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("auth: supabase: a JWT secret or a JWKS URL is required")
	}
	if cfg.Audience == "" {
		cfg.Audience = "authenticated"
	}
	if cfg.JWKSRefresh <= 0 {
		cfg.JWKSRefresh = 10 * time.Minute
	}
	if now == nil {
		now = time.Now
	}
	s := &Supabase{cfg: cfg, now: now}
	if len(cfg.JWTSecret) > 0 {
		s.algs = append(s.algs, "HS256")
	}
	if cfg.JWKSURL != "" {
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Second}
		}
		noErr := true
		jwks, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			Client:                    client,
			HTTPTimeout:               10 * time.Second,
			RefreshInterval:           cfg.JWKSRefresh,
			NoErrorReturnFirstHTTPReq: &noErr,
			// A token with an unknown kid re-fetches the set at most every
			// 30 s; past that limit it fails at once (rate.Limiter.Wait does
			// not sleep past its deadline). The bound also covers the fetch.
			RefreshUnknownKID: rate.NewLimiter(rate.Every(30*time.Second), 1),
			RateLimitWaitMax:  5 * time.Second,
		})
		if err != nil {
			return nil, fmt.Errorf("auth: supabase jwks: %w", err)
		}
		s.jwks = jwks
		s.algs = append(s.algs, "ES256", "RS256", "EdDSA")
	}
	return s, nil
}

// Issuer is the issuer whose tokens this verifier takes.
func (s *Supabase) Issuer() string { return s.cfg.Issuer }

type supabaseJWTClaims struct {
	jwt.RegisteredClaims
	Email string `json:"email"`
	Role  string `json:"role"`
	// EmailVerified is a top-level claim GoTrue does not issue; a custom
	// access token hook may add it (from auth.users.email_confirmed_at).
	EmailVerified any  `json:"email_verified"`
	IsAnonymous   bool `json:"is_anonymous"`
	UserMetadata  struct {
		// EmailVerified is where GoTrue says the email is confirmed: it
		// sets it to true when the user confirms the address.
		EmailVerified any `json:"email_verified"`
	} `json:"user_metadata"`
}

// emailConfirmed holds when the token says its email is confirmed: the
// top-level email_verified when present (a hook's word wins), else
// user_metadata.email_verified; only the JSON boolean true counts, and an
// anonymous user has no confirmed email.
func (c *supabaseJWTClaims) emailConfirmed() bool {
	if c.IsAnonymous {
		return false
	}
	if c.EmailVerified != nil {
		return c.EmailVerified == true
	}
	return c.UserMetadata.EmailVerified == true
}

// Verify checks a Supabase access token and returns its subject and email.
func (s *Supabase) Verify(ctx context.Context, raw string) (SupabaseClaims, error) {
	var claims supabaseJWTClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(tok *jwt.Token) (any, error) {
		if tok.Method.Alg() == "HS256" {
			if len(s.cfg.JWTSecret) == 0 {
				return nil, errors.New("HS256 is not configured")
			}
			return s.cfg.JWTSecret, nil
		}
		if s.jwks == nil {
			return nil, fmt.Errorf("algorithm %s needs the JWKS URL", tok.Method.Alg())
		}
		return s.jwks.KeyfuncCtx(ctx)(tok)
	},
		jwt.WithValidMethods(s.algs),
		jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithAudience(s.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(s.cfg.Leeway),
		jwt.WithTimeFunc(s.now),
	)
	if err != nil {
		return SupabaseClaims{}, fmt.Errorf("%w: supabase: %w", ErrInvalidToken, err)
	}
	if claims.Subject == "" || claims.Role == "anon" {
		return SupabaseClaims{}, fmt.Errorf("%w: supabase token has no signed-in user", ErrInvalidToken)
	}
	return SupabaseClaims{Subject: claims.Subject, Email: strings.ToLower(strings.TrimSpace(claims.Email)),
		EmailConfirmed: claims.emailConfirmed()}, nil
}

// UnverifiedIssuer reads a JWT's iss without verifying anything, to pick the
// verifier; the chosen verifier then checks everything.
func UnverifiedIssuer(raw string) string {
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &claims); err != nil {
		return ""
	}
	return claims.Issuer
}
