package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/sostenuto/sostenuto/server/fault"
)

var fastParams = HashParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashAndVerify(t *testing.T) {
	h, err := HashPassword("correct horse battery", fastParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q is not a PHC argon2id string", h)
	}
	h2, _ := HashPassword("correct horse battery", fastParams)
	if h == h2 {
		t.Error("two hashes of one password are equal: salt not random")
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{{"correct horse battery", true}, {"correct horse batterY", false}, {"", false}} {
		ok, err := VerifyPassword(tc.pw, h)
		if err != nil || ok != tc.want {
			t.Errorf("VerifyPassword(%q) = %v, %v; want %v", tc.pw, ok, err, tc.want)
		}
	}
}

func TestVerifyRejectsMalformedHashes(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2i$v=19$m=64,t=1,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$!!$a2V5"} {
		if ok, err := VerifyPassword("x", h); ok || err == nil {
			t.Errorf("VerifyPassword on %q = %v, %v; want an error", h, ok, err)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	for _, tc := range []struct {
		pw string
		ok bool
	}{{"short", false}, {"12345678", true}, {strings.Repeat("é", 256), true}, {strings.Repeat("a", 257), false}, {"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", false}} {
		err := ValidatePassword(tc.pw)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, fault.ErrInvalid)) {
			t.Errorf("ValidatePassword(%q) = %v, want ok=%v", tc.pw, err, tc.ok)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"  Clara.Schumann@Example.COM ", "clara.schumann@example.com"},
		{"a@b.co", "a@b.co"},
		{"Clara <c@example.com>", ""},
		{"no-at-sign", ""},
		{"a@localhost", ""},
		{"a@b@c.com", ""},
		{strings.Repeat("a", 250) + "@b.com", ""},
	} {
		got, err := NormalizeEmail(tc.in)
		if tc.want == "" {
			if err == nil || !errors.Is(err, fault.ErrInvalid) {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want fault.ErrInvalid", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
