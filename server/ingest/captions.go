package ingest

import (
	"bufio"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrCaptions marks a caption file that is neither WebVTT nor SRT, or has
// no cues.
var ErrCaptions = errors.New("ingest: not a caption file")

// Caption limits.
const (
	maxCaptionBytes = 10 << 20
	maxCues         = 50000
)

var (
	timing = regexp.MustCompile(`^\s*((?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})\s*-->\s*((?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})`)
	tags   = regexp.MustCompile(`<[^>]{0,200}>`)
)

// ParseCaptions reads WebVTT or SRT into one segment per cue, with the cue's
// time range kept (milliseconds). Markup tags are removed; consecutive
// duplicate lines (roll-up captions) are dropped.
func ParseCaptions(data string) ([]Segment, error) {
	if len(data) > maxCaptionBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCaptions, maxCaptionBytes)
	}
	data = strings.TrimPrefix(data, "\ufeff")
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var p cueParser
	for sc.Scan() {
		if err := p.line(strings.TrimRight(sc.Text(), "\r")); err != nil {
			return nil, err
		}
	}
	p.flush()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCaptions, err)
	}
	if len(p.segs) == 0 {
		return nil, fmt.Errorf("%w: no cues found", ErrCaptions)
	}
	return p.segs, nil
}

// cueParser gathers a caption file's cues line by line.
type cueParser struct {
	segs     []Segment
	cur      *Segment // the cue being read; nil between cues
	lines    []string // its text so far
	lastLine string   // the last text line kept: rolling captions repeat lines
	inNote   bool     // in a NOTE, STYLE or REGION block
}

// line reads one line: a timing starts a cue, a blank line ends one, text
// (tags removed) adds to the current cue.
func (p *cueParser) line(line string) error {
	if m := timing.FindStringSubmatch(line); m != nil {
		p.flush()
		start, err1 := parseTimestamp(m[1])
		end, err2 := parseTimestamp(m[2])
		if err1 != nil || err2 != nil || end < start {
			return fmt.Errorf("%w: bad timing %q", ErrCaptions, line)
		}
		p.cur = &Segment{Page: 1, TimeStartMs: &start, TimeEndMs: &end}
		p.inNote = false
		return nil
	}
	trimmed := strings.TrimSpace(line)
	switch {
	case trimmed == "":
		p.flush()
		p.inNote = false
	case p.cur == nil:
		// Header, cue identifiers, NOTE/STYLE/REGION blocks.
		if strings.HasPrefix(trimmed, "NOTE") || trimmed == "STYLE" || trimmed == "REGION" {
			p.inNote = true
		}
	case !p.inNote:
		text := strings.TrimSpace(tags.ReplaceAllString(trimmed, ""))
		if text != "" && text != p.lastLine {
			p.lines = append(p.lines, text)
			p.lastLine = text
		}
	}
	if len(p.segs) > maxCues {
		return fmt.Errorf("%w: more than %d cues", ErrCaptions, maxCues)
	}
	return nil
}

// flush ends the current cue, keeping it if it has text.
func (p *cueParser) flush() {
	if p.cur != nil {
		if text := strings.TrimSpace(strings.Join(p.lines, " ")); text != "" {
			p.cur.Text = text
			p.segs = append(p.segs, *p.cur)
		}
	}
	p.cur, p.lines = nil, nil
}

// parseTimestamp reads [hh:]mm:ss.mmm (WebVTT) or hh:mm:ss,mmm (SRT).
func parseTimestamp(s string) (int64, error) {
	s = strings.Replace(s, ",", ".", 1)
	main, frac, _ := strings.Cut(s, ".")
	parts := strings.Split(main, ":")
	var total int64
	for _, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 || n > 1_000_000 {
			return 0, fmt.Errorf("bad timestamp %q", s)
		}
		total = total*60 + n
	}
	for len(frac) < 3 {
		frac += "0"
	}
	ms, err := strconv.ParseInt(frac[:3], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad timestamp %q", s)
	}
	return total*1000 + ms, nil
}
