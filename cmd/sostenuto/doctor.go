package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sostenuto/sostenuto/replication"
)

// doctorConfig is serve's configuration (doctor reads the node's own env
// file) and the peers to check.
type doctorConfig struct {
	serve     serveConfig
	peersRaft string
	peersHTTP string
	timeout   time.Duration
	maxSkew   time.Duration
}

func (c *doctorConfig) settings() []setting {
	return append(c.serve.settings(),
		setting{name: "doctor-raft-peers", usage: "doctor: comma-separated Raft addresses (host:port) of the other nodes, dialed over the node's mutual TLS", parse: stringVar(&c.peersRaft)},
		setting{name: "doctor-peer-urls", usage: "doctor: comma-separated API base URLs of the other nodes, whose clocks are compared with this machine's (default: the join URL)", parse: stringVar(&c.peersHTTP)},
		setting{name: "doctor-timeout", usage: "doctor: bound of each check", def: "10s", parse: durationVar(&c.timeout, time.Second, 5*time.Minute)},
		setting{name: "doctor-max-clock-skew", usage: "doctor: largest clock difference accepted between nodes (HTTP dates have a one-second resolution)", def: "2s", parse: durationVar(&c.maxSkew, time.Second, time.Hour)},
	)
}

// checkResult is one line of doctor's report.
type checkResult struct {
	name   string
	status string // ok, FAIL, skip
	detail string
	fix    string
}

func pass(name, detail string) checkResult {
	return checkResult{name: name, status: "ok", detail: detail}
}
func skip(name, detail string) checkResult {
	return checkResult{name: name, status: "skip", detail: detail}
}
func fail(name string, err error, fix string) checkResult {
	return checkResult{name: name, status: "FAIL", detail: err.Error(), fix: fix}
}

func (r checkResult) String() string {
	detail := strings.Join(strings.Fields(r.detail), " ") // one line
	s := fmt.Sprintf("%-4s  %s: %s", r.status, r.name, detail)
	if r.fix != "" {
		s += " — fix: " + r.fix
	}
	return s
}

// doctor runs the checks in order; db is nil while the database is
// unreachable.
type doctor struct {
	cfg     *doctorConfig
	logger  *slog.Logger
	db      *pgxpool.Pool
	dbName  string
	raftTLS *replication.TLS
	out     io.Writer
	failed  int
}

// runDoctor checks the configuration and every dependency of a node and
// prints one line per check; it fails when any check fails.
func runDoctor(ctx context.Context, args, env []string, _ io.Reader, stdout, stderr io.Writer) error {
	cfg := &doctorConfig{}
	if err := loadSettings("doctor", cfg.settings(), args, env, stderr); err != nil {
		return err
	}
	d := &doctor{cfg: cfg, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), out: stdout}
	defer d.close()
	for _, check := range []func(context.Context) checkResult{
		d.config, d.database, d.migrations, d.pgvector, d.walLevel, d.slot,
		d.blobStore, d.raftPeers, d.embedder, d.llm, d.clockSkew,
	} {
		cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		r := check(cctx)
		cancel()
		fmt.Fprintln(stdout, r)
		if r.status == "FAIL" {
			d.failed++
		}
	}
	if d.failed > 0 {
		return fmt.Errorf("%d checks failed", d.failed)
	}
	return nil
}

func (d *doctor) close() {
	if d.db != nil {
		d.db.Close()
	}
}

// config checks what serve checks before it connects: the Raft
// transport's TLS, the cluster secret, proxies, origins, rate limits and
// the chat provider.
func (d *doctor) config(context.Context) checkResult {
	c := &d.cfg.serve
	if _, _, err := c.llm.answerer(d.logger); err != nil {
		return fail("config", err, "correct the setting (`sostenuto serve -h` lists them)")
	}
	tlsm, err := c.raftSecurity()
	if err != nil {
		return fail("config", err, "make the certificates with `sostenuto cluster certs` (docs/CLUSTER.md)")
	}
	d.raftTLS = tlsm
	if c.indexEnabled && c.join != "" && c.clusterSecret == "" {
		return fail("config", errors.New("SOSTENUTO_JOIN without SOSTENUTO_CLUSTER_SECRET"), "set the cluster's shared secret")
	}
	if _, err := c.apiConfig(); err != nil {
		return fail("config", err, "correct the setting (`sostenuto serve -h` lists them)")
	}
	detail := "settings valid"
	if tlsm != nil {
		days := int(time.Until(tlsm.Cert.Leaf.NotAfter).Hours() / 24)
		detail += fmt.Sprintf("; Raft certificate %q valid for %d more days", tlsm.Cert.Leaf.Subject.CommonName, days)
		if days < 30 {
			return fail("config", fmt.Errorf("the Raft certificate expires in %d days", days), "re-issue it with `sostenuto cluster certs` (docs/CLUSTER.md, Rotating)")
		}
	}
	return pass("config", detail)
}
