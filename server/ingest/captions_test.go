package ingest

import (
	"errors"
	"testing"
)

func TestParseWebVTT(t *testing.T) {
	vtt := "\ufeffWEBVTT Kind: captions\n\nNOTE generated\nby hand\n\nSTYLE\n::cue { color: yellow }\n\n1\n00:00:01.000 --> 00:00:04.500 align:start\nWelcome to <b>lesson</b> one.\n\n00:00:04.500 --> 00:00:09.250\n<v Teacher>Relax your wrist\nbefore the scale.</v>\n\n01:02:03.004 --> 01:02:05.000\nLate cue\n"
	segs, err := ParseCaptions(vtt)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 3 {
		t.Fatalf("%d cues: %+v", len(segs), segs)
	}
	if segs[0].Text != "Welcome to lesson one." || *segs[0].TimeStartMs != 1000 || *segs[0].TimeEndMs != 4500 {
		t.Errorf("cue 0 %+v", segs[0])
	}
	if segs[1].Text != "Relax your wrist before the scale." {
		t.Errorf("cue 1 %q", segs[1].Text)
	}
	if *segs[2].TimeStartMs != 3723004 {
		t.Errorf("cue 2 starts at %d", *segs[2].TimeStartMs)
	}
}

func TestParseSRT(t *testing.T) {
	srt := "1\r\n00:00:00,500 --> 00:00:02,000\r\nPlace the thumb\r\n\r\n2\r\n00:00:02,000 --> 00:00:03,750\r\non middle C.\r\n"
	segs, err := ParseCaptions(srt)
	if err != nil || len(segs) != 2 || segs[1].Text != "on middle C." || *segs[1].TimeEndMs != 3750 {
		t.Fatalf("%+v %v", segs, err)
	}
}

func TestParseCaptionsRejects(t *testing.T) {
	for name, in := range map[string]string{
		"empty":        "",
		"html":         "<html><body>hi</body></html>",
		"header only":  "WEBVTT\n\n",
		"backwards":    "WEBVTT\n\n00:00:05.000 --> 00:00:01.000\nx\n",
		"no text cues": "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n\n",
	} {
		if _, err := ParseCaptions(in); !errors.Is(err, ErrCaptions) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
