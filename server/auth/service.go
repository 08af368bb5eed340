package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/store"
)

// ErrEmailUnconfirmed is returned for a Supabase token of a user not
// provisioned yet whose email is not confirmed. It matches
// fault.ErrUnauthenticated too. Besides it, the service returns
// fault.ErrInvalid (validation), fault.ErrConflict (email taken) and
// fault.ErrUnauthenticated (wrong credentials, or a token that is not
// valid: the same error for an unknown email and a wrong password).
var ErrEmailUnconfirmed = fmt.Errorf("email not confirmed: %w", fault.ErrUnauthenticated)

// ThrottledError says a sign-in is refused until RetryAt.
type ThrottledError struct{ RetryAt time.Time }

func (e *ThrottledError) Error() string {
	return "auth: too many failed sign-ins; retry after " + e.RetryAt.UTC().Format(time.RFC3339)
}

// Config sets the service's lifetimes and costs.
type Config struct {
	RefreshTTL time.Duration
	Hash       HashParams
	// Failed sign-ins (docs/SECURITY.md "Sign-in failures"): PairThrottle
	// bounds them per account and client address, IPThrottle per client
	// address over all accounts; both answer 429. AccountThrottle counts
	// them per account over all addresses: an account past it is under
	// attack until its block ends, which refuses no one but puts each
	// (account, address) pair under AttackThrottle instead of PairThrottle.
	PairThrottle    store.ThrottlePolicy
	IPThrottle      store.ThrottlePolicy
	AccountThrottle store.ThrottlePolicy
	AttackThrottle  store.ThrottlePolicy
	// SupabaseRole is the role given to users provisioned from Supabase
	// tokens (student by default).
	SupabaseRole string
}

// DefaultConfig is the production configuration.
func DefaultConfig() Config {
	return Config{
		RefreshTTL:      7 * 24 * time.Hour,
		Hash:            DefaultHashParams,
		PairThrottle:    store.ThrottlePolicy{Limit: 5, Window: 15 * time.Minute, Base: 30 * time.Second, Max: 15 * time.Minute},
		IPThrottle:      store.ThrottlePolicy{Limit: 30, Window: 15 * time.Minute, Base: 30 * time.Second, Max: 15 * time.Minute},
		AccountThrottle: store.ThrottlePolicy{Limit: 100, Window: 15 * time.Minute, Base: 15 * time.Minute, Max: 15 * time.Minute},
		AttackThrottle:  store.ThrottlePolicy{Limit: 1, Window: 15 * time.Minute, Base: 15 * time.Minute, Max: 15 * time.Minute},
		SupabaseRole:    store.RoleStudent,
	}
}

// Session is what register, login and refresh answer.
type Session struct {
	User         store.User
	AccessToken  string
	RefreshToken string
	TokenType    string
	ExpiresIn    int
}

// Principal is an authenticated caller, as loaded from the database.
type Principal struct {
	User      store.User
	SessionID uuid.UUID // uuid.Nil for Supabase tokens
}

// Service runs sign-up, sign-in, token refresh and request authentication.
type Service struct {
	cfg       Config
	store     *store.Store
	tokens    *Tokens
	supabase  *Supabase
	logger    *slog.Logger
	dummyHash string
	// known remembers the users of sessions found live, for
	// AuthenticateDeferred; never trusted without a check in PostgreSQL.
	known *lru.Cache[sessionKey, store.User]
}

// sessionKey names a login session of a user.
type sessionKey struct{ user, session uuid.UUID }

// knownSessions bounds the sessions remembered (about 200 bytes each).
const knownSessions = 10000

// NewService builds the service; supabase may be nil.
func NewService(cfg Config, st *store.Store, tokens *Tokens, supabase *Supabase, logger *slog.Logger) (*Service, error) {
	// Unknown emails are checked against this hash so they cost what a
	// wrong password costs.
	dummy, err := HashPassword("not-a-real-password", cfg.Hash)
	if err != nil {
		return nil, err
	}
	known, err := lru.New[sessionKey, store.User](knownSessions)
	if err != nil {
		return nil, fmt.Errorf("auth: known sessions: %w", err)
	}
	return &Service{cfg: cfg, store: st, tokens: tokens, supabase: supabase, logger: logger, dummyHash: dummy, known: known}, nil
}

// Registration is a sign-up request.
type Registration struct {
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
	Role        string `json:"role"`
}

// FieldError is a validation failure of one input field.
type FieldError struct {
	Field, Message string
}

// ValidationError lists the fields that failed; it matches fault.ErrInvalid.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "auth: invalid input: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, fault.ErrInvalid) hold.
func (e *ValidationError) Is(target error) bool { return target == fault.ErrInvalid }

