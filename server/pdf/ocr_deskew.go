package pdf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"os"
)

// Tesseract's layout analysis loses lines on a page scanned a few degrees
// crooked (at 3° it may find no text at all), so the child straightens
// each rendered page first: the skew is the angle whose projection of the
// dark pixels onto the vertical axis is the most peaked (text lines and
// staff lines line up), searched over ±maxSkew degrees.
const (
	maxSkew     = 5.0  // degrees searched either way
	coarseStep  = 0.25 // degrees between the angles tried first
	minSkew     = 0.15 // degrees below which the page is left as it is
	skewSampleW = 800  // width the page is sampled at to find the angle
)

// deskewFile straightens the 8-bit PGM at path in place.
func deskewFile(path string, maxPixels int64) error {
	img, err := readPGM(path, maxPixels)
	if err != nil {
		return err
	}
	angle := skewAngle(img)
	if math.Abs(angle) < minSkew {
		return nil
	}
	return writePGM(path, rotate(img, angle))
}

// readPGM reads a binary greyscale PNM (P5, maxval 255) of at most
// maxPixels pixels.
func readPGM(path string, maxPixels int64) (*image.Gray, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rendered page: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var magic string
	var w, h, maxval int64
	if _, err := fmt.Fscan(br, &magic, &w, &h, &maxval); err != nil || magic != "P5" || maxval != 255 {
		return nil, errors.New("rendered page: not an 8-bit PGM")
	}
	if w <= 0 || h <= 0 || w*h > maxPixels {
		return nil, fmt.Errorf("rendered page: %d × %d pixels is over the bound", w, h)
	}
	if _, err := br.ReadByte(); err != nil { // the one whitespace after maxval
		return nil, fmt.Errorf("rendered page: %w", err)
	}
	img := image.NewGray(image.Rect(0, 0, int(w), int(h)))
	if _, err := io.ReadFull(br, img.Pix); err != nil {
		return nil, fmt.Errorf("rendered page: %w", err)
	}
	return img, nil
}

func writePGM(path string, img *image.Gray) error {
	var hdr bytes.Buffer
	fmt.Fprintf(&hdr, "P5\n%d %d\n255\n", img.Rect.Dx(), img.Rect.Dy())
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("straightened page: %w", err)
	}
	_, err = f.Write(append(hdr.Bytes(), img.Pix...))
	return errors.Join(err, f.Close())
}

// skewAngle estimates how many degrees counter-clockwise the page's lines
// rise: coarse steps over ±maxSkew, then fine steps about the best.
func skewAngle(img *image.Gray) float64 {
	pts := darkPoints(img)
	if len(pts) < 100 {
		return 0
	}
	best := peakAngle(pts, -maxSkew, maxSkew, coarseStep)
	return peakAngle(pts, best-coarseStep, best+coarseStep, 0.05)
}

// darkPoints samples the page's dark pixels on a grid about skewSampleW
// wide, in units of the sampling step.
func darkPoints(img *image.Gray) [][2]float64 {
	step := max(1, img.Rect.Dx()/skewSampleW)
	var pts [][2]float64
	for y := 0; y < img.Rect.Dy(); y += step {
		row := img.Pix[y*img.Stride:]
		for x := 0; x < img.Rect.Dx(); x += step {
			if row[x] < 128 {
				pts = append(pts, [2]float64{float64(x / step), float64(y / step)})
			}
		}
	}
	return pts
}

// peakAngle is the angle in [from, to] (by step) whose horizontal
// projection of pts has the largest sum of squared row counts.
func peakAngle(pts [][2]float64, from, to, step float64) float64 {
	best, bestScore := 0.0, -1.0
	rows := map[int]float64{}
	for a := from; a <= to+1e-9; a += step {
		tan := math.Tan(a * math.Pi / 180)
		clear(rows)
		for _, p := range pts {
			rows[int(math.Floor(p[1]+p[0]*tan))]++
		}
		score := 0.0
		for _, c := range rows {
			score += c * c
		}
		if score > bestScore {
			best, bestScore = a, score
		}
	}
	return best
}

// rotate turns img so that lines rising by angle degrees lie level,
// bilinearly, filling uncovered corners white.
func rotate(img *image.Gray, angle float64) *image.Gray {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	out := image.NewGray(image.Rect(0, 0, w, h))
	sin, cos := math.Sincos(angle * math.Pi / 180)
	cx, cy := float64(w)/2, float64(h)/2
	for y := range h {
		dy := float64(y) - cy
		for x := range w {
			dx := float64(x) - cx
			out.Pix[y*out.Stride+x] = sample(img, cos*dx+sin*dy+cx, -sin*dx+cos*dy+cy)
		}
	}
	return out
}

func sample(img *image.Gray, x, y float64) uint8 {
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
