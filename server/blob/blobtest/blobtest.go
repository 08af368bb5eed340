// Package blobtest starts a real S3-compatible server for tests: versitygw
// (Apache-2.0) serving a temporary folder on a random loopback port with
// credentials made by the test. `make test` installs the pinned binary into
// .data/tools; SOSTENUTO_TEST_VERSITYGW may name another. Without it the test
// fails, saying how to get it: tests never skip silently.
package blobtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/blob"
)

// S3 is a running versitygw.
type S3 struct {
	t      testing.TB
	bin    string
	dir    string
	port   int
	cmd    *exec.Cmd
	Config blob.S3Config
}

// Binary returns the versitygw binary to run.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SOSTENUTO_TEST_VERSITYGW"); p != "" {
		return p
	}
	dir, _ := os.Getwd()
	for {
		p := filepath.Join(dir, ".data", "tools", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	t.Fatal("blobtest: no versitygw binary: run `make test` (it installs one into .data/tools) or set SOSTENUTO_TEST_VERSITYGW")
	return ""
}

// Start runs versitygw and creates a bucket; it stops with the test.
func Start(t testing.TB) *S3 {
	t.Helper()
	s := &S3{t: t, bin: Binary(t), dir: t.TempDir()}
	s.port = freePort(t)
	s.Config = blob.S3Config{
		Endpoint:        fmt.Sprintf("http://127.0.0.1:%d", s.port),
		Region:          "us-east-1",
		Bucket:          "sostenuto-test",
		AccessKeyID:     "AK" + randHex(8),
		SecretAccessKey: randHex(20),
		PathStyle:       true,
		Timeout:         5 * time.Second,
	}
	s.Start()
	t.Cleanup(s.Stop)
	st, err := blob.NewS3(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureBucket(context.Background()); err != nil {
		t.Fatalf("blobtest: create bucket: %v", err)
	}
	return s
}

// Start (re)starts the server on its port and folder.
func (s *S3) Start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "--access", s.Config.AccessKeyID, "--secret", s.Config.SecretAccessKey,
		"--port", fmt.Sprintf("127.0.0.1:%d", s.port), "posix", s.dir)
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("blobtest: start versitygw: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatal("blobtest: versitygw did not start listening")
}

// Stop kills the server (an outage of the store).
func (s *S3) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Objects lists the object files the server holds (for leak checks).
func (s *S3) Objects() []string {
	var out []string
	root := filepath.Join(s.dir, s.Config.Bucket)
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() && filepath.Base(p)[0] != '.' {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
