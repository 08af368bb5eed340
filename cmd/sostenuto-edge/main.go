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
	"github.com/sostenuto/sostenuto/server/tracing"
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
	{name: "decision-timeout", def: "70s", usage: "longest wait for a node's decision on a PDF stream or a page image (the node may draw the image first, for up to its request-timeout: keep this above it)"},
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
	{name: "otlp-endpoint", usage: "OTLP/HTTP collector URL spans are sent to (http://collector:4318; /v1/traces is added to a URL without a path); empty: tracing off"},
	{name: "trace-sample", def: "1", usage: "share of new traces recorded, 0 to 1 (a request arriving with a traceparent follows its caller's decision)"},
}

func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// load resolves every setting: flag, then environment, then file (for
// secrets), then default. Unknown SOSTENUTO_EDGE_* variables are refused.
func load(args, env []string, out io.Writer) (map[string]string, error) {
	fs, vals, known := flagSet()
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
	environ, err := edgeEnv(env, known)
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	for _, s := range settings {
		if got[s.name], err = resolve(s, given[s.name], vals, environ); err != nil {
			return nil, err
		}
	}
	return got, nil
}

// flagSet declares a flag per setting (and a -file flag per secret); it
// returns the flags' values by name and the environment variables known.
func flagSet() (*flag.FlagSet, map[string]*string, map[string]bool) {
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
	return fs, vals, known
}

// edgeEnv returns the SOSTENUTO_EDGE_* variables of env, refusing unknown
// ones.
func edgeEnv(env []string, known map[string]bool) (map[string]string, error) {
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
	return environ, nil
}

// resolve returns a setting's value: its flag (given), its environment
// variable, for a secret its file, or its default.
func resolve(s setting, given bool, vals map[string]*string, environ map[string]string) (string, error) {
	switch {
	case given:
		return *vals[s.name], nil
	case environ[envName(s.name)] != "":
		return environ[envName(s.name)], nil
	}
	if s.secret {
		file := *vals[s.name+"-file"]
		if file == "" {
			file = environ[envName(s.name)+"_FILE"]
		}
		if file != "" {
			b, err := os.ReadFile(file)
			if err != nil {
				return "", fmt.Errorf("%s: %w", envName(s.name)+"_FILE", err)
			}
			return strings.TrimRight(string(b), "\r\n"), nil
		}
	}
	return s.def, nil
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

// config turns the settings into the edge's configuration, reporting
// every bad setting at once.
func config(_ context.Context, v map[string]string) (edge.Config, error) {
	p := &settingParser{v: v}
	var cfg edge.Config
	cfg.Nodes = p.nodes()
	cfg.HealthInterval = p.dur("health-interval", 100*time.Millisecond, time.Minute)
	cfg.HealthTimeout = p.dur("health-timeout", 50*time.Millisecond, time.Minute)
	cfg.UpstreamTimeout = p.dur("upstream-timeout", time.Second, time.Hour)
	cfg.DecisionTimeout = p.dur("decision-timeout", time.Second, time.Hour)
	trusted, err := clientip.Parse(v["trusted-proxies"])
	p.check("trusted-proxies", err)
	cfg.TrustedProxies = trusted
	cfg.JWKSURLs = list(v["jwks-urls"])
	cfg.JWKSRefresh = p.dur("jwks-refresh", time.Minute, 24*time.Hour)
	cfg.HS256Secrets = p.hs256Secrets()
	cfg.Issuers, cfg.Audiences = list(v["jwt-issuers"]), list(v["jwt-audiences"])
	cfg.Leeway = p.dur("jwt-leeway", 0, time.Minute)
	cfg.Blob = p.blobStore()
	cfg.AuthzTTL = p.dur("authz-ttl", 100*time.Millisecond, 5*time.Minute)
	cfg.CacheEntries = int(p.num("cache-entries", 0, 10_000_000))
	cfg.CacheMaxBytes = p.num("cache-max-bytes", 1024, 64<<20)
	cfg.CacheFile = v["cache-file"]
	cfg.MaxReplayBytes = p.num("max-replay-bytes", 1024, 64<<20)
	cfg.CORSOrigins, err = cors.ParseOrigins(v["cors-origins"])
	p.check("cors-origins", err)
	return cfg, errors.Join(p.errs...)
}

// settingParser reads typed settings, collecting every error.
type settingParser struct {
	v    map[string]string
	errs []error
}

// check records err, if any, against a setting.
func (p *settingParser) check(name string, err error) {
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s: %w", envName(name), err))
	}
}

