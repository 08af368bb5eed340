// Package conformance holds the edge's conformance suite: JSON vectors
// (tokens.json, ranges.json, plans.json, retries.json, answers.json) that
// state the edge's rules, and the tests that hold both edges to them —
// sostenuto-edge (package edge, in process) and the Cloudflare Worker
// (edge/worker, in Miniflare's workerd) over HTTP in front of the same
// nodes, and the rules themselves in Go (edge/rules), in the Worker's
// Wasm (run under Node) and, for ranges, the node's own parser
// (server/blob). Where the Worker may differ, a vector says how and why.
package conformance
