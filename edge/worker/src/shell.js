// The shell's shared parts: the rules' entry point, the isolate's state,
// sending a request on to the nodes, and the answers the edge makes itself.

/** state is the isolate's: the settings and the node pool, set at boot. */
export const state = { cfg: null, pool: null };

/** call runs one operation of the rules (edge/worker/wasm/ops.go). */
export function call(op, args) {
  const out = JSON.parse(globalThis.sostenutoRules(op, JSON.stringify(args)));
  if (out && typeof out === "object" && out.error) throw new Error(`rules ${op}: ${out.error}`);
  return out;
}

/**
 * forward sends the request on to a node (the pool picks it, the rules say
 * when to send it again) and passes the answer through, streamed.
 * plan: { idempotent, prefer, ifNoneMatch } or null (method decides).
 */
export async function forward(c, plan) {
  const body = await keepBody(c.req, c.cfg.maxReplayBytes);
  if (body.error) return problem(400, "invalid_input", "the request body could not be read", c.rid);
  if (!plan) plan = { idempotent: call("plan", { Method: c.req.method, Path: c.url.pathname }).idempotent };
  const headers = nodeHeaders(c);
  if (plan.ifNoneMatch) headers.set("If-None-Match", plan.ifNoneMatch);
  const r = await state.pool.send({ method: c.req.method, path: c.url.pathname + c.url.search, headers, body, plan });
  if (r.error) return r.unreached
    ? problem(503, "unavailable", "no node is available; try again shortly", c.rid)
    : problem(502, "unavailable", "the node did not answer; try again", c.rid);
  const out = new Response(r.response.body, r.response);
  out.headers.delete("X-Request-ID");
  out.headers.set("X-Sostenuto-Node", r.node);
  return out;
}

/** keepBody reads a body of at most limit bytes so it can be sent again; a larger one streams. */
export async function keepBody(req, limit) {
  if (req.body === null) return { bytes: null, replayable: true };
  const len = req.headers.get("Content-Length");
  if (len !== null && Number(len) > limit) return { stream: req.body, replayable: false };
  try {
    const bytes = new Uint8Array(await req.arrayBuffer());
    return { bytes, replayable: bytes.length <= limit };
  } catch {
    return { error: true };
  }
}

/** nodeHeaders are the headers a node gets: the request id, X-Forwarded-* from Cloudflare's view of the client. */
export function nodeHeaders(c) {
  const h = new Headers(c.headers);
  h.delete("Host");
  h.set("X-Request-ID", c.rid);
  h.set("X-Forwarded-For", c.req.headers.get("CF-Connecting-IP") || "127.0.0.1");
  h.set("X-Forwarded-Host", c.url.host);
  h.set("X-Forwarded-Proto", c.url.protocol.replace(":", ""));
  for (const k of ["CF-Connecting-IP", "CF-Ray", "CF-IPCountry", "CF-Visitor", "CF-Worker", "X-Real-IP"]) h.delete(k);
  return h;
}

/** requestID keeps a well-formed incoming X-Request-ID or makes one. */
export function requestID(req) {
  const id = req.headers.get("X-Request-ID") || "";
  return /^[A-Za-z0-9\-_.:]{1,128}$/.test(id) ? id : crypto.randomUUID();
}

const statusText = {
  304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 416: "Requested Range Not Satisfiable",
  502: "Bad Gateway", 503: "Service Unavailable",
};

/** problem is an RFC 9457 answer, the shape the nodes and the Go edge give. */
export function problem(status, code, detail, rid, extra = {}) {
  const body = {
    type: `https://sostenuto.dev/problems/${code.replaceAll("_", "-")}`,
    title: statusText[status] || "Error", status, detail, code,
  };
  const h = { "Content-Type": "application/problem+json", "Cache-Control": "no-store", ...extra };
  if (rid) h["X-Request-ID"] = rid;
  return new Response(JSON.stringify(body) + "\n", { status, headers: h });
}

export function json(status, v, extra = {}) {
  return new Response(JSON.stringify(v) + "\n", { status, headers: { "Content-Type": "application/json", ...extra } });
}