func (p *settingParser) dur(name string, lo, hi time.Duration) time.Duration {
	d, err := time.ParseDuration(p.v[name])
	if err != nil || d < lo || d > hi {
		p.errs = append(p.errs, fmt.Errorf("%s: %q is not a duration within [%s, %s]", envName(name), p.v[name], lo, hi))
	}
	return d
}

func (p *settingParser) num(name string, lo, hi int64) int64 {
	n, err := strconv.ParseInt(p.v[name], 10, 64)
	if err != nil || n < lo || n > hi {
		p.errs = append(p.errs, fmt.Errorf("%s: %q is not a number within [%d, %d]", envName(name), p.v[name], lo, hi))
	}
	return n
}

// nodes parses the nodes' base URLs; at least one is required.
func (p *settingParser) nodes() []*url.URL {
	var nodes []*url.URL
	bad := false
	for _, n := range list(p.v["nodes"]) {
		u, err := url.Parse(strings.TrimSuffix(n, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			p.errs = append(p.errs, fmt.Errorf("%s: %q is not a node base URL (http://host:port)", envName("nodes"), n))
			bad = true
			continue
		}
		nodes = append(nodes, u)
	}
	if len(nodes) == 0 && !bad {
		p.errs = append(p.errs, fmt.Errorf("%s: at least one node is required", envName("nodes")))
	}
	return nodes
}

// hs256Secrets are the HS256 secrets set, each of at least 32 bytes.
func (p *settingParser) hs256Secrets() [][]byte {
	var secrets [][]byte
	for _, name := range []string{"jwt-hs256-secret", "supabase-jwt-secret"} {
		if s := p.v[name]; s != "" {
			if len(s) < 32 {
				p.errs = append(p.errs, fmt.Errorf("%s: an HS256 secret needs at least 32 bytes", envName(name)))
			}
			secrets = append(secrets, []byte(s))
		}
	}
	return secrets
}

// blobStore opens the store PDFs are streamed from; nil for none.
func (p *settingParser) blobStore() blob.Store {
	switch p.v["blob-backend"] {
	case "none":
	case "local":
		l, err := blob.NewLocal(p.v["blob-dir"], "http://unused.invalid", []byte("the edge only reads local blobs: no URL is signed"))
		p.check("blob-dir", err)
		return l
	case "s3":
		s, err := blob.NewS3(blob.S3Config{Endpoint: p.v["s3-endpoint"], Region: p.v["s3-region"], Bucket: p.v["s3-bucket"],
			AccessKeyID: p.v["s3-access-key-id"], SecretAccessKey: p.v["s3-secret-access-key"], PathStyle: p.v["s3-path-style"] == "true"})
		p.check("s3-bucket", err)
		return s
	default:
		p.errs = append(p.errs, fmt.Errorf("%s: %q is not none, local or s3", envName("blob-backend"), p.v["blob-backend"]))
	}
	return nil
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
	tp, err := tracer(ctx, v)
	if err != nil {
		return err
	}
	defer shutdownTracing(tp, logger)
	cfg.Tracer = tp.Tracer()
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

// tracer builds the tracer provider: off without --otlp-endpoint.
func tracer(ctx context.Context, v map[string]string) (*tracing.Provider, error) {
	ratio, err := strconv.ParseFloat(v["trace-sample"], 64)
	if err != nil || ratio < 0 || ratio > 1 {
		return nil, fmt.Errorf("%s: %q is not a number from 0 to 1", envName("trace-sample"), v["trace-sample"])
	}
	host, _ := os.Hostname()
	tp, err := tracing.New(ctx, tracing.Config{Endpoint: v["otlp-endpoint"], SampleRatio: ratio, Service: "sostenuto-edge", Instance: host})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envName("otlp-endpoint"), err)
	}
	return tp, nil
}

// shutdownTracing exports the spans still queued.
func shutdownTracing(tp *tracing.Provider, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		logger.Warn("spans not exported at shutdown", "component", "tracing", "error", err)
	}
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
