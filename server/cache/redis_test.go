package cache

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// startRedis runs a real redis-server (Debian's package; `make test`
// installs it) on a free port for the test.
func startRedis(t *testing.T) (url string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is needed (apt-get install redis-server; make test installs it): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--protected-mode", "no")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Sprintf("redis://127.0.0.1:%d/0", port), stop
}

func TestRedis(t *testing.T) {
	url, stop := startRedis(t)
	r, err := NewRedis(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	if _, ok, err := r.Get(ctx, "k"); ok || err != nil {
		t.Fatalf("empty: %v %v", ok, err)
	}
	if err := r.Set(ctx, "k", []byte("v"), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if b, ok, err := r.Get(ctx, "k"); !ok || err != nil || string(b) != "v" {
		t.Fatalf("get: %q %v %v", b, ok, err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, ok, _ := r.Get(ctx, "k"); ok {
		t.Error("entry outlived its TTL")
	}
	// Two nodes share it.
	r2, _ := NewRedis(url)
	defer r2.Close()
	r.Set(ctx, "shared", []byte("x"), time.Minute)
	if _, ok, _ := r2.Get(ctx, "shared"); !ok {
		t.Error("a second client does not see the entry")
	}
	// The server goes away: the layer answers misses, fast, and counts
	// errors; nothing fails.
	l := NewLayers(r, time.Minute, time.Minute, time.Minute, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	stop()
	start := time.Now()
	var s string
	if l.Answers.Get(ctx, "shared", &s) {
		t.Error("hit on a dead server")
	}
	l.Answers.Set(ctx, "k", "v")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("a dead cache cost %v", d)
	}
}
