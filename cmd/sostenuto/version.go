package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/sostenuto/sostenuto/migrations"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// buildVersion is version, with the VCS revision when the build recorded one.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return version
	}
	return version + " (" + rev + dirty + ")"
}

func runVersion(_ context.Context, args, _ []string, _ io.Reader, stdout, _ io.Writer) error {
	if len(args) > 0 {
		return &configError{err: fmt.Errorf("version takes no arguments")}
	}
	schema, err := migrations.Latest()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sostenuto %s, schema %d, %s\n", buildVersion(), schema, runtime.Version())
	return nil
}
