package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sostenuto/sostenuto/migrations"
)

type migrateConfig struct {
	log logConfig
	db  dbConfig
}

func (c *migrateConfig) settings() []setting {
	return append(c.log.settings(), c.db.settings()...)
}

func runMigrate(ctx context.Context, args, env []string, _ io.Reader, stdout, stderr io.Writer) error {
	var cfg migrateConfig
	if err := loadSettings("migrate", cfg.settings(), args, env, stderr); err != nil {
		return err
	}
	logger := cfg.log.logger(stderr)
	pool, err := openPool(ctx, &cfg.db, "", 10*time.Second, logger)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := migrations.Up(ctx, pool, logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema at version %d (was %d; applied %d)\n", res.To, res.From, res.Applied)
	return nil
}
