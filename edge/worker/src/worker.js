// sostenuto-edge on Cloudflare Workers: a thin shell around the Go edge's
// rules (edge/rules, compiled to WebAssembly). The rules decide — tokens,
// cache keys, retries, ranges — and this file does the I/O: fetch to the
// nodes, R2 for the bytes, the Cache API for decisions and key sets, KV for
// kept answers. See edge/worker/README.md.
import "../build/wasm_exec.js";
import rulesModule from "../build/rules.wasm";
import { Pool } from "./pool.js";
import { settings } from "./settings.js";
import { call, state, forward, problem, json, requestID } from "./shell.js";
import { stream, pageImage } from "./objects.js";
import { cached } from "./answers.js";

let booted = null; // the settings once the rules started (per isolate, on the first request: no randomness in global scope)
const keys = { loadedAt: 0, forcedAt: 0 };

// boot starts the rules, synchronously (the module arrives compiled), so no
// request waits on a promise another request made.
function boot(env) {
  const go = new globalThis.Go();
  const inst = new WebAssembly.Instance(rulesModule, go.importObject);
  go.run(inst); // runs main until it blocks; sostenutoRules is then registered
  const cfg = settings(env);
  call("configure", {
    issuers: cfg.issuers, audiences: cfg.audiences, leeway_ms: cfg.leewayMs,
    hs256_secrets: cfg.secrets, jwks: cfg.jwksURLs.length > 0,
  });
  state.pool = new Pool(cfg.nodes, cfg);
  state.cfg = cfg;
  return cfg;
}

export default {
  async fetch(request, env, ctx) {
    if (!booted) {
      try {
        booted = boot(env);
      } catch (e) {
        return problem(503, "unavailable", `the edge could not start: ${e.message}`, requestID(request));
      }
    }
    const cfg = booted;
    await state.pool.ready(ctx);
    const rid = requestID(request);
    let resp;
    try {
      resp = await route(request, env, ctx, cfg, rid);
    } catch (e) { // a binding or the runtime failed: the client still gets problem+json
      console.log(JSON.stringify({ component: "edge", msg: "request failed", request_id: rid, err: String(e && e.stack || e) }));
      resp = problem(502, "unavailable", "the edge could not answer; try again", rid);
    }
    const out = new Response(resp.body, resp);
    out.headers.set("X-Request-ID", rid);
    return out;
  },
};

async function route(req, env, ctx, cfg, rid) {
  const url = new URL(req.url);
  const path = url.pathname;
  if (path === "/edge/health" && req.method === "GET") return health();
  if (path === "/metrics") return problem(404, "not_found", "the Worker's metrics are in Cloudflare's analytics", rid);
  const tok = await checkToken(req, env, ctx, cfg, path);
  if (tok.outcome === "refused") {
    return problem(401, "unauthenticated", "the access token is not valid", rid, { "WWW-Authenticate": 'Bearer error="invalid_token"' });
  }
  const headers = new Headers(req.headers);
  if (tok.outcome === "dropped") headers.delete("Authorization");
  const c = { req, env, ctx, cfg, rid, url, sub: tok.subject || "", headers };
  let m;
  if ((m = path.match(/^\/api\/projects\/([^/]+)\/stream$/)) && (req.method === "GET" || req.method === "HEAD")) {
    return stream(c, m[1]);
  }
  if ((m = path.match(/^\/api\/projects\/([^/]+)\/pages\/([^/]+)\/image$/)) && req.method === "GET") {
    return pageImage(c, m[1], m[2]);
  }
  if (req.method === "POST" && ["/api/embeddings/generate", "/api/search", "/api/chat/query"].includes(path)) {
    return cached(c);
  }
  return forward(c, null);
}

function health() {
  const n = state.pool.healthyCount();
  return json(n === 0 ? 503 : 200, { status: n === 0 ? "no healthy node" : "ok", nodes_healthy: n, nodes: state.pool.backends.length },
    { "Cache-Control": "no-store" });
}

// checkToken verifies the bearer token with the rules; an unknown key id
// fetches the key sets again (at most every 10 s) and verifies once more.
async function checkToken(req, env, ctx, cfg, path) {
  const args = { authorization: req.headers.get("Authorization") || "", path, now_ms: Date.now() };
  if (args.authorization === "") return { outcome: "none" };
  await loadKeys(env, ctx, cfg, false);
  let res = call("verify", args);
  if (res.unknown_key && Date.now() - keys.forcedAt > 10_000) {
    keys.forcedAt = Date.now();
    await loadKeys(env, ctx, cfg, true);
    res = call("verify", { ...args, now_ms: Date.now() });
  }
  if (res.outcome === "refused") console.log(JSON.stringify({ component: "edge", msg: "token refused at the edge", err: res.reason }));
  return res;
}

// loadKeys gives the rules the nodes' key sets: from the Cache API while
// they are younger than jwks-refresh, else from the nodes (and kept).
async function loadKeys(env, ctx, cfg, force) {
  if (cfg.jwksURLs.length === 0) return;
  if (!force && Date.now() - keys.loadedAt < cfg.jwksRefreshMs) return;
  // Each request that needs the sets loads them itself (from the Cache API
  // after the first): a promise shared between requests may hang in workerd
  // when the request that made it ends first.
  const docs = await Promise.all(cfg.jwksURLs.map((u) => keySet(u, ctx, cfg, force)));
  const got = docs.filter((d) => d !== null);
  if (got.length > 0) {
    call("keys", got);
    keys.loadedAt = Date.now();
  }
}

async function keySet(u, ctx, cfg, force) {
  const cacheKey = new Request(`https://jwks.sostenuto.internal/${encodeURIComponent(u)}`);
  const cache = caches.default;
  if (!force) {
    const hit = await cache.match(cacheKey);
    if (hit) return hit.text();
  }
  try {
    const r = await fetch(u, { signal: AbortSignal.timeout(5000) });
    if (r.status !== 200) return null;
    const doc = await r.text();
    const maxAge = Math.max(1, Math.floor(cfg.jwksRefreshMs / 1000));
    ctx.waitUntil(cache.put(cacheKey, new Response(doc, { headers: { "Cache-Control": `max-age=${maxAge}` } })));
    return doc;
  } catch {
    return null; // a node down: its set is fetched later
  }
}