func (r *Registration) validate() (string, error) {
	var v ValidationError
	email, err := NormalizeEmail(r.Email)
	if err != nil {
		v.Fields = append(v.Fields, FieldError{"email", reasonOf(err)})
	}
	if err := ValidatePassword(r.Password); err != nil {
		v.Fields = append(v.Fields, FieldError{"password", reasonOf(err)})
	}
	name := strings.TrimSpace(r.DisplayName)
	if name == "" || utf8.RuneCountInString(name) > 100 {
		v.Fields = append(v.Fields, FieldError{"display_name", "must be 1 to 100 characters"})
	}
	r.DisplayName = name
	if r.Role != store.RoleTeacher && r.Role != store.RoleStudent {
		v.Fields = append(v.Fields, FieldError{"role", "must be teacher or student (admins are created by the operator)"})
	}
	if len(v.Fields) > 0 {
		return "", &v
	}
	return email, nil
}

func reasonOf(err error) string {
	var inv *InvalidError
	if errors.As(err, &inv) {
		return inv.Reason
	}
	return err.Error()
}

// Register creates a teacher or student account and signs it in.
func (s *Service) Register(ctx context.Context, r Registration) (Session, error) {
	email, err := r.validate()
	if err != nil {
		return Session{}, err
	}
	hash, err := HashPassword(r.Password, s.cfg.Hash)
	if err != nil {
		return Session{}, err
	}
	u, err := s.store.CreateUser(ctx, store.NewUser{Email: email, DisplayName: r.DisplayName, Role: r.Role, PasswordHash: hash})
	if err != nil {
		return Session{}, err
	}
	return s.newSession(ctx, u)
}

// Login checks credentials, throttling failures per (account, client
// address), per client address and per account (see Config). The pair's
// failure is counted before the password is checked and forgiven when it
// was right, so concurrent guesses cannot outrun the pair's bound.
func (s *Service) Login(ctx context.Context, emailIn, password, clientIP string) (Session, error) {
	email := loginEmail(emailIn)
	keys := newSignInKeys(email, clientIP)
	pairUntil, err := s.admit(ctx, keys)
	if err != nil {
		return Session{}, err
	}
	u, ok, err := s.checkPassword(ctx, email, password)
	if err != nil {
		return Session{}, err
	}
	if !ok {
		return Session{}, s.failed(ctx, keys, pairUntil)
	}
	// Only this pair's count is forgiven: the owner signing in neither
	// ends an attack on the account nor clears the address's count.
	if err := s.store.ClearFailures(ctx, keys.pair); err != nil {
		return Session{}, err
	}
	return s.newSession(ctx, u)
}

// loginEmail normalizes the email of a sign-in; what is not an address
// cannot match but is throttled (and costs) the same.
func loginEmail(in string) string {
	if email, err := NormalizeEmail(in); err == nil {
		return email
	}
	email := strings.ToLower(strings.TrimSpace(in))
	if len(email) > 254 {
		email = email[:254]
	}
	return email
}

// admit refuses a sign-in whose (account, address) pair or address is
// blocked, then counts its failure in advance under the pair: under
// AttackThrottle when the account is under attack, else PairThrottle. It
// returns the block the pair now carries.
func (s *Service) admit(ctx context.Context, k signInKeys) (time.Time, error) {
	blocks, err := s.store.Blocks(ctx, k.pair, k.ip, k.account)
	if err != nil {
		return time.Time{}, err
	}
	until := blocks[k.pair]
	if ip := blocks[k.ip]; ip.After(until) {
		until = ip
	}
	if !until.IsZero() {
		return time.Time{}, &ThrottledError{RetryAt: until}
	}
	policy := s.cfg.PairThrottle
	if _, attack := blocks[k.account]; attack {
		policy = s.cfg.AttackThrottle
	}
	until, counted, err := s.store.ReserveFailure(ctx, k.pair, policy)
	if err != nil {
		return time.Time{}, err
	}
	if !counted {
		return time.Time{}, &ThrottledError{RetryAt: until}
	}
	return until, nil
}

// checkPassword verifies password against the account of email. An
// unknown email is checked against a dummy hash so it costs the same.
func (s *Service) checkPassword(ctx context.Context, email, password string) (store.User, bool, error) {
	u, hash, err := s.store.Credentials(ctx, email)
	if err != nil && !errors.Is(err, fault.ErrNotFound) {
		return store.User{}, false, err
	}
	if hash == "" {
		VerifyPassword(password, s.dummyHash) //nolint:errcheck // equal cost for unknown accounts
		return store.User{}, false, nil
	}
	ok, err := VerifyPassword(password, hash)
	if err != nil {
		s.logger.ErrorContext(ctx, "stored password hash unreadable", "component", "auth", "user", u.ID, "error", err)
		return store.User{}, false, nil
	}
	return u, ok, nil
}

