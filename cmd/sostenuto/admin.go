package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sostenuto/sostenuto/server/auth"
	"github.com/sostenuto/sostenuto/server/fault"
	"github.com/sostenuto/sostenuto/server/store"
)

type adminConfig struct {
	log         logConfig
	db          dbConfig
	email       string
	displayName string
	password    string
}

func (c *adminConfig) settings() []setting {
	s := append(c.log.settings(), c.db.settings()...)
	return append(s,
		setting{name: "email", env: "SOSTENUTO_ADMIN_EMAIL", usage: "the admin's email address", parse: stringVar(&c.email)},
		setting{name: "display-name", env: "SOSTENUTO_ADMIN_DISPLAY_NAME", usage: "the admin's display name", def: "Administrator", parse: stringVar(&c.displayName)},
		setting{name: "password", env: "SOSTENUTO_ADMIN_PASSWORD", secret: true, usage: "the admin's password; read from the first line of stdin when unset", parse: stringVar(&c.password)},
	)
}

// runAdmin creates admin users. Admins are never self-registered: this
// command, run by whoever operates the database, is the only way to make one.
func runAdmin(ctx context.Context, args, env []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("%w: sostenuto admin create --email E [--display-name N] [--password-file F]", errUsage)
	}
	var cfg adminConfig
	if err := loadSettings("admin create", cfg.settings(), args[1:], env, stderr); err != nil {
		return err
	}
	email, err := auth.NormalizeEmail(cfg.email)
	if err != nil {
		return &configError{setting: "--email", err: reason(err)}
	}
	name := strings.TrimSpace(cfg.displayName)
	if name == "" || len([]rune(name)) > 100 {
		return &configError{setting: "--display-name", err: errors.New("must be 1 to 100 characters")}
	}
	pw := cfg.password
	if pw == "" {
		line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password from stdin: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	hash, err := auth.HashPassword(pw, auth.DefaultHashParams)
	if err != nil {
		return &configError{setting: "--password", err: reason(err)}
	}
	pool, err := openPool(ctx, &cfg.db, store.AppRole, 10*time.Second, cfg.log.logger(stderr))
	if err != nil {
		return err
	}
	defer pool.Close()
	u, err := store.New(pool).CreateUser(ctx, store.NewUser{Email: email, DisplayName: name, Role: store.RoleAdmin, PasswordHash: hash})
	if errors.Is(err, fault.ErrConflict) {
		return fmt.Errorf("a user with email %s already exists", email)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created admin %s (%s)\n", u.Email, u.ID)
	return nil
}

// reason strips an auth validation error to its reason.
func reason(err error) error {
	var inv *auth.InvalidError
	if errors.As(err, &inv) {
		return errors.New(inv.Reason)
	}
	return err
}
