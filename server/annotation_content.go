package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"unicode/utf8"
)

// Bounds of annotation content.
const (
	maxRects       = 200
	maxNoteChars   = 5000
	maxPaths       = 200
	maxPathPoints  = 5000
	maxTotalPoints = 20000
	maxStrokeWidth = 50
)

var colorPattern = regexp.MustCompile(`^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$`)

type rect struct {
	X *float64 `json:"x"`
	Y *float64 `json:"y"`
	W *float64 `json:"w"`
	H *float64 `json:"h"`
}

type highlightContent struct {
	Rects []rect  `json:"rects"`
	Color *string `json:"color,omitempty"`
	// Comment, when present, makes the highlight searchable (a chunk of
	// kind annotation).
	Comment *string `json:"comment,omitempty"`
}

type noteContent struct {
	Text string   `json:"text"`
	X    *float64 `json:"x"`
	Y    *float64 `json:"y"`
}

type drawingPath struct {
	Points [][]float64 `json:"points"`
	Color  *string     `json:"color,omitempty"`
	Width  *float64    `json:"width,omitempty"`
}

type drawingContent struct {
	Paths []drawingPath `json:"paths"`
}

// validateContent checks an annotation's content against its type and
// returns it re-encoded in canonical form (only known fields).
func validateContent(typ string, raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, contentErr("content", "is required")
	}
	switch typ {
	case "highlight":
		var c highlightContent
		if err := strictJSON(raw, &c); err != nil {
			return nil, err
		}
		return encode(c, c.check())
	case "note":
		var c noteContent
		if err := strictJSON(raw, &c); err != nil {
			return nil, err
		}
		return encode(c, c.check())
	case "drawing":
		var c drawingContent
		if err := strictJSON(raw, &c); err != nil {
			return nil, err
		}
		return encode(c, c.check())
	}
	return nil, contentErr("type", "must be highlight, note or drawing")
}

func encode(v any, err error) (json.RawMessage, error) {
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func strictJSON(raw json.RawMessage, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return contentErr("content", "does not match its type: "+err.Error())
	}
	return nil
}

func contentErr(field, msg string) error {
	return Invalid("the annotation content is invalid", FieldError{Field: field, Message: msg})
}

// unit checks a page-relative coordinate.
func unit(field string, v *float64) error {
	if v == nil {
		return contentErr(field, "is required")
	}
	if math.IsNaN(*v) || *v < 0 || *v > 1 {
		return contentErr(field, "must be within [0, 1]")
	}
	return nil
}

func checkColor(field string, c *string) error {
	if c != nil && !colorPattern.MatchString(*c) {
		return contentErr(field, "must be #rrggbb or #rrggbbaa")
	}
	return nil
}

func (c highlightContent) check() error {
	if len(c.Rects) < 1 || len(c.Rects) > maxRects {
		return contentErr("content.rects", fmt.Sprintf("must hold 1 to %d rectangles", maxRects))
	}
	for i, r := range c.Rects {
		f := fmt.Sprintf("content.rects[%d]", i)
		for _, p := range []struct {
			n string
			v *float64
		}{{".x", r.X}, {".y", r.Y}, {".w", r.W}, {".h", r.H}} {
			if err := unit(f+p.n, p.v); err != nil {
				return err
			}
		}
		if *r.W == 0 || *r.H == 0 || *r.X+*r.W > 1+1e-9 || *r.Y+*r.H > 1+1e-9 {
			return contentErr(f, "must have a size and lie within the page")
		}
	}
	if c.Comment != nil {
		if n := utf8.RuneCountInString(*c.Comment); n > maxNoteChars || !utf8.ValidString(*c.Comment) {
			return contentErr("content.comment", fmt.Sprintf("must be at most %d characters", maxNoteChars))
		}
	}
	return checkColor("content.color", c.Color)
}

func (c noteContent) check() error {
	if n := utf8.RuneCountInString(c.Text); n < 1 || n > maxNoteChars || !utf8.ValidString(c.Text) {
		return contentErr("content.text", fmt.Sprintf("must be 1 to %d characters", maxNoteChars))
	}
	if err := unit("content.x", c.X); err != nil {
		return err
	}
	return unit("content.y", c.Y)
}

func (c drawingContent) check() error {
	if len(c.Paths) < 1 || len(c.Paths) > maxPaths {
		return contentErr("content.paths", fmt.Sprintf("must hold 1 to %d paths", maxPaths))
	}
	total := 0
	for i, p := range c.Paths {
		f := fmt.Sprintf("content.paths[%d]", i)
		if len(p.Points) < 1 || len(p.Points) > maxPathPoints {
			return contentErr(f+".points", fmt.Sprintf("must hold 1 to %d points", maxPathPoints))
		}
		total += len(p.Points)
		if total > maxTotalPoints {
			return contentErr("content.paths", fmt.Sprintf("must hold at most %d points in all", maxTotalPoints))
		}
		for j, pt := range p.Points {
			if len(pt) != 2 {
				return contentErr(fmt.Sprintf("%s.points[%d]", f, j), "must be [x, y]")
			}
			for _, v := range pt {
				if err := unit(fmt.Sprintf("%s.points[%d]", f, j), &v); err != nil {
					return err
				}
			}
		}
		if err := checkColor(f+".color", p.Color); err != nil {
			return err
		}
		if p.Width != nil && (math.IsNaN(*p.Width) || *p.Width <= 0 || *p.Width > maxStrokeWidth) {
			return contentErr(f+".width", fmt.Sprintf("must be within (0, %d]", maxStrokeWidth))
		}
	}
	return nil
}
