package pdf

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

func TestMain(m *testing.M) {
	MaybeChild()
	os.Exit(m.Run())
}

func write(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.pdf")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func checker(t *testing.T) *Checker {
	t.Helper()
	c, err := NewChecker(DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInspectRealPDF(t *testing.T) {
	c := checker(t)
	res, err := c.Inspect(context.Background(), write(t, pdftest.Pages(7)), true)
	if err != nil {
		t.Fatal(err)
	}
	if res.Pages != 7 || len(res.Text) != 7 {
		t.Fatalf("pages %d, texts %d", res.Pages, len(res.Text))
	}
	for i, text := range res.Text {
		if want := "Page " + string(rune('1'+i)) + " of 7"; !strings.Contains(text, want) {
			t.Errorf("page %d text %q lacks %q", i+1, text, want)
		}
	}
}

func TestInspectRejects(t *testing.T) {
	c := checker(t)
	good := pdftest.Pages(3)
	for name, b := range map[string][]byte{
		"empty":        {},
		"not a pdf":    []byte("<html>hello</html>"),
		"truncated":    good[:len(good)/2],
		"header only":  []byte("%PDF-1.4\n"),
		"garbage xref": append(append([]byte{}, good[:len(good)-40]...), []byte("startxref\n999999\n%%EOF\n")...),
		"no pages":     []byte("%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\nxref\n0 3\n0000000000 65535 f \n0000000009 00000 n \n0000000058 00000 n \ntrailer\n<< /Size 3 /Root 1 0 R >>\nstartxref\n109\n%%EOF\n"),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := c.Inspect(context.Background(), write(t, b), false); !errors.Is(err, ErrUnreadable) {
				t.Errorf("accepted or odd error: %v", err)
			}
		})
	}
	if _, err := c.Inspect(context.Background(), filepath.Join(t.TempDir(), "missing.pdf"), false); !errors.Is(err, ErrUnreadable) {
		t.Errorf("missing file: %v", err)
	}
}

func TestLimits(t *testing.T) {
	c := checker(t)
	c.Limits.MaxPages = 5
	if _, err := c.Inspect(context.Background(), write(t, pdftest.Pages(6)), false); !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), "at most 5") {
		t.Errorf("page limit: %v", err)
	}
	// A wall clock shorter than the child's start-up kills it: the parent
	// answers, the node survives.
	c.Limits.Wall = time.Millisecond
	if _, err := c.Inspect(context.Background(), write(t, pdftest.Pages(2)), false); !errors.Is(err, ErrUnreadable) {
		t.Errorf("wall clock: %v", err)
	}
}

// Hostile inputs kill or stall the child, never the caller.
func TestHostilePDFs(t *testing.T) {
	c := checker(t)
	c.Limits.Wall = 3 * time.Second // cycles spin until the wall clock
	catalog := "<< /Type /Catalog /Pages 2 0 R >>"
	for name, body := range map[string][]byte{
		"deep nesting":               pdftest.Raw(catalog, "<< /Type /Pages /Kids "+strings.Repeat("[", 1_000_000)+" /Count 1 >>"),
		"self-referencing page tree": pdftest.Raw(catalog, "<< /Type /Pages /Kids [2 0 R] /Count 1 >>"),
		"page tree cycle":            pdftest.Raw(catalog, "<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "<< /Type /Pages /Kids [2 0 R] /Count 1 >>"),
		"absurd page count":          pdftest.Raw(catalog, "<< /Type /Pages /Kids [] /Count 2000000000 >>"),
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := c.Inspect(context.Background(), write(t, body), true)
			if !errors.Is(err, ErrUnreadable) {
				t.Errorf("accepted or odd error: %v", err)
			}
			t.Logf("%s: %v after %v", name, err, time.Since(start).Round(time.Millisecond))
		})
	}
}

// A decompression bomb (a small Flate stream that inflates to 300 MB of
// text operators) hits the production child's memory limit: the parent
// answers ErrUnreadable within its wall clock and lives on. The child is
// the real node binary, built here without the race detector, so its
// limits are the ones that ship.
func TestDecompressionBomb(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sostenuto")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sostenuto").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	line := []byte("(aaaaaaaaaaaaaaaa) Tj\n")
	for written := 0; written < 300<<20; written += len(line) {
		zw.Write(line)
	}
	zw.Close()
	body := pdftest.Raw("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
		fmt.Sprintf("<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream", z.Len(), z.Bytes()),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
	t.Logf("bomb: %d KiB inflating to 300 MiB", len(body)>>10)
	c := &Checker{Exe: bin, Limits: Limits{MemoryBytes: 256 << 20, CPU: 10 * time.Second, Wall: 15 * time.Second, MaxPages: 10}}
	start := time.Now()
	_, err := c.Inspect(context.Background(), write(t, body), true)
	if !errors.Is(err, ErrUnreadable) {
		t.Errorf("bomb: %v", err)
	}
	t.Logf("answered in %v: %v", time.Since(start).Round(time.Millisecond), err)
}

// A cancelled caller gets its cancellation back, not ErrUnreadable.
func TestInspectCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := checker(t).Inspect(ctx, write(t, pdftest.Pages(2)), true)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreadable) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
