// Package workertest runs the Cloudflare Worker (edge/worker) in Miniflare
// (the real workerd runtime, from npm) for Go tests: the conformance suite
// (edge/conformance) and the end-to-end scenarios against a real node
// (server/worker_test.go). It builds the rules' Wasm once per test binary;
// the npm packages must be installed (make worker-deps, which make test
// runs) and a missing install fails the test loudly.
package workertest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Dir is edge/worker, found from this file.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

var (
	buildOnce sync.Once
	buildErr  error
)

// Build compiles the rules to build/rules.wasm and copies Go's
// wasm_exec.js beside it (what the Worker imports).
func Build() error {
	buildOnce.Do(func() { buildErr = build(Dir()) })
	return buildErr
}

func build(dir string) error {
	out := filepath.Join(dir, "build")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	tmp := filepath.Join(out, fmt.Sprintf(".rules-%d.wasm", os.Getpid()))
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, "./wasm")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("workertest: build the rules' wasm: %w: %s", err, b)
	}
	if err := os.Rename(tmp, filepath.Join(out, "rules.wasm")); err != nil {
		return err
	}
	js, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return fmt.Errorf("workertest: wasm_exec.js: %w", err)
	}
	tmpJS := filepath.Join(out, fmt.Sprintf(".wasm_exec-%d.js", os.Getpid()))
	if err := os.WriteFile(tmpJS, js, 0o644); err != nil {
		return err
	}
	return os.Rename(tmpJS, filepath.Join(out, "wasm_exec.js"))
}

// Node is the pinned Node.js (npm's node@22) the Worker's tools run on.
func Node() string { return filepath.Join(Dir(), "node_modules", ".bin", "node") }

// Start runs the Worker with vars (its settings, as wrangler.jsonc's vars
// and secrets) and returns its base URL; it stops when t ends.
func Start(t testing.TB, vars map[string]string) string {
	t.Helper()
	if err := Build(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(Dir(), "node_modules", "miniflare")); err != nil {
		t.Fatalf("workertest: the Worker's npm packages are not installed (run `make worker-deps`): %v", err)
	}
	arg, _ := json.Marshal(vars)
	cmd := exec.Command(Node(), "test/harness.mjs", string(arg))
	cmd.Dir = Dir()
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(Node())+string(os.PathListSeparator)+os.Getenv("PATH"))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	logs := &strings.Builder{}
	var mu sync.Mutex
	cmd.Stderr = writerFunc(func(p []byte) { mu.Lock(); logs.Write(p); mu.Unlock() })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() {
			t.Logf("worker log:\n%s", logs.String())
		}
	})
	url, err := readURL(stdout, logs, &mu)
	go func() { cmd.Wait(); close(done) }() //nolint:errcheck // the exit is reported through the log
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// readURL reads the harness's first line ({"url": ...}), then keeps
// reading what the Worker prints (its console) into logs.
func readURL(stdout io.Reader, logs *strings.Builder, mu *sync.Mutex) (string, error) {
	sc := bufio.NewScanner(stdout)
	got := make(chan string, 1)
	go func() {
		first := true
		for sc.Scan() {
			if first {
				got <- sc.Text()
				first = false
				continue
			}
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
		if first {
			close(got)
		}
	}()
	select {
	case line, ok := <-got:
		var v struct{ URL string }
		if !ok || json.Unmarshal([]byte(line), &v) != nil || v.URL == "" {
			mu.Lock()
			defer mu.Unlock()
			return "", fmt.Errorf("workertest: the Worker did not start: %q\n%s", line, logs.String())
		}
		return v.URL, nil
	case <-time.After(60 * time.Second):
		return "", fmt.Errorf("workertest: the Worker did not start within 60 s")
	}
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }
