package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/store"
)

// authConfig holds the token and Supabase settings of serve.
type authConfig struct {
	signingKey      string
	hs256Secret     string
	previousKeys    string
	previousUntil   string
	issuer          string
	audience        string
	leeway          time.Duration
	supabaseIssuer  string
	supabaseSecret  string
	supabaseJWKS    string
	supabaseAud     string
	supabaseRole    string
	supabaseRefresh time.Duration
}

func (c *authConfig) settings() []setting {
	return []setting{
		{name: "jwt-signing-key", secret: true, usage: "PEM Ed25519 or RSA private key that signs access tokens; when unset (and no HS256 secret), DATA_DIR/jwt-signing-key.pem, generated on first start", parse: stringVar(&c.signingKey)},
		{name: "jwt-hs256-secret", secret: true, usage: "sign access tokens with HS256 and this secret (32+ bytes) instead of a key pair", parse: stringVar(&c.hs256Secret)},
		{name: "jwt-previous-keys", secret: true, usage: "PEM keys (private or public) of retired signing keys, still accepted until --jwt-previous-keys-until", parse: stringVar(&c.previousKeys)},
		{name: "jwt-previous-keys-until", usage: "RFC 3339 time after which the previous keys are refused", parse: stringVar(&c.previousUntil)},
		{name: "jwt-issuer", usage: "iss of access tokens", def: "sostenuto", parse: stringVar(&c.issuer)},
		{name: "jwt-audience", usage: "aud of access tokens", def: "sostenuto-api", parse: stringVar(&c.audience)},
		{name: "jwt-leeway", usage: "clock skew tolerated on token times (at most 60s)", def: "30s", parse: durationVar(&c.leeway, 0, auth.MaxLeeway)},
		{name: "supabase-issuer", usage: "accept Supabase Auth access tokens of this issuer (https://<ref>.supabase.co/auth/v1)", parse: stringVar(&c.supabaseIssuer)},
		{name: "supabase-jwt-secret", secret: true, usage: "Supabase's HS256 JWT secret", parse: stringVar(&c.supabaseSecret)},
		{name: "supabase-jwks-url", usage: "Supabase's JWKS URL (asymmetric signing keys)", parse: stringVar(&c.supabaseJWKS)},
		{name: "supabase-audience", usage: "aud of Supabase tokens", def: "authenticated", parse: stringVar(&c.supabaseAud)},
		{name: "supabase-role", usage: "role of users provisioned from Supabase tokens: student or teacher", def: "student", parse: oneOfVar(&c.supabaseRole, "student", "teacher")},
		{name: "supabase-jwks-refresh", usage: "how often the Supabase JWKS is re-fetched", def: "10m", parse: durationVar(&c.supabaseRefresh, time.Minute, 24*time.Hour)},
	}
}

// tokens builds the access-token service from the settings.
func (c *authConfig) tokens(dataDir string, logger *slog.Logger) (*auth.Tokens, error) {
	signing, err := c.signing(dataDir, logger)
	if err != nil {
		return nil, err
	}
	var previous []auth.Key
	if c.previousKeys != "" {
		if c.previousUntil == "" {
			return nil, &configError{setting: envName("jwt-previous-keys-until"), err: errors.New("required with previous keys: the end of their window")}
		}
		until, err := time.Parse(time.RFC3339, c.previousUntil)
		if err != nil {
			return nil, &configError{setting: envName("jwt-previous-keys-until"), err: fmt.Errorf("not an RFC 3339 time: %q", c.previousUntil)}
		}
		previous, err = auth.ParseKeysPEM([]byte(c.previousKeys))
		if err != nil {
			return nil, &configError{setting: envName("jwt-previous-keys"), err: err}
		}
		for i := range previous {
			previous[i].NotAfter = until
		}
	}
	t, err := auth.NewTokens(auth.TokenConfig{Issuer: c.issuer, Audience: c.audience, AccessTTL: time.Hour, Leeway: c.leeway}, signing, previous, nil)
	if err != nil {
		return nil, &configError{setting: envName("jwt-issuer"), err: err}
	}
	return t, nil
}

func (c *authConfig) signing(dataDir string, logger *slog.Logger) (auth.Key, error) {
	switch {
	case c.signingKey != "" && c.hs256Secret != "":
		return auth.Key{}, &configError{setting: envName("jwt-hs256-secret"), err: errors.New("set either a signing key or an HS256 secret, not both")}
	case c.hs256Secret != "":
		k, err := auth.HS256Key([]byte(c.hs256Secret))
		if err != nil {
			return k, &configError{setting: envName("jwt-hs256-secret"), err: err}
		}
		return k, nil
	case c.signingKey != "":
		keys, err := auth.ParseKeysPEM([]byte(c.signingKey))
		if err == nil && !keys[0].CanSign() {
			err = errors.New("holds a public key; a private key is needed")
		}
		if err != nil {
			return auth.Key{}, &configError{setting: envName("jwt-signing-key"), err: err}
		}
		return keys[0], nil
	}
	path := filepath.Join(dataDir, "jwt-signing-key.pem")
	k, created, err := auth.EnsureKeyFile(path)
	if err != nil {
		return k, &configError{setting: envName("jwt-signing-key"), err: err}
	}
	if created {
		logger.Info("generated an Ed25519 token signing key", "component", "auth", "path", path, "kid", k.KID)
	}
	return k, nil
}

// supabase builds the Supabase verifier, or nil when not configured.
func (c *authConfig) supabase(ctx context.Context) (*auth.Supabase, error) {
	if c.supabaseIssuer == "" {
		if c.supabaseSecret != "" || c.supabaseJWKS != "" {
			return nil, &configError{setting: envName("supabase-issuer"), err: errors.New("required with a Supabase secret or JWKS URL")}
		}
		return nil, nil
	}
	s, err := auth.NewSupabase(ctx, auth.SupabaseConfig{
		Issuer: c.supabaseIssuer, Audience: c.supabaseAud, JWTSecret: []byte(c.supabaseSecret),
		JWKSURL: c.supabaseJWKS, JWKSRefresh: c.supabaseRefresh, Leeway: c.leeway,
	}, nil)
	if err != nil {
		return nil, &configError{setting: envName("supabase-issuer"), err: err}
	}
	return s, nil
}

// authService assembles the authentication service.
func (c *authConfig) authService(ctx context.Context, dataDir string, st *store.Store, logger *slog.Logger) (*auth.Service, error) {
	tokens, err := c.tokens(dataDir, logger)
	if err != nil {
		return nil, err
	}
	sb, err := c.supabase(ctx)
	if err != nil {
		return nil, err
	}
	cfg := auth.DefaultConfig()
	cfg.SupabaseRole = c.supabaseRole
	return auth.NewService(cfg, st, tokens, sb, logger)
}
