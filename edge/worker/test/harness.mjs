// Runs the Worker in Miniflare (workerd) on 127.0.0.1 for the Go tests
// (edge/conformance, server/worker_test.go): the settings come as JSON in
// argv[2] (the Worker's vars), the Worker's URL goes to stdout as one JSON
// line, and the Worker stops when stdin closes (the test ended).
//   node test/harness.mjs '{"NODES":"http://127.0.0.1:8080","AUTHZ_TTL":"1"}'
import { Miniflare } from "miniflare";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const vars = JSON.parse(process.argv[2] || "{}");

const mf = new Miniflare({
  rootPath: root,
  modules: true,
  scriptPath: path.join(root, "src/worker.js"),
  modulesRules: [{ type: "ESModule", include: ["**/*.js"] }, { type: "CompiledWasm", include: ["**/*.wasm"] }],
  compatibilityDate: "2026-08-01",
  bindings: vars,
  r2Buckets: ["BLOBS"],
  kvNamespaces: ["ANSWERS"],
  host: "127.0.0.1",
  port: Number(process.env.WORKER_PORT || 0),
});

const url = await mf.ready;
process.stdout.write(JSON.stringify({ url: url.href.replace(/\/$/, "") }) + "\n");
process.stdin.resume();
process.stdin.on("end", async () => {
  await mf.dispose();
  process.exit(0);
});
