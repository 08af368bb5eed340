package pdftest

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strings"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// ScanDPI is the resolution of the generated scans: A4 at 200 dpi.
const ScanDPI = 200

// A4 in points (1/72 inch).
const (
	a4W = 595
	a4H = 842
)

var (
	faceOnce sync.Once
	fontData *opentype.Font
	fontErr  error
)

// goFont parses the embedded Go Regular TrueType font (no system font is
// needed; it covers Latin-1 and more, umlauts included).
func goFont() (*opentype.Font, error) {
	faceOnce.Do(func() { fontData, fontErr = opentype.Parse(goregular.TTF) })
	return fontData, fontErr
}

// Scan renders text as a scanned A4 page at ScanDPI: black 12-point Go
// Regular on white, lines 1.5 apart, 1 inch margins, turned by angle
// degrees (counter-clockwise) as a crooked scan would be.
func Scan(text string, angle float64) (*image.Gray, error) {
	img := blankPage()
	if err := drawText(img, text); err != nil {
		return nil, err
	}
	if angle != 0 {
		img = Rotate(img, angle)
	}
	return img, nil
}

func drawText(img *image.Gray, text string) error {
	f, err := goFont()
	if err != nil {
		return fmt.Errorf("pdftest: font: %w", err)
	}
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: 12, DPI: ScanDPI, Hinting: font.HintingFull})
	if err != nil {
		return fmt.Errorf("pdftest: face: %w", err)
	}
	defer face.Close()
	d := font.Drawer{Dst: img, Src: image.Black, Face: face}
	lineH := 12 * 1.5 * ScanDPI / 72
	y := float64(ScanDPI) + lineH
	for _, line := range strings.Split(text, "\n") {
		d.Dot = fixed.P(ScanDPI, int(y))
		d.DrawString(line)
		y += lineH
	}
	return nil
}

// Staff draws a scanned page of music notation as shapes: six systems of
// five staff lines with filled and open note heads, stems, bar lines and
// beams, below caption (one or two lines of text; "" for none).
func Staff(caption string) (*image.Gray, error) {
	img := blankPage()
	if err := drawText(img, caption); err != nil {
		return nil, err
	}
	px := func(pt float64) int { return int(pt * ScanDPI / 72) }
	for sys := range 6 {
		top := 150 + float64(sys)*110
		for l := range 5 { // staff lines 7 pt apart
			fillRect(img, px(60), px(top+float64(l)*7), px(535), px(top+float64(l)*7)+2)
		}
		for bar := 0; bar <= 4; bar++ {
			x := px(60 + float64(bar)*118.75)
			fillRect(img, x, px(top), x+3, px(top+28))
		}
		for n := range 16 {
			x := 75 + float64(n)*29
			y := top + 28 - float64((n*3+sys)%9)*3.5
			noteHead(img, px(x), px(y), px(4.2), px(3.2), n%4 == 3)
			fillRect(img, px(x+4), px(y-24), px(x+4)+3, px(y))
			if n%2 == 0 { // beam pairs
				fillRect(img, px(x+4), px(y-24), px(x+33)+3, px(y-24)+7)
			}
		}
	}
	return img, nil
}

