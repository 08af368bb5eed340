package pdf

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sostenuto/sostenuto/server/pdf/pdftest"
)

// FuzzInspect feeds arbitrary bytes to the sandboxed PDF reader: every
// input ends, within the wall-clock bound, with pages or ErrUnreadable —
// never a hang, a crash of the node, or another error.
func FuzzInspect(f *testing.F) {
	f.Add(pdftest.Pages(2))
	f.Add(pdftest.Generate(1, func(int) string { return "Legato (smoothly) \\ and ) unbalanced (" }))
	f.Add(pdftest.Raw("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [2 0 R] /Count 1 >>"))
	f.Add(pdftest.Raw("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [] /Count 99999999 >>"))
	f.Add([]byte("%PDF-1.4\n1 0 obj << /Length 999999999 >> stream\nxx"))
	f.Add([]byte("not a pdf"))
	f.Add([]byte{})
	full := pdftest.Pages(3)
	f.Add(full[:len(full)/2])
	c, err := NewChecker(Limits{MemoryBytes: 256 << 20, CPU: 5 * time.Second, Wall: 10 * time.Second, MaxPages: 100})
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "in.pdf")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := c.Inspect(context.Background(), p, true)
		if err != nil {
			if !errors.Is(err, ErrUnreadable) {
				t.Fatalf("error %v is not ErrUnreadable", err)
			}
			return
		}
		if res.Pages < 1 || res.Pages > 100 || len(res.Text) != res.Pages {
			t.Fatalf("result %d pages, %d texts", res.Pages, len(res.Text))
		}
	})
}
