package pgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// Cluster is a throwaway PostgreSQL cluster of a test's own, for tests that
// stop and start the server. It listens on a free loopback port with trust
// authentication and is removed when the test ends.
type Cluster struct {
	t    testing.TB
	dir  string // parent of data, traversable by the cluster user
	data string
	port int
	asPG bool // running as root: the cluster runs as the postgres user
}

// NewCluster initializes and starts a cluster.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "sostenuto-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	// The cluster user must traverse dir; data itself stays private.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, dir: dir, data: filepath.Join(dir, "data"), port: freePort(t), asPG: os.Geteuid() == 0}
	t.Cleanup(func() {
		c.run("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	})
	if err := os.Mkdir(c.data, 0o700); err != nil {
		t.Fatal(err)
	}
	if c.asPG {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: running as root needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.data, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := c.run("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nfsync = off\nwal_level = logical\n", c.port)
	if out, err := c.runStdin(conf, "sh", "-c", "cat >> "+filepath.Join(c.data, "postgresql.conf")); err != nil {
		t.Fatalf("pgtest: configure: %v\n%s", err, out)
	}
	c.Start()
	return c
}

// URL is the cluster's connection URL for the superuser.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.data, "-l", filepath.Join(c.data, "log"), "-w", "-t", "60", "start"); err != nil {
		c.t.Fatalf("pgtest: start: %v\n%s", err, out)
	}
}

// Stop stops the server immediately, as a crash or an outage would.
func (c *Cluster) Stop() {
	c.t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop"); err != nil {
		c.t.Fatalf("pgtest: stop: %v\n%s", err, out)
	}
}

func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	return c.runStdin("", name, args...)
}

func (c *Cluster) runStdin(stdin, name string, args ...string) ([]byte, error) {
	if _, err := os.Stat(filepath.Join(pgBin, name)); err == nil {
		name = filepath.Join(pgBin, name)
	}
	if c.asPG {
		args = append([]string{"-u", "postgres", "--", name}, args...)
		name = "runuser"
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewBufferString(stdin)
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
