//go:build linux

package pdf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// The render child runs poppler's tools as children of its own, each with
// an empty environment, "/" as its folder, the child's limits (memory, CPU
// time, no file writes: inherited), a wall clock, SIGKILL when the child
// dies, and, where the kernel lets an unprivileged process make them, new
// user, network and IPC namespaces: the tool is nobody, holds no
// capabilities, and has no network interface but a loopback that is down.
// Where namespaces are refused (a container's seccomp profile, a kernel
// with unprivileged user namespaces off) the tool runs with the limits
// alone; ProbeSandbox says which.

// namespaceFlags are the namespaces a tool runs in when it can.
const namespaceFlags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC

// nobody is the user and group a tool is inside its user namespace.
const nobody = 65534

// runSandboxed runs the named tool with args in the sandbox, namespaces
// if possible, and waits for it.
func runSandboxed(ctx context.Context, stdout, stderr io.Writer, name string, args ...string) error {
	path, err := toolPath(name)
	if err != nil {
		return err
	}
	cmd := toolCmd(ctx, path, args, stdout, stderr, true)
	err = cmd.Start()
	if err != nil && namespacesRefused(err) {
		cmd = toolCmd(ctx, path, args, stdout, stderr, false)
		err = cmd.Start()
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	limitRaceChild(cmd.Process.Pid)
	return cmd.Wait()
}

func toolCmd(ctx context.Context, path string, args []string, stdout, stderr io.Writer, namespaces bool) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = []string{}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = stdout, stderr
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if namespaces {
		attr.Cloneflags = namespaceFlags
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: nobody, HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: nobody, HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
	return cmd
}

// namespacesRefused says whether a start failed for want of namespaces
// (rather than, say, a missing tool).
func namespacesRefused(err error) bool {
	for _, e := range []error{syscall.EPERM, syscall.EACCES, syscall.EINVAL, syscall.ENOSPC, syscall.EUSERS, syscall.ENOSYS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// limitRaceChild gives a tool the child's memory limit in race builds,
// where the child itself cannot hold one (see race_on.go) and so the tool
// inherits none; best effort, right after the start.
func limitRaceChild(pid int) {
	if !raceBuild {
		return
	}
	mem, _ := strconv.ParseUint(os.Getenv(memEnv), 10, 64)
	if mem > 0 {
		unix.Prlimit(pid, unix.RLIMIT_DATA, &unix.Rlimit{Cur: mem, Max: mem}, nil) //nolint:errcheck // best effort
	}
}

// ProbeSandbox runs pdftoppm -v as the render child would and says
// whether it ran in namespaces ("namespaces") or with limits alone
// ("limits only", with the kernel's reason).
func ProbeSandbox(ctx context.Context) (mode string, err error) {
	path, err := toolPath("pdftoppm")
	if err != nil {
		return "", err
	}
	cmd := toolCmd(ctx, path, []string{"-v"}, io.Discard, io.Discard, true)
	if err := cmd.Run(); err != nil {
		if namespacesRefused(err) {
			return "limits only (" + err.Error() + ")", nil
		}
		return "", fmt.Errorf("pdf: probe the sandbox: %w", err)
	}
	return "namespaces", nil
}
