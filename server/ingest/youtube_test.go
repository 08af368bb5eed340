package ingest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestVideoID(t *testing.T) {
	for in, want := range map[string]string{
		"https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42": "dQw4w9WgXcQ",
		"https://youtu.be/dQw4w9WgXcQ":                     "dQw4w9WgXcQ",
		"https://www.youtube.com/embed/dQw4w9WgXcQ":        "dQw4w9WgXcQ",
		"https://m.youtube.com/shorts/dQw4w9WgXcQ":         "dQw4w9WgXcQ",
		"dQw4w9WgXcQ":                           "dQw4w9WgXcQ",
		"https://vimeo.com/123":                 "",
		"https://www.youtube.com/watch?v=short": "",
		"https://evil.com/watch?v=dQw4w9WgXcQ":  "",
	} {
		got, err := VideoID(in)
		if (want == "") != (err != nil) || got != want {
			t.Errorf("VideoID(%q) = %q, %v", in, got, err)
		}
	}
}

// A local server speaking the timedtext endpoint's wire format.
func TestYouTubeCaptions(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/api/timedtext" || q.Get("fmt") != "vtt" || q.Get("lang") != "en" {
			http.Error(w, "bad request", 400)
			return
		}
		switch q.Get("v") {
		case "pedalLesson":
			w.Header().Set("Content-Type", "text/vtt; charset=utf-8")
			w.Write([]byte("WEBVTT\nKind: captions\nLanguage: en\n\n00:00:00.000 --> 00:00:03.200\nToday we learn legato pedalling.\n\n00:00:03.200 --> 00:00:07.900\nChange the pedal right after the chord.\n"))
		case "noCaptions1":
			w.WriteHeader(200) // YouTube answers an empty body
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	y := &YouTubeCaptions{BaseURL: srv.URL + "/api/timedtext"}
	segs, err := y.Fetch(context.Background(), "pedalLesson")
	if err != nil || len(segs) != 2 || *segs[1].TimeStartMs != 3200 || segs[1].Text != "Change the pedal right after the chord." {
		t.Fatalf("%+v %v", segs, err)
	}
	if _, err := y.Fetch(context.Background(), "noCaptions1"); !errors.Is(err, ErrNoCaptions) {
		t.Errorf("empty track: %v", err)
	}
	if _, err := y.Fetch(context.Background(), "missingVid1"); !errors.Is(err, ErrNoCaptions) {
		t.Errorf("404: %v", err)
	}
}
