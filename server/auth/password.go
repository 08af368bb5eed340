// Package auth owns credentials: password hashing (argon2id), email
// normalization, and (with the accounts issue) tokens.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/sostenuto/sostenuto/server/fault"
)

// Password length bounds, in characters. The upper bound keeps hashing cost
// bounded for hostile input.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 256
)

// InvalidError says why input failed validation; it matches fault.ErrInvalid.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "auth: " + e.Reason }

// Is makes errors.Is(err, fault.ErrInvalid) hold.
func (e *InvalidError) Is(target error) bool { return target == fault.ErrInvalid }

func invalid(format string, args ...any) error {
	return &InvalidError{Reason: fmt.Sprintf(format, args...)}
}

// HashParams are argon2id's cost settings. DefaultHashParams follow OWASP's
// recommendation (19 MiB, 2 passes, 1 lane).
type HashParams struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	SaltLen int
	KeyLen  uint32
}

// DefaultHashParams is the production cost.
var DefaultHashParams = HashParams{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// ValidatePassword checks a password's length bounds.
func ValidatePassword(pw string) error {
	if !utf8.ValidString(pw) {
		return invalid("password is not valid UTF-8")
	}
	n := utf8.RuneCountInString(pw)
	if n < MinPasswordLen || n > MaxPasswordLen {
		return invalid("password must be %d to %d characters", MinPasswordLen, MaxPasswordLen)
	}
	return nil
}

// HashPassword hashes pw with argon2id and a fresh random salt, encoded in
// the PHC string format: $argon2id$v=19$m=...,t=...,p=...$salt$hash.
func HashPassword(pw string, p HashParams) (string, error) {
	if err := ValidatePassword(pw); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword reports whether pw matches the encoded hash, comparing in
// constant time. A malformed hash is an error, never a match.
func VerifyPassword(pw, encoded string) (bool, error) {
	p, salt, key, err := decodeHash(encoded)
	if err != nil {
		return false, err
	}
	if len(pw) > 4*MaxPasswordLen {
		return false, nil
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

func decodeHash(encoded string) (HashParams, []byte, []byte, error) {
	var p HashParams
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("auth: not an argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errors.New("auth: unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, fmt.Errorf("auth: argon2 parameters: %w", err)
	}
	if p.Memory > 1<<20 || p.Time > 16 || p.Threads == 0 {
		return p, nil, nil, errors.New("auth: argon2 parameters out of range")
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, fmt.Errorf("auth: salt: %w", err)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 {
		return p, nil, nil, errors.New("auth: malformed key")
	}
	return p, salt, key, nil
}

// NormalizeEmail trims and lower-cases an address and checks it is one bare
// address (no display name), at most 254 characters.
func NormalizeEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	if len(e) < 3 || len(e) > 254 {
		return "", invalid("email must be 3 to 254 characters")
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Address != e || addr.Name != "" || !strings.Contains(e[strings.LastIndexByte(e, '@')+1:], ".") {
		return "", invalid("%q is not an email address", s)
	}
	return e, nil
}
