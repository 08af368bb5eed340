//go:build js && wasm

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sostenuto/sostenuto/edge/rules"
)

// state is what the Worker configured: the token policy and the key set,
// and the tokens whose signature it verified with that key set (checked
// again for their claims on every use; dropped when the keys change).
type state struct {
	policy   rules.Policy
	keys     *rules.KeySet
	verified map[string]jwt.RegisteredClaims
}

// maxVerified bounds the verified tokens kept (the map starts afresh when full).
const maxVerified = 4096

type configArgs struct {
	Issuers   []string `json:"issuers"`
	Audiences []string `json:"audiences"`
	LeewayMs  int64    `json:"leeway_ms"`
	Secrets   []string `json:"hs256_secrets"`
	JWKS      bool     `json:"jwks"`
}

type verifyArgs struct {
	Authorization string `json:"authorization"`
	Path          string `json:"path"`
	NowMs         int64  `json:"now_ms"`
}

type verifyResult struct {
	Outcome    rules.Outcome `json:"outcome"`
	Subject    string        `json:"subject,omitempty"`
	UnknownKey bool          `json:"unknown_key,omitempty"`
	Reason     string        `json:"reason,omitempty"`
}

type serveArgs struct {
	IfNoneMatch string `json:"if_none_match"`
	Range       string `json:"range"`
	IfRange     string `json:"if_range"`
	ETag        string `json:"etag"`
	Size        int64  `json:"size"`
}

type retryArgs struct {
	Failure    rules.Failure `json:"failure"`
	Status     int           `json:"status"`
	Idempotent bool          `json:"idempotent"`
	Replayable bool          `json:"replayable"`
}

type keepArgs struct {
	Status    int    `json:"status"`
	ETag      string `json:"etag"`
	MediaType string `json:"media_type"`
	Length    int64  `json:"length"`
	MaxBytes  int64  `json:"max_bytes"`
}

// call runs one operation.
func (s *state) call(op string, raw []byte) (any, error) {
	switch op {
	case "configure":
		return s.configure(raw)
	case "keys":
		return s.setKeys(raw)
	case "verify":
		return s.verify(raw)
	case "plan":
		var r rules.Request
		err := json.Unmarshal(raw, &r)
		return rules.PlanFor(r), err
	case "serve":
		var a serveArgs
		err := json.Unmarshal(raw, &a)
		return rules.ServeObject(a.IfNoneMatch, a.Range, a.IfRange, a.ETag, a.Size), err
	case "retry":
		return retry(raw)
	case "keepable":
		var a keepArgs
		err := json.Unmarshal(raw, &a)
		return rules.Keepable(a.Status, a.ETag, a.MediaType, a.Length, a.MaxBytes), err
	case "valid_project_id":
		var id string
		err := json.Unmarshal(raw, &id)
		return rules.ValidProjectID(id), err
	case "decision_key":
		var a struct{ Subject, Path string }
		err := json.Unmarshal(raw, &a)
		return rules.DecisionKey(a.Subject, a.Path), err
	}
	return nil, fmt.Errorf("unknown op %q", op)
}

func (s *state) configure(raw []byte) (any, error) {
	var c configArgs
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	s.policy = rules.Policy{Issuers: c.Issuers, Audiences: c.Audiences, Leeway: time.Duration(c.LeewayMs) * time.Millisecond}
	if c.JWKS {
		s.policy.Algs = append(s.policy.Algs, rules.AsymmetricAlgs...)
	}
	secrets := make([][]byte, len(c.Secrets))
	for i, v := range c.Secrets {
		secrets[i] = []byte(v)
	}
	if len(secrets) > 0 {
		s.policy.Algs = append(s.policy.Algs, "HS256")
	}
	if len(s.policy.Issuers) == 0 || len(s.policy.Audiences) == 0 || len(s.policy.Algs) == 0 {
		return nil, errors.New("issuers, audiences and a way to verify (JWKS or an HS256 secret) are required")
	}
	s.keys = rules.NewKeySet(secrets)
	s.verified = map[string]jwt.RegisteredClaims{}
	return true, nil
}

// setKeys replaces the public keys with those of the given JWKS documents.
func (s *state) setKeys(raw []byte) (any, error) {
	if s.keys == nil {
		return nil, errors.New("configure first")
	}
	var docs []string
	if err := json.Unmarshal(raw, &docs); err != nil {
		return nil, err
	}
	ks := rules.NewKeySet(s.keys.Secrets())
	for _, d := range docs {
		if err := ks.AddJWKS([]byte(d)); err != nil {
			return nil, err
		}
	}
	s.keys = ks
	s.verified = map[string]jwt.RegisteredClaims{}
	return ks.Len(), nil
}

func (s *state) verify(raw []byte) (any, error) {
	var a verifyArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	if s.keys == nil {
		return nil, errors.New("configure first")
	}
	sub, err := s.check(a.Authorization, time.UnixMilli(a.NowMs))
	res := verifyResult{Outcome: rules.Decide(err, a.Path), Subject: sub, UnknownKey: errors.Is(err, rules.ErrUnknownKey)}
	if err != nil && res.Outcome != rules.TokenNone {
		res.Reason = err.Error()
	}
	return res, nil
}

// check verifies a bearer token, its signature only the first time.
func (s *state) check(header string, now time.Time) (string, error) {
	tok, err := rules.BearerToken(header)
	if err != nil {
		return "", err
	}
	if c, ok := s.verified[tok]; ok {
		return rules.CheckClaims(c, s.policy, now)
	}
	sub, claims, err := rules.Verify(tok, s.keys.Keyfunc, s.policy, now)
	if err == nil {
		if len(s.verified) >= maxVerified {
			s.verified = map[string]jwt.RegisteredClaims{}
		}
		s.verified[tok] = claims
	}
	return sub, err
}

func retry(raw []byte) (any, error) {
	var a retryArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	if a.Failure != "" {
		return map[string]bool{"retry": rules.RetryAfterFailure(a.Failure, a.Idempotent, a.Replayable), "mark_down": rules.MarkDown(a.Failure)}, nil
	}
	return map[string]bool{"retry": rules.RetryStatus(a.Status, a.Idempotent, a.Replayable)}, nil
}