// failed counts a failed sign-in under the address and the account (the
// pair counted it in advance). It answers 429 when the pair or the address
// is now blocked, else 401. The account's count never refuses by itself.
func (s *Service) failed(ctx context.Context, k signInKeys, pairUntil time.Time) error {
	until := pairUntil
	ipUntil, err := s.store.RecordFailure(ctx, k.ip, s.cfg.IPThrottle)
	if err != nil {
		return err
	}
	if ipUntil.After(until) {
		until = ipUntil
	}
	if _, err := s.store.RecordFailure(ctx, k.account, s.cfg.AccountThrottle); err != nil {
		return err
	}
	if !until.IsZero() {
		return &ThrottledError{RetryAt: until}
	}
	return fmt.Errorf("auth: login: wrong email or password: %w", fault.ErrUnauthenticated)
}

// Refresh spends a refresh token for a new session. A spent token replayed
// revokes its whole family.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Session, error) {
	oldHash, ok := hashRefreshToken(refreshToken)
	if !ok {
		return Session{}, fmt.Errorf("auth: refresh: malformed token: %w", fault.ErrUnauthenticated)
	}
	token, newHash := newRefreshToken()
	userID, family, err := s.store.RotateRefreshToken(ctx, oldHash, newHash, time.Now().Add(s.cfg.RefreshTTL))
	switch {
	case errors.Is(err, store.ErrTokenReplayed):
		s.logger.WarnContext(ctx, "refresh token replayed; family revoked", "component", "auth", "error", err)
		return Session{}, fmt.Errorf("auth: refresh: %w: %w", fault.ErrUnauthenticated, err)
	case errors.Is(err, fault.ErrNotFound), errors.Is(err, store.ErrTokenExpired):
		return Session{}, fmt.Errorf("auth: refresh: %w: %w", fault.ErrUnauthenticated, err)
	case err != nil:
		return Session{}, err
	}
	u, err := s.store.UserByID(ctx, userID)
	if err != nil {
		return Session{}, err
	}
	access, exp, err := s.tokens.IssueAccess(u.ID, family)
	if err != nil {
		return Session{}, err
	}
	return s.session(u, access, exp, token), nil
}

// Logout revokes the session the refresh token belongs to. Unknown or
// malformed tokens are fault.ErrUnauthenticated.
func (s *Service) Logout(ctx context.Context, refreshToken string) error {
	hash, ok := hashRefreshToken(refreshToken)
	if !ok {
		return fmt.Errorf("auth: logout: malformed token: %w", fault.ErrUnauthenticated)
	}
	err := s.store.RevokeRefreshFamily(ctx, hash)
	if errors.Is(err, fault.ErrNotFound) {
		return fmt.Errorf("auth: logout: %w", fault.ErrUnauthenticated)
	}
	return err
}

// Authenticate turns a bearer token into the caller as stored now: the
// role comes from the database, and a token of a revoked session fails.
func (s *Service) Authenticate(ctx context.Context, bearer string) (Principal, error) {
	if s.supabase != nil && UnverifiedIssuer(bearer) == s.supabase.Issuer() {
		return s.authenticateSupabase(ctx, bearer)
	}
	v, err := s.tokens.VerifyAccess(bearer)
	if err != nil {
		return Principal{}, fmt.Errorf("auth: %w: %w", fault.ErrUnauthenticated, err)
	}
	u, live, err := s.store.UserInSession(ctx, v.UserID, v.SessionID)
	if errors.Is(err, fault.ErrNotFound) {
		return Principal{}, fmt.Errorf("auth: user of token is gone: %w", fault.ErrUnauthenticated)
	}
	if err != nil {
		return Principal{}, err
	}
	if !live {
		s.known.Remove(sessionKey{v.UserID, v.SessionID})
		return Principal{}, fmt.Errorf("auth: session ended: %w", fault.ErrUnauthenticated)
	}
	s.known.Add(sessionKey{v.UserID, v.SessionID}, u)
	return Principal{User: u, SessionID: v.SessionID}, nil
}

