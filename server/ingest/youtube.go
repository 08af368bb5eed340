package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// ErrNoCaptions marks a video without captions in the asked language.
var ErrNoCaptions = errors.New("ingest: the video has no captions")

var videoID = regexp.MustCompile(`^[A-Za-z0-9_-]{11}$`)

// VideoID extracts the id from a YouTube URL (watch?v=, youtu.be/,
// /embed/, /shorts/, /live/) or a bare id.
func VideoID(raw string) (string, error) {
	if videoID.MatchString(raw) {
		return raw, nil
	}
	u, err := url.Parse(raw)
	if err == nil {
		host := strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
		host = strings.TrimPrefix(host, "m.")
		var id string
		switch host {
		case "youtube.com", "youtube-nocookie.com", "music.youtube.com":
			if v := u.Query().Get("v"); v != "" {
				id = v
			} else {
				parts := strings.Split(strings.Trim(u.Path, "/"), "/")
				if len(parts) == 2 && (parts[0] == "embed" || parts[0] == "shorts" || parts[0] == "live" || parts[0] == "v") {
					id = parts[1]
				}
			}
		case "youtu.be":
			id = strings.Trim(u.Path, "/")
		}
		if videoID.MatchString(id) {
			return id, nil
		}
	}
	return "", fmt.Errorf("ingest: %q is not a YouTube video URL", raw)
}

// YouTubeCaptions fetches a video's captions as WebVTT from the timedtext
// endpoint: GET {BaseURL}?v={id}&lang={lang}&fmt=vtt, which answers the
// WebVTT file, or an empty body when the video has no such track.
type YouTubeCaptions struct {
	BaseURL string // https://www.youtube.com/api/timedtext by default
	Lang    string // en by default
	Client  *http.Client
}

// Fetch returns the caption segments of a video. Every failure is a
// *FetchError; a video without the track wraps ErrNoCaptions.
func (y *YouTubeCaptions) Fetch(ctx context.Context, id string) ([]Segment, error) {
	base := y.BaseURL
	if base == "" {
		base = "https://www.youtube.com/api/timedtext"
	}
	lang := y.Lang
	if lang == "" {
		lang = "en"
	}
	q := url.Values{"v": {id}, "lang": {lang}, "fmt": {"vtt"}}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"?"+q.Encode(), nil)
	if err != nil {
		return nil, transientFailure(CodeFetchFailed, "The captions could not be requested.", fmt.Errorf("ingest: captions of %s: %w", id, err))
	}
	client := y.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, transportFailure(fmt.Errorf("ingest: captions of %s: %w", id, err))
	}
	defer resp.Body.Close()
	noCaptions := permanentFailure(CodeNoText, fmt.Sprintf("The video has no captions in %q.", lang),
		fmt.Errorf("%w (%s, %s)", ErrNoCaptions, id, lang))
	if resp.StatusCode == http.StatusNotFound {
		return nil, noCaptions
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusFailure(resp.StatusCode, fmt.Errorf("ingest: captions of %s: HTTP %d", id, resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCaptionBytes+1))
	if err != nil {
		return nil, transportFailure(fmt.Errorf("ingest: captions of %s: %w", id, err))
	}
	if strings.TrimSpace(string(body)) == "" {
		return nil, noCaptions
	}
	return parseCaptionFile(string(body))
}

// parseCaptionFile is ParseCaptions with its failure classified.
func parseCaptionFile(data string) ([]Segment, error) {
	segs, err := ParseCaptions(data)
	switch {
	case err == nil:
		return segs, nil
	case len(data) > maxCaptionBytes:
		return nil, permanentFailure(CodeTooLarge, fmt.Sprintf("The caption file is larger than the limit of %d bytes.", maxCaptionBytes), err)
	}
	return nil, permanentFailure(CodeUnsupported, "The captions are neither WebVTT nor SRT, or hold no cues.", err)
}
