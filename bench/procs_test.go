package bench

import (
	"net"
	"os/exec"
	"path/filepath"
	"testing"
)

// build compiles the command at pkg (relative to bench/) into a temporary
// folder and returns the binary's path.
func build(b *testing.B, pkg string) string {
	bin := filepath.Join(b.TempDir(), filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// raftTLS issues, with the node binary's `cluster certs`, a certificate
// for name on 127.0.0.1 under dir's CA (made on first use) and returns the
// settings that make a node use it.
func raftTLS(b *testing.B, bin, dir, name string) []string {
	cmd := exec.Command(bin, "cluster", "certs", "--dir", dir, "--nodes", name+"=127.0.0.1")
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("cluster certs: %v\n%s", err, out)
	}
	return []string{"SOSTENUTO_RAFT_TLS_CA=" + filepath.Join(dir, "ca.pem"),
		"SOSTENUTO_RAFT_TLS_CERT=" + filepath.Join(dir, name+".pem"), "SOSTENUTO_RAFT_TLS_KEY=" + filepath.Join(dir, name+"-key.pem")}
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
