package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// The plot is well-formed SVG with one line and one legend entry per
// system, and a point per measurement.
func TestWriteRecallPlot(t *testing.T) {
	series := []PlotSeries{
		{Name: "ours <quantized>", Points: []PlotPoint{{0.9, 8000, "ef 20"}, {0.99, 4000, "ef 60"}, {0.999, 2500, "ef 160"}}},
		{Name: "hnswlib", Points: []PlotPoint{{0.98, 3000, "ef 40"}, {0.9, 5000, "ef 20"}}},
	}
	var buf bytes.Buffer
	if err := WriteRecallPlot(&buf, "test & plot", series); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	var texts []string
	d := xml.NewDecoder(&buf)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			counts[e.Name.Local]++
		case xml.CharData:
			texts = append(texts, string(e))
		}
	}
	if counts["svg"] != 1 || counts["path"] != 2 || counts["circle"] != 5 {
		t.Errorf("elements %v: want 1 svg, 2 paths, 5 circles", counts)
	}
	all := strings.Join(texts, "|")
	for _, want := range []string{"ours <quantized>", "hnswlib", "Recall@10", "test & plot"} {
		if !strings.Contains(all, want) {
			t.Errorf("%q missing from the plot's text", want)
		}
	}
}
