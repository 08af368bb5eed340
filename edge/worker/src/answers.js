// Kept answers of POST /api/embeddings/generate, /api/search and
// /api/chat/query in KV, keyed by the rules (verified user, route, exact
// body). A kept answer is never served on its own: the request goes to the
// node that made it with If-None-Match, and the kept body is served only on
// its 304 (X-Edge-Cache: hit).
import { call, forward, keepBody, problem } from "./shell.js";

/** cached answers one of the three answer routes. */
export async function cached(c) {
  const body = await keepBody(c.req, c.cfg.maxReplayBytes);
  if (body.error) return problem(400, "invalid_input", "the request body could not be read", c.rid);
  const plan = call("plan", {
    Method: "POST", Path: c.url.pathname, Subject: c.sub, Accept: c.req.headers.get("Accept") || "",
    IfNoneMatch: c.req.headers.get("If-None-Match") || "", Body: b64(body.bytes), Kept: body.replayable && !body.stream,
  });
  const req = new Request(c.req.url, { method: "POST", headers: c.req.headers, body: body.bytes || body.stream || null });
  const cc = { ...c, req };
  if (!plan.cache) return forward(cc, { idempotent: plan.idempotent });
  const kept = await c.env.ANSWERS.get(plan.key, "json");
  const resp = await forward(cc, { idempotent: true, prefer: kept?.node, ifNoneMatch: kept?.etag });
  if (resp.status === 304 && kept) return served(kept, resp.headers.get("X-Sostenuto-Node"));
  if (kept) c.ctx.waitUntil(c.env.ANSWERS.delete(plan.key)); // stale
  return keep(c, plan.key, resp);
}

function served(kept, node) {
  const h = new Headers(kept.header);
  if (node) h.set("X-Sostenuto-Node", node);
  h.set("Content-Length", String(new TextEncoder().encode(kept.body).length));
  h.set("X-Edge-Cache", "hit");
  return new Response(kept.body, { status: 200, headers: h });
}

// keep passes the node's answer on (X-Edge-Cache: miss) and keeps it when
// the rules say it may be kept and its body is within cache-max-bytes.
function keep(c, key, resp) {
  const out = new Response(resp.body, resp);
  out.headers.set("X-Edge-Cache", "miss");
  const etag = resp.headers.get("ETag") || "";
  const mt = (resp.headers.get("Content-Type") || "").split(";")[0].trim().toLowerCase();
  const len = resp.headers.get("Content-Length");
  const max = c.cfg.cacheMaxBytes;
  if (!resp.body || !call("keepable", { status: resp.status, etag, media_type: mt, length: len === null ? -1 : Number(len), max_bytes: max })) return out;
  const [mine, theirs] = resp.body.tee();
  const header = {};
  for (const k of ["Content-Type", "Cache-Control", "Vary", "ETag"]) {
    const v = resp.headers.get(k);
    if (v) header[k] = v;
  }
  const node = resp.headers.get("X-Sostenuto-Node") || "";
  c.ctx.waitUntil(readUpTo(mine, max).then((text) => {
    if (text !== null) return c.env.ANSWERS.put(key, JSON.stringify({ etag, node, header, body: text }), { expirationTtl: c.cfg.answerTTLs });
  }));
  return new Response(theirs, out);
}

async function readUpTo(stream, max) {
  const reader = stream.getReader();
  const parts = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > max) {
      await reader.cancel();
      return null;
    }
    parts.push(value);
  }
  const all = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  return new TextDecoder("utf-8", { fatal: true }).decode(all);
}

function b64(bytes) {
  if (!bytes) return "";
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
