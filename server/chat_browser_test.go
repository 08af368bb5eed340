package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sostenuto/sostenuto/server/rag"
)

// A browser consumes the answer stream as the contract says: fetch() with
// an Authorization header and a body reader, in headless Chromium (Debian's
// package; make test installs it).
func TestChatStreamInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is needed (apt-get install chromium; make test installs it): %v", err)
	}
	a := newAPI(t)
	teacher := a.register("t@example.com", "teacher").AccessToken
	d := a.createDocument(teacher, map[string]any{"title": "Pedalling", "source_type": "text",
		"content": "Change the damper pedal just after each new chord. Too much pedal blurs the harmony.", "is_public": false})
	a.process(teacher, d.Document.ID)
	a.waitDocument(teacher, d.Document.ID)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("headless", true), chromedp.Flag("disable-gpu", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	script := fmt.Sprintf(`(async () => {
		const resp = await fetch("/api/chat/query", {method: "POST",
			headers: {"Authorization": "Bearer %s", "Content-Type": "application/json", "Accept": "text/event-stream"},
			body: JSON.stringify({query: "When do I change the damper pedal?"})});
		const reader = resp.body.getReader();
		const dec = new TextDecoder();
		let buf = "", events = [];
		for (;;) {
			const {value, done} = await reader.read();
			if (done) break;
			buf += dec.decode(value, {stream: true});
			let i;
			while ((i = buf.indexOf("\n\n")) >= 0) {
				const block = buf.slice(0, i); buf = buf.slice(i + 2);
				let name = "", data = "";
				for (const line of block.split("\n")) {
					if (line.startsWith("event: ")) name = line.slice(7);
					if (line.startsWith("data: ")) data += line.slice(6);
				}
				if (name) events.push({name, data: JSON.parse(data)});
			}
		}
		return JSON.stringify({status: resp.status, type: resp.headers.get("Content-Type"), events});
	})()`, teacher)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(a.url+"/api/health")); err != nil { // same origin as the API
		t.Fatalf("browser: %v", err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	var got struct {
		Status int    `json:"status"`
		Type   string `json:"type"`
		Events []struct {
			Name string          `json:"name"`
			Data json.RawMessage `json:"data"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if got.Status != 200 || got.Type != "text/event-stream" || len(got.Events) < 3 ||
		got.Events[0].Name != "sources" || got.Events[len(got.Events)-1].Name != "done" {
		t.Fatalf("stream in the browser: %s", raw)
	}
	var sources []rag.Source
	json.Unmarshal(got.Events[0].Data, &sources)
	if len(sources) == 0 || sources[0].DocumentID != d.Document.ID || sources[0].Page != 1 {
		t.Errorf("sources %s", got.Events[0].Data)
	}
	var text strings.Builder
	for _, e := range got.Events[1 : len(got.Events)-1] {
		var delta struct{ Text string }
		json.Unmarshal(e.Data, &delta)
		text.WriteString(delta.Text)
	}
	var done rag.Reply
	json.Unmarshal(got.Events[len(got.Events)-1].Data, &done)
	if done.Content == "" || done.Content != text.String() || !strings.Contains(done.Content, "[1]") {
		t.Errorf("done %q vs deltas %q", done.Content, text.String())
	}
}
