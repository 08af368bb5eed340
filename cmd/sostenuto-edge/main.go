// Command sostenuto-edge is the proxy in front of Sostenuto nodes: it
// checks access tokens with the nodes' keys, balances requests over healthy
// nodes, streams project PDFs from object storage and keeps JSON answers
// that it revalidates with the nodes (see edge/README.md).
//
// Every setting is a flag and a SOSTENUTO_EDGE_* environment variable
// (--nodes, SOSTENUTO_EDGE_NODES); secrets may come from a file
// (--x-file, SOSTENUTO_EDGE_X_FILE).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sostenuto/sostenuto/edge"
	"github.com/sostenuto/sostenuto/server/blob"
	"github.com/sostenuto/sostenuto/server/clientip"
	"github.com/sostenuto/sostenuto/server/cors"
)

const envPrefix = "SOSTENUTO_EDGE_"

type setting struct {
	name, def, usage string
	secret           bool
}

var settings = []setting{
	{name: "listen", def: ":8090", usage: "HTTP listen address"},
	{name: "nodes", def: "http://127.0.0.1:8080", usage: "comma-separated base URLs of the nodes"},
	{name: "health-interval", def: "1s", usage: "how often each node's /api/ready is checked"},
	{name: "health-timeout", def: "1s", usage: "bound of one health check"},
	{name: "upstream-timeout", def: "60s", usage: "longest wait for a node's response headers"},
	{name: "trusted-proxies", usage: "comma-separated CIDRs or addresses of proxies in front of the edge whose X-Forwarded-For is kept (others' copies are dropped)"},
	{name: "jwks-urls", usage: "comma-separated JWKS URLs of access-token keys (default: every node's /api/auth/jwks.json; add Supabase's for its tokens)"},
	{name: "jwks-refresh", def: "5m", usage: "how often the JWKS are fetched again (an unknown key id fetches them at once, at most every 10s)"},
	{name: "jwt-hs256-secret", secret: true, usage: "the nodes' HS256 secret, when they sign with one (it is never published)"},
	{name: "supabase-jwt-secret", secret: true, usage: "Supabase's HS256 JWT secret, to accept Supabase tokens"},
	{name: "jwt-issuers", def: "sostenuto", usage: "comma-separated accepted token issuers (add https://<ref>.supabase.co/auth/v1 for Supabase)"},
	{name: "jwt-audiences", def: "sostenuto-api", usage: "comma-separated accepted audiences (add authenticated for Supabase)"},
	{name: "jwt-leeway", def: "30s", usage: "clock skew tolerated on token times (at most 60s)"},
	{name: "blob-backend", def: "none", usage: "where the edge reads PDFs to stream: none (streams go to the nodes), local (the node's DATA_DIR/blobs on this machine) or s3"},
	{name: "blob-dir", def: ".data/run/blobs", usage: "the local blob directory (blob-backend local)"},
	{name: "s3-endpoint", usage: "S3 endpoint URL (empty for AWS; https://<account>.r2.cloudflarestorage.com for R2)"},
	{name: "s3-region", def: "us-east-1", usage: "S3 region (auto for R2)"},
	{name: "s3-bucket", usage: "S3 bucket"},
	{name: "s3-access-key-id", usage: "S3 access key id (read access is enough)"},
	{name: "s3-secret-access-key", secret: true, usage: "S3 secret access key"},
	{name: "s3-path-style", def: "false", usage: "path-style S3 addressing"},
	{name: "authz-ttl", def: edge.DefaultAuthzTTL.String(), usage: "how long a node's stream authorization is reused: the longest a revoked grant can still stream (at most 5m)"},
	{name: "cache-entries", def: "10000", usage: "answers kept for revalidation (0: no answer cache)"},
	{name: "cache-max-bytes", def: "262144", usage: "largest answer kept"},
	{name: "cache-file", usage: "file the answer cache is saved to at shutdown and read from at start (empty: not kept)"},
	{name: "cors-origins", usage: "comma-separated origins browsers may call through the edge from, with credentials (* : any origin, without credentials); empty: the nodes' own CORS answers pass through"},
	{name: "max-replay-bytes", def: "1048576", usage: "request bodies up to this size are kept to be sent again to another node"},
	{name: "read-header-timeout", def: "10s", usage: "time allowed to read request headers"},
	{name: "idle-timeout", def: "120s", usage: "keep-alive connections idle longer are closed"},
	{name: "shutdown-timeout", def: "20s", usage: "on SIGTERM, how long in-flight requests may run"},
	{name: "log-level", def: "info", usage: "debug, info, warn or error"},
}

func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// load resolves every setting: flag, then environment, then file (for
// secrets), then default. Unknown SOSTENUTO_EDGE_* variables are refused.
func load(args, env []string, out io.Writer) (map[string]string, error) {
	fs := flag.NewFlagSet("sostenuto-edge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vals := map[string]*string{}
	known := map[string]bool{}
	for _, s := range settings {
		def := ""
		if s.def != "" {
			def = ", default " + s.def
		}
		vals[s.name] = fs.String(s.name, "", s.usage+" (env "+envName(s.name)+def+")")
		known[envName(s.name)] = true
		if s.secret {
			vals[s.name+"-file"] = fs.String(s.name+"-file", "", "file holding --"+s.name+" (env "+envName(s.name)+"_FILE)")
			known[envName(s.name)+"_FILE"] = true
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(out, "usage: sostenuto-edge [flags]")
			fs.SetOutput(out)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	environ := map[string]string{}
	var unknown []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, envPrefix) {
			if !known[k] {
				unknown = append(unknown, k)
			}
			environ[k] = v
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown setting %s (sostenuto-edge -h lists them)", strings.Join(unknown, ", "))
	}
	got := map[string]string{}
	for _, s := range settings {
		v, ok := "", false
		switch {
		case given[s.name]:
			v, ok = *vals[s.name], true
		case environ[envName(s.name)] != "":
			v, ok = environ[envName(s.name)], true
		}
		if s.secret && !ok {
			file := *vals[s.name+"-file"]
			if file == "" {
				file = environ[envName(s.name)+"_FILE"]
			}
			if file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", envName(s.name)+"_FILE", err)
				}
				v, ok = strings.TrimRight(string(b), "\r\n"), true
			}
		}
		if !ok {
			v = s.def
		}
		got[s.name] = v
	}
	return got, nil
}

