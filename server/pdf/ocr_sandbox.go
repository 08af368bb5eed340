package pdf

import (
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// sandbox starts the OCR child in new user and network namespaces, so it
// and the tools it runs (pdftoppm, tesseract) have no network: the new
// network namespace holds only a loopback interface, down. Where
// unprivileged user namespaces are not available (a kernel or container
// that forbids them), the child runs without them and the first such
// start is reported through onFallback; the other limits (rlimits, wall
// clock, empty environment, its own process group) stay.
type sandbox struct {
	mu         sync.Mutex
	noNS       bool // namespaces failed once; do not try again
	onFallback func(err error)
}

// prepare sets the process attributes of cmd: its own process group
// (killed whole when ctx ends), death with its parent, and the namespaces
// unless they are known to fail.
func (s *sandbox) prepare(cmd *exec.Cmd) {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s.mu.Lock()
	if !s.noNS {
		uid, gid := os.Getuid(), os.Getgid()
		attr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
	}
	s.mu.Unlock()
	cmd.SysProcAttr = attr
	cmd.Cancel = func() error { return killGroup(cmd) }
}

// start starts cmd in the sandbox; when the kernel refuses the namespaces
// it falls back to starting it without them, once and for good.
// isolated says whether the child got its own network namespace.
func (s *sandbox) start(newCmd func() *exec.Cmd) (cmd *exec.Cmd, isolated bool, err error) {
	cmd = newCmd()
	s.prepare(cmd)
	isolated = cmd.SysProcAttr.Cloneflags != 0
	err = cmd.Start()
	if err == nil || !isolated || !namespaceRefused(err) {
		return cmd, isolated, err
	}
	s.mu.Lock()
	s.noNS = true
	s.mu.Unlock()
	if s.onFallback != nil {
		s.onFallback(err)
	}
	cmd = newCmd()
	s.prepare(cmd)
	return cmd, false, cmd.Start()
}

// namespaceRefused tells a kernel's refusal of new namespaces (user
// namespaces disabled or exhausted, seccomp) from other start failures.
func namespaceRefused(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EACCES)
}

// killGroup kills cmd's whole process group: the child and any tool it
// started.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// toolLimits are the rlimits of one tool run (a page's pdftoppm or
// tesseract), set on the started process.
type toolLimits struct {
	cpuSeconds uint64
	dataBytes  uint64
	fileBytes  uint64
}

// apply sets the limits on the running process pid. The tool has run for
// microseconds when they land; inherited limits (the child's own) bound
// it until then.
func (l toolLimits) apply(pid int) error {
	set := func(res int, v uint64) error {
		var own unix.Rlimit
		if v == 0 || unix.Getrlimit(res, &own) != nil {
			return nil
		}
		v = min(v, own.Max) // only a privileged process may raise a hard limit
		return unix.Prlimit(pid, res, &unix.Rlimit{Cur: v, Max: v}, nil)
	}
	noCore := unix.Prlimit(pid, unix.RLIMIT_CORE, &unix.Rlimit{}, nil)
	return errors.Join(set(unix.RLIMIT_CPU, l.cpuSeconds), set(unix.RLIMIT_DATA, l.dataBytes),
		set(unix.RLIMIT_FSIZE, l.fileBytes), noCore)
}
