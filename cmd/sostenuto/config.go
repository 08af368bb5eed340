package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// envPrefix prefixes every environment variable this binary reads.
const envPrefix = "SOSTENUTO_"

// setting is one configuration value: a flag --name, an environment
// variable SOSTENUTO_NAME and, for secrets, --name-file and
// SOSTENUTO_NAME_FILE holding the value in a file. Precedence: flag, flag
// file, environment, environment file, default.
type setting struct {
	name   string
	env    string // environment variable, when not SOSTENUTO_<NAME>
	usage  string
	def    string
	secret bool
	// isBool lets the flag stand alone (--public means --public=true).
	isBool bool
	parse  func(string) error
}

// boolFlag is a string flag that may stand alone.
type boolFlag struct{ v *string }

func (b boolFlag) String() string {
	if b.v == nil {
		return ""
	}
	return *b.v
}
func (b boolFlag) Set(s string) error { *b.v = s; return nil }
func (b boolFlag) IsBoolFlag() bool   { return true }

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (s setting) envVar() string {
	if s.env != "" {
		return s.env
	}
	return envName(s.name)
}

// configError is a configuration problem: one line naming the setting.
type configError struct {
	setting string
	err     error
}

func (e *configError) Error() string {
	if e.setting == "" {
		return "config: " + e.err.Error()
	}
	return "config: " + e.setting + ": " + e.err.Error()
}

func (e *configError) Unwrap() error { return e.err }

// loadSettings parses args and the environment into the settings. env is
// os.Environ-shaped. Unknown SOSTENUTO_* variables are errors (a typo must
// not silently fall back to a default); SOSTENUTO_TEST_* belong to tests.
func loadSettings(cmd string, settings []setting, args []string, env []string, out io.Writer) error {
	fs := flag.NewFlagSet("sostenuto "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by the caller, in one line
	flagVals := map[string]*string{}
	for _, s := range settings {
		if s.isBool {
			v := new(string)
			fs.Var(boolFlag{v}, s.name, s.usage+" (env "+s.envVar()+defaultNote(s)+")")
			flagVals[s.name] = v
		} else {
			flagVals[s.name] = fs.String(s.name, "", s.usage+" (env "+s.envVar()+defaultNote(s)+")")
		}
		if s.secret {
			flagVals[s.name+"-file"] = fs.String(s.name+"-file", "", "file holding --"+s.name+" (env "+s.envVar()+"_FILE)")
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(out, "usage: sostenuto %s [flags]\n", cmd)
			fs.SetOutput(out)
			fs.PrintDefaults()
			return err
		}
		return &configError{err: err}
	}
	if fs.NArg() > 0 {
		return &configError{err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	environ := envMap(env)
	if err := checkUnknownEnv(environ); err != nil {
		return err
	}
	for _, s := range settings {
		val, source, err := resolve(s, given, flagVals, environ)
		if err != nil {
			return &configError{setting: source, err: err}
		}
		if err := s.parse(val); err != nil {
			return &configError{setting: source, err: err}
		}
	}
	return nil
}

func defaultNote(s setting) string {
	if s.secret || s.def == "" {
		return ""
	}
	return ", default " + s.def
}

func resolve(s setting, given map[string]bool, flags map[string]*string, env map[string]string) (val, source string, err error) {
	e := s.envVar()
	switch {
	case given[s.name]:
		return *flags[s.name], "--" + s.name, nil
	case s.secret && given[s.name+"-file"]:
		v, err := readSecretFile(*flags[s.name+"-file"])
		return v, "--" + s.name + "-file", err
	}
	if v, ok := env[e]; ok {
		return v, e, nil
	}
	if path, ok := env[e+"_FILE"]; ok && s.secret {
		v, err := readSecretFile(path)
		return v, e + "_FILE", err
	}
	return s.def, e, nil
}

func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read secret file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, envPrefix) {
			m[k] = v
		}
	}
	return m
}

