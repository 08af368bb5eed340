package bench

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// PlotPoint is one measurement of a system: its recall and its throughput.
type PlotPoint struct {
	Recall float64
	QPS    float64
	Label  string // shown beside the point (the ef)
}

// PlotSeries is one line of a plot: a system's points.
type PlotSeries struct {
	Name   string
	Points []PlotPoint
}

// plot geometry, in SVG user units.
const (
	plotW, plotH                     = 760.0, 480.0
	plotLeft, plotRight              = 70.0, 220.0
	plotTop, plotBottom              = 40.0, 60.0
	plotInnerW, plotInnerH           = plotW - plotLeft - plotRight, plotH - plotTop - plotBottom
	plotMinDecades, plotRecallMargin = 1.0, 0.005
)

var plotColours = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"}

// WriteRecallPlot draws a recall-versus-throughput plot as ann-benchmarks
// does (x: recall, y: queries per second on a log scale; one line per
// system, its points in recall order) and writes it as SVG.
func WriteRecallPlot(w io.Writer, title string, series []PlotSeries) error {
	xr, yr := plotRanges(series)
	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH, plotW, plotH)
	fmt.Fprintf(&s, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&s, `<text x="%.0f" y="22" font-size="15" text-anchor="middle">%s</text>`+"\n", plotLeft+plotInnerW/2, xmlEscape(title))
	plotAxes(&s, xr, yr)
	for i, se := range series {
		plotLine(&s, se, plotColours[i%len(plotColours)], i, xr, yr)
	}
	s.WriteString("</svg>\n")
	_, err := io.WriteString(w, s.String())
	return err
}

// axisRange is an axis's shown interval (log10 of the values for y).
type axisRange struct{ lo, hi float64 }

func (a axisRange) scale(v, pixels float64) float64 { return (v - a.lo) / (a.hi - a.lo) * pixels }

// plotRanges returns the recall interval and the log10 QPS interval (whole
// decades) that hold every point.
func plotRanges(series []PlotSeries) (axisRange, axisRange) {
	xr := axisRange{math.Inf(1), math.Inf(-1)}
	yr := xr
	for _, se := range series {
		for _, p := range se.Points {
			xr.lo, xr.hi = min(xr.lo, p.Recall), max(xr.hi, p.Recall)
			if p.QPS > 0 {
				yr.lo, yr.hi = min(yr.lo, math.Log10(p.QPS)), max(yr.hi, math.Log10(p.QPS))
			}
		}
	}
	if math.IsInf(xr.lo, 0) {
		xr = axisRange{0, 1}
	}
	if math.IsInf(yr.lo, 0) {
		yr = axisRange{0, 1}
	}
	xr.lo, xr.hi = math.Max(0, xr.lo-plotRecallMargin), math.Min(1, xr.hi+plotRecallMargin)
	if xr.hi <= xr.lo {
		xr.lo = xr.hi - 0.01
	}
	yr.lo, yr.hi = math.Floor(yr.lo), math.Ceil(yr.hi)
	if yr.hi-yr.lo < plotMinDecades {
		yr.hi = yr.lo + plotMinDecades
	}
	return xr, yr
}

// plotAxes draws the frame, the grid, the ticks and the axis titles.
func plotAxes(s *strings.Builder, xr, yr axisRange) {
	fmt.Fprintf(s, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="black"/>`+"\n", plotLeft, plotTop, plotInnerW, plotInnerH)
	for i := 0; i <= 5; i++ {
		v := xr.lo + (xr.hi-xr.lo)*float64(i)/5
		x := plotLeft + xr.scale(v, plotInnerW)
		fmt.Fprintf(s, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ddd"/>`+"\n", x, plotTop, x, plotTop+plotInnerH)
		fmt.Fprintf(s, `<text x="%.1f" y="%.0f" text-anchor="middle">%.3f</text>`+"\n", x, plotTop+plotInnerH+18, v)
	}
	for d := yr.lo; d <= yr.hi; d++ {
		for m := 1; m < 10 && d+math.Log10(float64(m)) <= yr.hi; m++ {
			y := plotTop + plotInnerH - yr.scale(d+math.Log10(float64(m)), plotInnerH)
			colour := "#eee"
			if m == 1 {
				colour = "#ccc"
				fmt.Fprintf(s, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", plotLeft-6, y+4, formatQPS(math.Pow(10, d)))
			}
			fmt.Fprintf(s, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="%s"/>`+"\n", plotLeft, y, plotLeft+plotInnerW, y, colour)
		}
	}
	fmt.Fprintf(s, `<text x="%.0f" y="%.0f" text-anchor="middle">Recall@10</text>`+"\n", plotLeft+plotInnerW/2, plotH-18)
	fmt.Fprintf(s, `<text x="18" y="%.0f" text-anchor="middle" transform="rotate(-90 18 %.0f)">Queries per second, one thread (log scale)</text>`+"\n", plotTop+plotInnerH/2, plotTop+plotInnerH/2)
}

// plotLine draws one system: its line, its points with their labels, and
// its legend entry.
func plotLine(s *strings.Builder, se PlotSeries, colour string, i int, xr, yr axisRange) {
	pts := slices.Clone(se.Points)
	slices.SortFunc(pts, func(a, b PlotPoint) int { return cmp.Compare(a.Recall, b.Recall) })
	var path strings.Builder
	for j, p := range pts {
		if p.QPS <= 0 {
			continue
		}
		x, y := plotLeft+xr.scale(p.Recall, plotInnerW), plotTop+plotInnerH-yr.scale(math.Log10(p.QPS), plotInnerH)
		cmd := "L"
		if path.Len() == 0 {
			cmd = "M"
		}
		fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, x, y)
		fmt.Fprintf(s, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s %s: recall %.3f, %.0f q/s</title></circle>`+"\n",
			x, y, colour, xmlEscape(se.Name), xmlEscape(p.Label), p.Recall, p.QPS)
		if p.Label != "" && j%2 == 0 {
			fmt.Fprintf(s, `<text x="%.1f" y="%.1f" font-size="9" fill="%s">%s</text>`+"\n", x+4, y-4, colour, xmlEscape(p.Label))
		}
	}
	fmt.Fprintf(s, `<path d="%s" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n", strings.TrimSpace(path.String()), colour)
	ly := plotTop + 10 + float64(i)*18
	fmt.Fprintf(s, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2"/>`+"\n", plotW-plotRight+12, ly, plotW-plotRight+32, ly, colour)
	fmt.Fprintf(s, `<text x="%.0f" y="%.0f">%s</text>`+"\n", plotW-plotRight+38, ly+4, xmlEscape(se.Name))
}

func formatQPS(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.0fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