func list(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// config turns the settings into the edge's configuration.
func config(ctx context.Context, v map[string]string) (edge.Config, error) {
	var cfg edge.Config
	var errs []error
	dur := func(name string, lo, hi time.Duration) time.Duration {
		d, err := time.ParseDuration(v[name])
		if err != nil || d < lo || d > hi {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration within [%s, %s]", envName(name), v[name], lo, hi))
		}
		return d
	}
	num := func(name string, lo, hi int64) int64 {
		n, err := strconv.ParseInt(v[name], 10, 64)
		if err != nil || n < lo || n > hi {
			errs = append(errs, fmt.Errorf("%s: %q is not a number within [%d, %d]", envName(name), v[name], lo, hi))
		}
		return n
	}
	for _, n := range list(v["nodes"]) {
		u, err := url.Parse(strings.TrimSuffix(n, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, fmt.Errorf("%s: %q is not a node base URL (http://host:port)", envName("nodes"), n))
			continue
		}
		cfg.Nodes = append(cfg.Nodes, u)
	}
	if len(cfg.Nodes) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: at least one node is required", envName("nodes")))
	}
	cfg.HealthInterval = dur("health-interval", 100*time.Millisecond, time.Minute)
	cfg.HealthTimeout = dur("health-timeout", 50*time.Millisecond, time.Minute)
	cfg.UpstreamTimeout = dur("upstream-timeout", time.Second, time.Hour)
	trusted, err := clientip.Parse(v["trusted-proxies"])
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", envName("trusted-proxies"), err))
	}
	cfg.TrustedProxies = trusted
	cfg.JWKSURLs = list(v["jwks-urls"])
	cfg.JWKSRefresh = dur("jwks-refresh", time.Minute, 24*time.Hour)
	for _, name := range []string{"jwt-hs256-secret", "supabase-jwt-secret"} {
		if s := v[name]; s != "" {
			if len(s) < 32 {
				errs = append(errs, fmt.Errorf("%s: an HS256 secret needs at least 32 bytes", envName(name)))
			}
			cfg.HS256Secrets = append(cfg.HS256Secrets, []byte(s))
		}
	}
	cfg.Issuers, cfg.Audiences = list(v["jwt-issuers"]), list(v["jwt-audiences"])
	cfg.Leeway = dur("jwt-leeway", 0, time.Minute)
	switch v["blob-backend"] {
	case "none":
	case "local":
		l, err := blob.NewLocal(v["blob-dir"], "http://unused.invalid", []byte("the edge only reads local blobs: no URL is signed"))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", envName("blob-dir"), err))
		}
		cfg.Blob = l
	case "s3":
		s, err := blob.NewS3(blob.S3Config{Endpoint: v["s3-endpoint"], Region: v["s3-region"], Bucket: v["s3-bucket"],
			AccessKeyID: v["s3-access-key-id"], SecretAccessKey: v["s3-secret-access-key"], PathStyle: v["s3-path-style"] == "true"})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", envName("s3-bucket"), err))
		}
		cfg.Blob = s
	default:
		errs = append(errs, fmt.Errorf("%s: %q is not none, local or s3", envName("blob-backend"), v["blob-backend"]))
	}
	cfg.AuthzTTL = dur("authz-ttl", 100*time.Millisecond, 5*time.Minute)
	cfg.CacheEntries = int(num("cache-entries", 0, 10_000_000))
	cfg.CacheMaxBytes = num("cache-max-bytes", 1024, 64<<20)
	cfg.CacheFile = v["cache-file"]
	cfg.MaxReplayBytes = num("max-replay-bytes", 1024, 64<<20)
	if cfg.CORSOrigins, err = cors.ParseOrigins(v["cors-origins"]); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", envName("cors-origins"), err))
	}
	return cfg, errors.Join(errs...)
}

func run(ctx context.Context, args, env []string, stderr io.Writer) error {
	v, err := load(args, env, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(v["log-level"])); err != nil {
		return fmt.Errorf("%s: %w", envName("log-level"), err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := config(ctx, v)
	if err != nil {
		return err
	}
	e, err := edge.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", v["listen"])
	if err != nil {
		return err
	}
	e.Start(ctx)
	idle, _ := time.ParseDuration(v["idle-timeout"])
	readHeader, _ := time.ParseDuration(v["read-header-timeout"])
	shutdown, _ := time.ParseDuration(v["shutdown-timeout"])
	srv := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: readHeader, IdleTimeout: idle, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	runDone := make(chan error, 1)
	hctx, stopHealth := context.WithCancel(context.WithoutCancel(ctx))
	go func() { runDone <- e.Run(hctx) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("edge listening", "component", "edge", "addr", ln.Addr().String(), "nodes", v["nodes"], "blob", v["blob-backend"])
	select {
	case err = <-serveErr:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), shutdown)
		err = srv.Shutdown(sctx)
		cancel()
	}
	stopHealth()
	if rerr := <-runDone; rerr != nil {
		err = errors.Join(err, rerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "sostenuto-edge:", err)
		os.Exit(2)
	}
}
