//go:build js && wasm

// Command wasm is the edge's rules (package edge/rules) for the Cloudflare
// Worker: compiled with GOOS=js GOARCH=wasm, it registers one function,
// globalThis.sostenutoRules(op, args), that the Worker's JavaScript shell
// calls for every decision. Arguments and answers are JSON; no I/O happens
// here (the shell fetches key sets and talks to the nodes, R2 and KV).
package main

import (
	"encoding/json"
	"syscall/js"
)

func main() {
	st := &state{}
	js.Global().Set("sostenutoRules", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 2 {
			return `{"error":"sostenutoRules(op, args)"}`
		}
		out, err := st.call(args[0].String(), []byte(args[1].String()))
		if err != nil {
			b, _ := json.Marshal(map[string]string{"error": err.Error()})
			return string(b)
		}
		b, _ := json.Marshal(out)
		return string(b)
	}))
	select {} // the Worker calls in; main never returns
}
