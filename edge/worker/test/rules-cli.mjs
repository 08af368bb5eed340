// Runs the Worker's rules (build/rules.wasm, the same binary the Worker
// loads) under Node for the conformance suite: one JSON line in
// ({"op","args"}), one JSON line out (the answer of sostenutoRules).
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
await import(path.join(root, "build/wasm_exec.js"));
const go = new globalThis.Go();
const { instance } = await WebAssembly.instantiate(readFileSync(path.join(root, "build/rules.wasm")), go.importObject);
go.run(instance);

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const { op, args } = JSON.parse(line);
  process.stdout.write(globalThis.sostenutoRules(op, JSON.stringify(args)) + "\n");
}
process.exit(0);
