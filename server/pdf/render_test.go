package pdf

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"image/png"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// onePage is a one-page PDF with the given page dictionary entries and
// content stream.
func onePage(entries, content string) []byte {
	return pdftest.Raw("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R "+entries+" /Contents 4 0 R >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content))
}

// mustPNG decodes b as a PNG and returns its size.
func mustPNG(t *testing.T, b []byte) (int, int) {
	t.Helper()
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG (%d bytes): %v", len(b), err)
	}
	return cfg.Width, cfg.Height
}

// A page comes back as a PNG of exactly the requested width, its height
// following the page's shape (A4: 842/595), rotation included.
func TestRenderPage(t *testing.T) {
	c := checker(t)
	path := write(t, pdftest.Pages(3))
	for _, width := range []int{MinImageWidth, 256, 1024, MaxImageWidth} {
		img, err := c.Render(context.Background(), path, 2, width)
		if err != nil {
			t.Fatalf("width %d: %v", width, err)
		}
		w, h := mustPNG(t, img)
		if want := int(float64(width)*842/595 + 0.5); w != width || h < want-1 || h > want+1 {
			t.Errorf("width %d: %dx%d, want %dx%d", width, w, h, width, want)
		}
	}
	rotated := write(t, onePage("/MediaBox [0 0 595 842] /Rotate 90", "0 0 m 595 842 l S"))
	img, err := c.Render(context.Background(), rotated, 1, 842)
	if err != nil {
		t.Fatal(err)
	}
	if w, h := mustPNG(t, img); w != 842 || h < 594 || h > 596 {
		t.Errorf("rotated page: %dx%d, want 842x595", w, h)
	}
}

// Past the last page: ErrNoPage; a corrupt or missing file: ErrUnreadable
// with a reason; out-of-range arguments never reach the child.
func TestRenderRefuses(t *testing.T) {
	c := checker(t)
	good := pdftest.Pages(3)
	if _, err := c.Render(context.Background(), write(t, good), 4, 256); !errors.Is(err, ErrNoPage) {
		t.Errorf("page 4 of 3: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":     {},
		"not a pdf": []byte("<html>hello</html>"),
		"truncated": good[:len(good)/3],
		"no pages":  pdftest.Raw("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [] /Count 0 >>"),
	} {
		t.Run(name, func(t *testing.T) {
			img, err := c.Render(context.Background(), write(t, b), 1, 256)
			if err == nil || !(errors.Is(err, ErrUnreadable) || errors.Is(err, ErrNoPage)) || img != nil {
				t.Errorf("rendered %d bytes, error %v", len(img), err)
			}
			t.Logf("%v", err)
		})
	}
	for _, args := range [][2]int{{0, 256}, {-1, 256}, {1, MinImageWidth - 1}, {1, MaxImageWidth + 1}} {
		if _, err := c.Render(context.Background(), write(t, good), args[0], args[1]); err == nil {
			t.Errorf("page %d width %d accepted", args[0], args[1])
		}
	}
}

// Huge page dimensions cost no more than a normal page: the image has the
// requested width, and a page far taller than wide is fitted to
// MaxImageSide pixels.
func TestRenderHugePages(t *testing.T) {
	c := checker(t)
	for name, tc := range map[string]struct {
		box  string
		w, h int
	}{
		"huge square":        {"[0 0 14400 14400]", 1024, 1024},
		"beyond the spec":    {"[0 0 9000000 9000000]", 1024, 1024},
		"tall sliver":        {"[0 0 10 200000]", 0, MaxImageSide},
		"user unit x 75000":  {"[0 0 595 842] /UserUnit 75000", 1024, 1449},
		"wide and very flat": {"[0 0 200000 1]", 2048, 1},
	} {
		t.Run(name, func(t *testing.T) {
			width := tc.w
			if width == 0 {
				width = 2048
			}
			start := time.Now()
			img, err := c.Render(context.Background(), write(t, onePage("/MediaBox "+tc.box, "0 0 m 10 10 l S")), 1, width)
			if err != nil {
				t.Fatal(err)
			}
			w, h := mustPNG(t, img)
			if (tc.w != 0 && w != tc.w) || h > MaxImageSide || (tc.h != 0 && (h < tc.h-1 || h > tc.h+1)) {
				t.Errorf("%dx%d, want %dx%d", w, h, tc.w, tc.h)
			}
			t.Logf("%dx%d, %d bytes in %v", w, h, len(img), time.Since(start).Round(time.Millisecond))
		})
	}
}

// heavyPage is a page that takes pdftoppm seconds to draw: strokes across
// the whole page, Flate-compressed.
func heavyPage(strokes int) []byte {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	for i := range strokes {
		fmt.Fprintf(zw, "%d 0 m %d 842 l 0 %d m 595 %d l S\n", i%595, 595-i%595, i%842, 842-i%842)
	}
	zw.Close()
	return pdftest.Raw("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
		fmt.Sprintf("<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream", z.Len(), z.Bytes()))
}

// A page slower than the wall clock ends in ErrTooSlow soon after it, the
// renderer's own child gone with the child.
func TestRenderTimeout(t *testing.T) {
	c := checker(t)
	c.Limits.Wall = time.Second
	path := write(t, heavyPage(3000))
	start := time.Now()
	_, err := c.Render(context.Background(), path, 1, MaxImageWidth)
	took := time.Since(start)
	if !errors.Is(err, ErrTooSlow) || !errors.Is(err, ErrUnreadable) {
		t.Fatalf("after %v: %v", took, err)
	}
	if took > 3*time.Second {
		t.Errorf("answered after %v, wall clock 1s", took)
	}
	t.Logf("answered after %v: %v", took.Round(time.Millisecond), err)
	time.Sleep(200 * time.Millisecond)
	if n := procsReading(t, path); n > 0 {
		t.Errorf("%d processes still read %s after the render", n, path)
	}
}

// procsReading counts running processes whose command line names path.
func procsReading(t *testing.T, path string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte(path)) {
			n++
		}
	}
	return n
}

// The tools run with an empty environment, as nobody, without network
// (when the kernel grants namespaces, as on this machine; elsewhere the
// probe says so and the limits alone apply).
func TestRenderSandbox(t *testing.T) {
	mode, err := ProbeSandbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sandbox: %s", mode)
	run := func(args ...string) string {
		var out, errb bytes.Buffer
		if err := runSandboxed(context.Background(), &out, &errb, args[0], args[1:]...); err != nil {
			t.Fatalf("%v: %v %s", args, err, errb.String())
		}
		return out.String()
	}
	if env := run("env"); env != "" {
		t.Errorf("environment %q", env)
	}
	if mode != "namespaces" {
		t.Errorf("no namespaces here: %s", mode)
		return
	}
	if id := strings.TrimSpace(run("id", "-u")); id != "65534" {
		t.Errorf("runs as uid %s, want nobody", id)
	}
	dev := run("cat", "/proc/net/dev")
	for _, line := range strings.Split(dev, "\n")[2:] {
		if name, _, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && name != "lo" {
			t.Errorf("network interface %q inside the sandbox", name)
		}
	}
}

// A caller whose own deadline ends before the render's wall clock gets
// its deadline back, not ErrTooSlow: the page is not to blame.
func TestRenderCallerDeadline(t *testing.T) {
	c := checker(t)
	c.Limits.Wall = 20 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := c.Render(ctx, write(t, heavyPage(3000)), 1, MaxImageWidth)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTooSlow) || errors.Is(err, ErrUnreadable) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
}
