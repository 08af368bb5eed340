// The node pool: health checks on /api/ready, the less busy of two healthy
// nodes picked at random (power of two choices on outstanding requests),
// and the Go edge's retry rules (asked of the rules in Wasm).
import { call } from "./shell.js";

export class Pool {
  constructor(nodes, cfg) {
    this.cfg = cfg;
    this.backends = nodes.map((u) => ({ url: u, name: new URL(u).host, healthy: false, inflight: 0 }));
    this.checkedAt = 0;
    this.checking = null;
  }

  /** ready runs a first round of checks before the first request; later rounds run beside requests. */
  async ready(ctx) {
    if (this.checkedAt === 0) return this.check();
    // A round another request started is not waited on (a promise shared
    // between requests may hang in workerd when its request ends first).
    if (!this.checking && Date.now() - this.checkedAt >= this.cfg.healthIntervalMs) ctx.waitUntil(this.check());
  }

  check() {
    if (this.checking) return this.checking;
    this.checkedAt = Date.now();
    this.checking = Promise.all(this.backends.map(async (b) => {
      const ok = await this.probe(b);
      if (ok !== b.healthy) console.log(JSON.stringify({ component: "edge", msg: "node health changed", node: b.name, healthy: ok }));
      b.healthy = ok;
    })).finally(() => { this.checking = null; this.checkedAt = Date.now(); });
    return this.checking;
  }

  async probe(b) {
    try {
      const r = await fetch(`${b.url}/api/ready`, { signal: AbortSignal.timeout(this.cfg.healthTimeoutMs) });
      await r.body?.cancel();
      return r.status === 200;
    } catch {
      return false;
    }
  }

  healthyCount() { return this.backends.filter((b) => b.healthy).length; }

  /** pick: a healthy node not tried; with none healthy, any not tried; null when all were tried. */
  pick(tried) {
    let cands = this.backends.filter((b) => b.healthy && !tried.has(b));
    if (cands.length === 0 && this.healthyCount() === 0) cands = this.backends.filter((b) => !tried.has(b));
    if (cands.length <= 1) return cands[0] || null;
    const i = Math.floor(Math.random() * cands.length);
    let j = Math.floor(Math.random() * (cands.length - 1));
    if (j >= i) j++;
    return cands[j].inflight < cands[i].inflight ? cands[j] : cands[i];
  }

  byHost(name) { return this.backends.find((b) => b.name === name && b.healthy) || null; }

  down(b, err) {
    if (b.healthy) console.log(JSON.stringify({ component: "edge", msg: "node marked down", node: b.name, err: String(err) }));
    b.healthy = false;
  }

  /**
   * send tries nodes until one answers: { response, node } or { error, unreached }.
   * req: { method, path, headers, body: {bytes|stream, replayable}, plan: {idempotent, prefer}, timeoutMs }.
   */
  async send(req) {
    const tried = new Set();
    let unreached = true;
    let lastErr = null;
    for (let attempt = 0; ; attempt++) {
      let b = attempt === 0 && req.plan.prefer ? this.byHost(req.plan.prefer) : null;
      b = b || this.pick(tried);
      if (!b) return { error: lastErr || new Error("no node is available"), unreached };
      tried.add(b);
      b.inflight++;
      let resp;
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(new Error("timeout awaiting the node's response headers")), req.timeoutMs || this.cfg.upstreamTimeoutMs);
      try {
        resp = await fetch(b.url + req.path, this.init(req, attempt, ac.signal));
      } catch (err) {
        b.inflight--;
        const f = failureOf(err);
        console.log(JSON.stringify({ component: "edge", msg: "upstream failed", node: b.name, failure: f, err: String(err) }));
        const d = call("retry", { failure: f, idempotent: req.plan.idempotent, replayable: req.body.replayable });
        if (d.mark_down) this.down(b, err);
        lastErr = err;
        unreached = unreached && f === "unreached";
        if (d.retry) continue;
        return { error: err, unreached: false };
      } finally {
        clearTimeout(timer);
      }
      const d = call("retry", { status: resp.status, idempotent: req.plan.idempotent, replayable: req.body.replayable });
      if (d.retry && this.pick(tried)) {
        await resp.body?.cancel();
        b.inflight--;
        unreached = false;
        continue;
      }
      return { response: this.counted(resp, b), node: b.name };
    }
  }

  init(req, attempt, signal) {
    let body = null;
    if (req.body.bytes) body = req.body.bytes;
    else if (req.body.stream && attempt === 0) body = req.body.stream;
    return {
      method: req.method, headers: req.headers, body, redirect: "manual", signal,
    };
  }

  // counted keeps b busy until the answer's body is done (a stream counts while it runs).
  counted(resp, b) {
    if (!resp.body) {
      b.inflight--;
      return resp;
    }
    const { readable, writable } = new TransformStream();
    resp.body.pipeTo(writable).catch(() => {}).finally(() => { b.inflight--; });
    return new Response(readable, resp);
  }
}

/**
 * failureOf tells how a fetch failed. workerd reports a refused connection
 * and a broken one alike ("Network connection lost."), so every network
 * error is "broken": it may have reached the node, and only an idempotent
 * request is sent again (never a POST twice). A timeout awaiting the
 * headers is neither (retried when idempotent, the node not marked down),
 * as in the Go edge.
 */
export function failureOf(err) {
  if (err && (err.name === "AbortError" || err.name === "TimeoutError" || /timeout awaiting/.test(String(err.message)))) return "";
  return "broken";
}