// checkUnknownEnv rejects SOSTENUTO_* variables no subcommand reads; a
// variable meant for serve does not make migrate fail.
func checkUnknownEnv(env map[string]string) error {
	known := map[string]bool{}
	for _, s := range allSettings() {
		known[s.envVar()] = true
		if s.secret {
			known[s.envVar()+"_FILE"] = true
		}
	}
	var unknown []string
	for k := range env {
		if !known[k] && !strings.HasPrefix(k, envPrefix+"TEST_") && !strings.HasPrefix(k, envPrefix+"EDGE_") { // EDGE_: sostenuto-edge's
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return &configError{err: fmt.Errorf("unknown setting %s (`sostenuto <command> -h` lists them)", strings.Join(unknown, ", "))}
}

// Parsers for the kinds of values settings hold.

func stringVar(dst *string) func(string) error {
	return func(v string) error { *dst = v; return nil }
}

func durationVar(dst *time.Duration, lo, hi time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("invalid duration %q (use e.g. 30s, 2m)", v)
		}
		if d < lo || d > hi {
			return fmt.Errorf("%s is out of range [%s, %s]", d, lo, hi)
		}
		*dst = d
		return nil
	}
}

func intVar(dst *int64, lo, hi int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid integer %q", v)
		}
		if n < lo || n > hi {
			return fmt.Errorf("%d is out of range [%d, %d]", n, lo, hi)
		}
		*dst = n
		return nil
	}
}

// boolSetting is a setting whose flag may stand alone.
func boolSetting(name, usage, def string, dst *bool) setting {
	return setting{name: name, usage: usage, def: def, isBool: true, parse: boolVar(dst)}
}

func boolVar(dst *bool) func(string) error {
	return func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("invalid boolean %q (use true or false)", v)
		}
		*dst = b
		return nil
	}
}

func addrVar(dst *string) func(string) error {
	return func(v string) error {
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			return fmt.Errorf("invalid listen address %q (use host:port or :port)", v)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("invalid port in %q", v)
		}
		if host != "" && net.ParseIP(host) == nil && host != "localhost" {
			return fmt.Errorf("invalid host in %q (use an IP address)", v)
		}
		*dst = v
		return nil
	}
}

func oneOfVar(dst *string, allowed ...string) func(string) error {
	return func(v string) error {
		for _, a := range allowed {
			if v == a {
				*dst = v
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

// logSettings are shared by every subcommand.
type logConfig struct {
	level  string
	format string
}

func (c *logConfig) settings() []setting {
	return []setting{
		{name: "log-level", usage: "log level: debug, info, warn, error", def: "info", parse: oneOfVar(&c.level, "debug", "info", "warn", "error")},
		{name: "log-format", usage: "log format: json or text", def: "json", parse: oneOfVar(&c.format, "json", "text")},
	}
}

func (c *logConfig) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.level)) //nolint:errcheck // validated by the setting
	opts := &slog.HandlerOptions{Level: lvl}
	if c.format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// dbConfig locates PostgreSQL.
type dbConfig struct {
	dataDir  string
	url      string
	maxConns int64
	// statementTimeout bounds each statement of the application and
	// worker pools (not migrations).
	statementTimeout time.Duration
}

func (c *dbConfig) settings() []setting {
	return []setting{
		{name: "data-dir", usage: "directory of the node's local state", def: ".data/run", parse: stringVar(&c.dataDir)},
		{name: "database-url", usage: "PostgreSQL URL; when unset, read from DATA_DIR/database_url (written by make run)", secret: true, parse: stringVar(&c.url)},
		{name: "db-max-conns", usage: "maximum PostgreSQL connections of this node", def: "20", parse: intVar(&c.maxConns, 2, 1000)},
		{name: "db-statement-timeout", usage: "PostgreSQL statement_timeout of the node's queries (migrations excepted); idle transactions are ended after twice this", def: "30s", parse: durationVar(&c.statementTimeout, time.Second, time.Hour)},
	}
}

// resolveURL returns the database URL, falling back to the file the local
// cluster bootstrap writes.
func (c *dbConfig) resolveURL() (string, error) {
	if c.url != "" {
		return c.url, nil
	}
	path := filepath.Join(c.dataDir, "database_url")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &configError{setting: envName("database-url"),
			err: fmt.Errorf("not set, and %s is not readable (run `make run`, or set it): %w", path, errors.Unwrap(err))}
	}
	return strings.TrimSpace(string(b)), nil
}