func blankPage() *image.Gray {
	w, h := a4W*ScanDPI/72, a4H*ScanDPI/72
	img := image.NewGray(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	return img
}

func fillRect(img *image.Gray, x0, y0, x1, y1 int) {
	draw.Draw(img, image.Rect(x0, y0, x1, y1), image.Black, image.Point{}, draw.Src)
}

// noteHead draws an ellipse tilted like a printed note head, filled or
// open (a half note).
func noteHead(img *image.Gray, cx, cy, rx, ry int, open bool) {
	const tilt = -0.35
	sin, cos := math.Sin(tilt), math.Cos(tilt)
	for dy := -rx; dy <= rx; dy++ {
		for dx := -rx; dx <= rx; dx++ {
			u := (float64(dx)*cos + float64(dy)*sin) / float64(rx)
			v := (-float64(dx)*sin + float64(dy)*cos) / float64(ry)
			r := u*u + v*v
			if r <= 1 && (!open || r >= 0.45) {
				img.SetGray(cx+dx, cy+dy, color.Gray{})
			}
		}
	}
}

// Rotate turns img by angle degrees counter-clockwise about its centre,
// bilinearly, filling the corners with white.
func Rotate(img *image.Gray, angle float64) *image.Gray {
	b := img.Bounds()
	out := image.NewGray(b)
	rad := angle * math.Pi / 180
	sin, cos := math.Sin(rad), math.Cos(rad)
	cx, cy := float64(b.Dx())/2, float64(b.Dy())/2
	for y := range b.Dy() {
		for x := range b.Dx() {
			dx, dy := float64(x)-cx, float64(y)-cy
			sx, sy := cos*dx-sin*dy+cx, sin*dx+cos*dy+cy
			out.Pix[y*out.Stride+x] = bilinear(img, sx, sy)
		}
	}
	return out
}

func bilinear(img *image.Gray, x, y float64) uint8 {
	x0, y0 := int(math.Floor(x)), int(math.Floor(y))
	fx, fy := x-float64(x0), y-float64(y0)
	at := func(x, y int) float64 {
		if x < 0 || y < 0 || x >= img.Rect.Dx() || y >= img.Rect.Dy() {
			return 255
		}
		return float64(img.Pix[y*img.Stride+x])
	}
	v := at(x0, y0)*(1-fx)*(1-fy) + at(x0+1, y0)*fx*(1-fy) + at(x0, y0+1)*(1-fx)*fy + at(x0+1, y0+1)*fx*fy
	return uint8(math.Round(v))
}

// Page is one page of a mixed PDF: born-digital Text, or a scanned Image
// drawn over the whole page (Text is then ignored).
type Page struct {
	Text  string
	Image *image.Gray
}

// Mixed returns an A4 PDF of the given pages: text pages set in Helvetica
// (a real text layer), image pages as 8-bit grey Flate images.
func Mixed(pages []Page) ([]byte, error) {
	w := newWriter()
	font := w.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	var kids []int
	for _, p := range pages {
		if p.Image == nil {
			kids = append(kids, w.textPage(font, p.Text))
			continue
		}
		img, err := w.image(p.Image.Pix, p.Image.Rect.Dx(), p.Image.Rect.Dy(), "/FlateDecode")
		if err != nil {
			return nil, err
		}
		kids = append(kids, w.imagePage(img, a4W, a4H))
	}
	return w.finish(kids), nil
}

// ImagePages returns a PDF of n pages of w×h points, every one drawing the
// same image object (a blank A4 scan at ScanDPI, 4 KiB compressed): a PDF
// of thousands of scanned pages that costs a few hundred bytes per page.
func ImagePages(n int, w, h float64) []byte {
	wr := newWriter()
	blank := blankPage()
	img, _ := wr.image(blank.Pix, blank.Rect.Dx(), blank.Rect.Dy(), "/FlateDecode")
	kids := make([]int, n)
	for i := range kids {
		kids[i] = wr.imagePage(img, w, h)
	}
	return wr.finish(kids)
}

// CorruptImage returns a one-page PDF whose full-page image's stream is
// not what its filter says it is: garbage that claims to be filter
// ("/FlateDecode" or "/DCTDecode").
func CorruptImage(filter string) []byte {
	w := newWriter()
	junk := bytes.Repeat([]byte("\x00\xffnot an image\x13\x37"), 4096)
	img := w.stream(fmt.Sprintf("<< /Type /XObject /Subtype /Image /Width 1654 /Height 2339 /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter %s", filter), junk)
	return w.finish([]int{w.imagePage(img, a4W, a4H)})
}

// writer builds a PDF object by object; object 1 is the catalog and 2 the
// page tree, both written by finish.
type writer struct {
	b       bytes.Buffer
	offsets map[int]int
	next    int
}

func newWriter() *writer {
	w := &writer{offsets: map[int]int{}, next: 3}
	w.b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	return w
}

func (w *writer) add(body string) int {
	n := w.next
	w.next++
	w.put(n, body)
	return n
}

func (w *writer) put(n int, body string) {
	w.offsets[n] = w.b.Len()
	fmt.Fprintf(&w.b, "%d 0 obj\n%s\nendobj\n", n, body)
}

// stream adds a stream object: dict is its dictionary without the closing
// ">>", to which the length is added.
func (w *writer) stream(dict string, data []byte) int {
	return w.add(fmt.Sprintf("%s /Length %d >>\nstream\n%s\nendstream", dict, len(data), data))
}

func (w *writer) image(gray []byte, width, height int, filter string) (int, error) {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	if _, err := zw.Write(gray); err != nil {
		return 0, fmt.Errorf("pdftest: compress: %w", err)
	}
	if err := zw.Close(); err != nil {
		return 0, fmt.Errorf("pdftest: compress: %w", err)
	}
	return w.stream(fmt.Sprintf("<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter %s",
		width, height, filter), z.Bytes()), nil
}

func (w *writer) textPage(font int, text string) int {
	content := w.stream("<<", []byte(contentStream(text)))
	return w.add(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>",
		a4W, a4H, font, content))
}

func (w *writer) imagePage(img int, width, height float64) int {
	content := w.stream("<<", fmt.Appendf(nil, "q %g 0 0 %g 0 0 cm /Im1 Do Q", width, height))
	return w.add(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] /Resources << /XObject << /Im1 %d 0 R >> >> /Contents %d 0 R >>",
		width, height, img, content))
}

func (w *writer) finish(kids []int) []byte {
	refs := make([]string, len(kids))
	for i, k := range kids {
		refs[i] = fmt.Sprintf("%d 0 R", k)
	}
	w.put(1, "<< /Type /Catalog /Pages 2 0 R >>")
	w.put(2, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(refs, " "), len(kids)))
	xref := w.b.Len()
	fmt.Fprintf(&w.b, "xref\n0 %d\n0000000000 65535 f \n", w.next)
	for n := 1; n < w.next; n++ {
		fmt.Fprintf(&w.b, "%010d 00000 n \n", w.offsets[n])
	}
	fmt.Fprintf(&w.b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", w.next, xref)
	return w.b.Bytes()
}
