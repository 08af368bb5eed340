//go:build !linux

package pdf

import (
	"context"
	"io"
	"os/exec"
)

// runSandboxed runs the named tool with an empty environment and the
// child's inherited limits; namespaces are Linux's.
func runSandboxed(ctx context.Context, stdout, stderr io.Writer, name string, args ...string) error {
	path, err := toolPath(name)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = []string{}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd.Run()
}

// ProbeSandbox says the tools run with limits alone here.
func ProbeSandbox(context.Context) (string, error) { return "limits only (not Linux)", nil }
