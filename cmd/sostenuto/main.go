// Command sostenuto is a Sostenuto node: it serves the HTTP API, migrates
// the database, and administers accounts.
//
//	sostenuto serve            run a node (migrates first unless told not to)
//	sostenuto migrate          apply pending database migrations and exit
//	sostenuto admin create     create an admin user
//	sostenuto ingest           bulk-load documents into the knowledge base
//	sostenuto cluster certs    make the Raft transport's CA and node certificates
//	sostenuto eval             measure retrieval quality on judged queries
//	sostenuto reembed          re-embed every chunk with another model, switch without downtime
//	sostenuto recall           check the index's recall against pgvector's exact search
//	sostenuto doctor           check a node's configuration and dependencies
//	sostenuto version          print the build and schema versions
//
// Every setting is a flag and a SOSTENUTO_* environment variable; secrets
// may also come from a file (--x-file, SOSTENUTO_X_FILE).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sostenuto/sostenuto/server/pdf"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, env []string, stdin io.Reader, stdout, stderr io.Writer) error
	// settings lists what the subcommand reads, for help and for the
	// unknown-variable check.
	settings func() []setting
}

func commands() []command {
	return []command{
		{"serve", "run a node: HTTP API on the embedded defaults", runServe, func() []setting { return new(serveConfig).settings() }},
		{"migrate", "apply pending database migrations and exit", runMigrate, func() []setting { return new(migrateConfig).settings() }},
		{"admin", "administer accounts: `admin create --email E --display-name N` (password from --password-file or stdin)", runAdmin, func() []setting { return new(adminConfig).settings() }},
		{"ingest", "bulk-load files, folders (.pdf .txt .md .vtt .srt) and URLs: `ingest --as EMAIL [--public] PATH|URL...`", runIngest, func() []setting { return new(ingestCmdConfig).settings() }},
		{"cluster", "`cluster certs --dir DIR --nodes n1=10.0.0.1,n2=...`: make the cluster CA (once) and node certificates for the Raft transport's mutual TLS", runCluster, func() []setting { return new(certsConfig).settings() }},
		{"eval", "measure retrieval (MAP, nDCG@10, recall@50, MRR, latency) of every search mode on judged queries: `eval --docs D --queries Q --qrels R`; or write chat feedback as qrels: `eval --feedback-qrels FILE --api-url U`", runEval, func() []setting { return new(evalConfig).settings() }},
		{"reembed", "change the embedding model without downtime: `reembed start MODEL [--wait]` (one of --embedders), `reembed status [--wait]` (done/total, chunks/s, time left), `reembed abandon`", runReembed, func() []setting { return new(reembedConfig).settings() }},
		{"recall", "compare the index's vector top-10 with pgvector's exact top-10 on sampled chunks", runRecall, func() []setting { return new(recallConfig).settings() }},
		{"doctor", "check the configuration and dependencies (database, migrations, pgvector, wal_level, slot, blob store, Raft peers, embedder, LLM, clock skew); one line per check, exit 1 when one fails", runDoctor, func() []setting { return new(doctorConfig).settings() }},
		{"version", "print the build and schema versions", runVersion, func() []setting { return nil }},
	}
}

// allSettings is every setting of every subcommand.
func allSettings() []setting {
	var all []setting
	for _, c := range commands() {
		all = append(all, c.settings()...)
	}
	return all
}

func main() {
	// A PDF-parsing child process of the node runs here and exits.
	pdf.MaybeChild()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the exit code: 0 on success,
// 2 for usage and configuration errors, 1 for failures.
func run(ctx context.Context, args, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], env, stdin, stdout, stderr)
		var cfgErr *configError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &cfgErr) || errors.Is(err, errUsage):
			fmt.Fprintln(stderr, "sostenuto "+c.name+": "+err.Error())
			return 2
		default:
			fmt.Fprintln(stderr, "sostenuto "+c.name+": "+err.Error())
			return 1
		}
	}
	fmt.Fprintf(stderr, "sostenuto: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// errUsage marks a wrong invocation.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: sostenuto <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\n`sostenuto <command> -h` lists the command's settings.")
}
