package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/sostenuto/sostenuto/replication/pki"
)

type certsConfig struct {
	dir    string
	nodes  string
	days   int64
	caDays int64
}

func (c *certsConfig) settings() []setting {
	return []setting{
		{name: "dir", env: "SOSTENUTO_CERTS_DIR", usage: "directory of the cluster CA (made when missing) and the node certificates", parse: stringVar(&c.dir)},
		{name: "nodes", env: "SOSTENUTO_CERTS_NODES", usage: "nodes to certify: NAME=HOST[+HOST...],... where HOST is the IP address or DNS name of the node's raft-advertise address", parse: stringVar(&c.nodes)},
		{name: "days", env: "SOSTENUTO_CERTS_DAYS", usage: "validity of the node certificates, in days (at most the CA's)", def: "730", parse: intVar(&c.days, 1, 36500)},
		{name: "ca-days", env: "SOSTENUTO_CERTS_CA_DAYS", usage: "validity of a new CA, in days", def: "3650", parse: intVar(&c.caDays, 1, 36500)},
	}
}

const certsUsage = "sostenuto cluster certs --dir DIR --nodes n1=10.0.0.1,n2=10.0.0.2,... [--days 730] [--ca-days 3650]"

// runCluster runs the cluster tools; `cluster certs` makes the Raft
// transport's CA (once per directory) and node certificates (again on
// each run: a renewal).
func runCluster(_ context.Context, args, env []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "certs" {
		return fmt.Errorf("%w: %s", errUsage, certsUsage)
	}
	var cfg certsConfig
	if err := loadSettings("cluster certs", cfg.settings(), args[1:], env, stderr); err != nil {
		return err
	}
	if cfg.dir == "" {
		return &configError{setting: "--dir", err: fmt.Errorf("needed (%s)", certsUsage)}
	}
	nodes, err := pki.ParseNodes(cfg.nodes)
	if err != nil {
		return &configError{setting: "--nodes", err: err}
	}
	ca, created, err := pki.LoadOrCreateCA(cfg.dir, days(cfg.caDays))
	if err != nil {
		return err
	}
	caVerb := "kept"
	if created {
		caVerb = "made"
	}
	fmt.Fprintf(stdout, "CA %s: %s (its key %s: keep it off the nodes), valid until %s\n", caVerb,
		filepath.Join(cfg.dir, pki.CAFile), filepath.Join(cfg.dir, pki.CAKeyFile), ca.Cert.NotAfter.UTC().Format(time.DateOnly))
	for _, n := range nodes {
		cert, key, err := ca.Issue(n, days(cfg.days))
		if err != nil {
			return err
		}
		if err := pki.WriteNode(cfg.dir, n.Name, cert, key); err != nil {
			return err
		}
		until := time.Now().Add(days(cfg.days))
		if until.After(ca.Cert.NotAfter) {
			until = ca.Cert.NotAfter
		}
		fmt.Fprintf(stdout, "%s: %s, %s (for %s), valid until %s\n", n.Name, filepath.Join(cfg.dir, pki.CertFile(n.Name)),
			filepath.Join(cfg.dir, pki.KeyFile(n.Name)), strings.Join(n.Hosts, ", "), until.UTC().Format(time.DateOnly))
	}
	return nil
}

func days(n int64) time.Duration { return time.Duration(n) * 24 * time.Hour }