// AuthenticateDeferred is Authenticate without its round trip when this
// node found the token's session live before: the token is verified, and
// the principal is the user as stored then, pending (true) until the
// caller has read the session and the role in PostgreSQL
// (rag.Pending: in the same round trip as its own query) before it
// answers anything or changes anything. Otherwise it is Authenticate.
func (s *Service) AuthenticateDeferred(ctx context.Context, bearer string) (Principal, bool, error) {
	if s.supabase != nil && UnverifiedIssuer(bearer) == s.supabase.Issuer() {
		p, err := s.authenticateSupabase(ctx, bearer)
		return p, false, err
	}
	v, err := s.tokens.VerifyAccess(bearer)
	if err != nil {
		return Principal{}, false, fmt.Errorf("auth: %w: %w", fault.ErrUnauthenticated, err)
	}
	if u, ok := s.known.Get(sessionKey{v.UserID, v.SessionID}); ok {
		return Principal{User: u, SessionID: v.SessionID}, true, nil
	}
	p, err := s.Authenticate(ctx, bearer)
	return p, false, err
}

// Forget drops what the node remembers of a session (one a pending check
// found ended, or of a role that changed): its next use is checked in full.
func (s *Service) Forget(user, session uuid.UUID) { s.known.Remove(sessionKey{user, session}) }

// authenticateSupabase verifies a Supabase token and provisions its user on
// first sight, only when the token says its email is confirmed. A sub seen
// before maps to its user whatever the token says of the email. An email
// already held by another account is refused, never linked: a Supabase
// account must not take over a local one.
func (s *Service) authenticateSupabase(ctx context.Context, bearer string) (Principal, error) {
	c, err := s.supabase.Verify(ctx, bearer)
	if err != nil {
		return Principal{}, fmt.Errorf("auth: %w: %w", fault.ErrUnauthenticated, err)
	}
	u, err := s.store.UserByExternalSubject(ctx, c.Subject)
	if err == nil {
		return Principal{User: u}, nil
	}
	if !errors.Is(err, fault.ErrNotFound) {
		return Principal{}, err
	}
	email, err := NormalizeEmail(c.Email)
	if err != nil {
		return Principal{}, fmt.Errorf("auth: supabase token without a usable email: %w", fault.ErrUnauthenticated)
	}
	if !c.EmailConfirmed {
		return Principal{}, fmt.Errorf("auth: supabase user %s: %w", c.Subject, ErrEmailUnconfirmed)
	}
	name, _, _ := strings.Cut(email, "@")
	u, err = s.store.CreateUser(ctx, store.NewUser{Email: email, DisplayName: name, Role: s.cfg.SupabaseRole, ExternalSubject: c.Subject})
	if errors.Is(err, fault.ErrConflict) {
		// A racing first request provisioned it, or the email is taken.
		if u, err := s.store.UserByExternalSubject(ctx, c.Subject); err == nil {
			return Principal{User: u}, nil
		}
		return Principal{}, fmt.Errorf("auth: supabase user's email %s belongs to another account: %w", email, fault.ErrUnauthenticated)
	}
	if err != nil {
		return Principal{}, err
	}
	s.logger.InfoContext(ctx, "provisioned user from supabase", "component", "auth", "user", u.ID, "role", u.Role)
	return Principal{User: u}, nil
}

func (s *Service) newSession(ctx context.Context, u store.User) (Session, error) {
	token, hash := newRefreshToken()
	family := uuid.New()
	if err := s.store.CreateRefreshToken(ctx, u.ID, family, hash, time.Now().Add(s.cfg.RefreshTTL)); err != nil {
		return Session{}, err
	}
	access, exp, err := s.tokens.IssueAccess(u.ID, family)
	if err != nil {
		return Session{}, err
	}
	return s.session(u, access, exp, token), nil
}

func (s *Service) session(u store.User, access string, _ time.Time, refresh string) Session {
	return Session{User: u, AccessToken: access, RefreshToken: refresh, TokenType: "Bearer",
		ExpiresIn: int(s.tokens.cfg.AccessTTL / time.Second)}
}

// refreshPrefix marks Sostenuto refresh tokens.
const refreshPrefix = "srt_"

// newRefreshToken returns a fresh random token and the hash stored for it.
func newRefreshToken() (string, []byte) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("auth: random source failed: %v", err))
	}
	tok := refreshPrefix + base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(tok))
	return tok, h[:]
}

func hashRefreshToken(tok string) ([]byte, bool) {
	if !strings.HasPrefix(tok, refreshPrefix) || len(tok) != len(refreshPrefix)+43 {
		return nil, false
	}
	h := sha256.Sum256([]byte(tok))
	return h[:], true
}

// JWKS publishes the public keys that verify this node's access tokens.
func (s *Service) JWKS() ([]byte, error) { return s.tokens.JWKS() }
