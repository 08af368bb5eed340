// PDFs and page images straight from R2 after a node's decision, kept per
// user and decision route in the Cache API for authz-ttl (the revocation
// bound). Headers, ranges, 304 and 416 are the node's own (the rules).
import { call, state, nodeHeaders, problem } from "./shell.js";

/** stream answers GET/HEAD /api/projects/{id}/stream. */
export async function stream(c, id) {
  const bad = checkProject(c, id);
  if (bad) return bad;
  const d = await authorize(c, `/api/projects/${id}/object`);
  if (d.refusal) return d.refusal;
  const obj = d.obj;
  const h = new Headers({ ETag: obj.etag, "Cache-Control": "private, no-cache", "Accept-Ranges": "bytes", Vary: "Authorization" });
  const sv = call("serve", {
    if_none_match: c.req.headers.get("If-None-Match") || "", range: c.req.headers.get("Range") || "",
    if_range: c.req.headers.get("If-Range") || "", etag: obj.etag, size: obj.size,
  });
  if (sv.status === 304) return new Response(null, { status: 304, headers: h });
  if (sv.status === 416) {
    return problem(416, "range_not_satisfiable", "the range is outside the file", c.rid,
      { ETag: obj.etag, "Accept-Ranges": "bytes", Vary: "Authorization", "Content-Range": `bytes */${obj.size}` });
  }
  const o = await open(c, obj, sv.range, c.req.method === "HEAD");
  if (o.error) return o.error;
  h.set("Content-Type", obj.content_type);
  h.set("Content-Disposition", obj.content_disposition);
  let length = obj.size;
  let status = 200;
  if (sv.range) {
    length = sv.range.End - sv.range.Start + 1;
    h.set("Content-Range", `bytes ${sv.range.Start}-${sv.range.End}/${obj.size}`);
    status = 206;
  }
  h.set("Content-Length", String(length));
  return new Response(c.req.method === "HEAD" ? null : o.body, { status, headers: h, encodeBody: "manual" });
}

/** pageImage answers GET /api/projects/{id}/pages/{n}/image?width=. */
export async function pageImage(c, id, n) {
  const bad = checkProject(c, id);
  if (bad) return bad;
  let path = `/api/projects/${id}/pages/${n}/image/object`;
  const width = c.url.searchParams.get("width");
  if (width !== null) path += `?width=${encodeURIComponent(width)}`;
  const d = await authorize(c, path);
  if (d.refusal) return d.refusal;
  const obj = d.obj;
  const h = new Headers({ ETag: obj.etag, "Cache-Control": "private, no-cache", Vary: "Authorization" });
  if (call("serve", { if_none_match: c.req.headers.get("If-None-Match") || "", etag: obj.etag, size: obj.size }).status === 304) {
    return new Response(null, { status: 304, headers: h });
  }
  const o = await open(c, obj, null, false);
  if (o.error) return o.error;
  h.set("Content-Type", obj.content_type);
  h.set("Content-Disposition", obj.content_disposition);
  h.set("Content-Length", String(o.size));
  return new Response(o.body, { status: 200, headers: h, encodeBody: "manual" });
}

function checkProject(c, id) {
  if (!c.sub) return problem(401, "unauthenticated", "an access token is required", c.rid, { "WWW-Authenticate": "Bearer" });
  if (!call("valid_project_id", id)) return problem(404, "not_found", "no such project", c.rid);
  return null;
}

/**
 * authorize returns { obj } (the node's "may view" and the object it
 * names, kept for authz-ttl) or { refusal } (the node's refusal as it is,
 * never kept; 503 when no node could decide).
 */
async function authorize(c, path) {
  const key = new Request(`https://authz.sostenuto.internal/${encodeURIComponent(call("decision_key", { Subject: c.sub, Path: path }))}`);
  const cache = caches.default;
  const hit = await cache.match(key);
  if (hit) {
    const kept = await hit.json();
    if (kept.expires > Date.now()) return { obj: kept.obj };
  }
  const r = await askNode(c, path);
  if (r.obj) {
    const ttl = c.cfg.authzTTLms;
    const body = JSON.stringify({ obj: r.obj, expires: Date.now() + ttl });
    c.ctx.waitUntil(cache.put(key, new Response(body, { headers: { "Cache-Control": `max-age=${Math.max(1, Math.ceil(ttl / 1000))}` } })));
  }
  return r;
}

async function askNode(c, path) {
  const headers = nodeHeaders(c);
  for (const k of [...headers.keys()]) {
    if (!["authorization", "x-request-id", "x-forwarded-for"].includes(k)) headers.delete(k);
  }
  const r = await state.pool.send({ method: "GET", path, headers, body: { bytes: null, replayable: true },
    plan: { idempotent: true }, timeoutMs: c.cfg.decisionTimeoutMs });
  if (r.error) return { refusal: unavailable(c, "the access decision could not be made; try again", r.error) };
  const text = await r.response.text();
  if (r.response.status !== 200) {
    const h = { "Cache-Control": "no-store", "X-Request-ID": c.rid };
    const ct = r.response.headers.get("Content-Type");
    if (ct) h["Content-Type"] = ct;
    return { refusal: new Response(text, { status: r.response.status, headers: h }) };
  }
  let obj;
  try {
    obj = JSON.parse(text);
  } catch {
    obj = null;
  }
  if (!obj || !obj.key || !(obj.size > 0) || !obj.etag) {
    return { refusal: unavailable(c, "the access decision could not be made; try again", `malformed object answer: ${text}`) };
  }
  return { obj };
}

function unavailable(c, detail, err) {
  console.log(JSON.stringify({ component: "edge", msg: "stream authorization failed", request_id: c.rid, err: String(err) }));
  return problem(503, "unavailable", detail, c.rid);
}

/**
 * open reads the object the node named from R2 (a range of it, or only
 * its metadata for HEAD), if it is still the one the node saw: R2's ETag,
 * or for objects loaded from a node's local store (make edge-worker, the
 * tests) the node's ETag kept in the object's custom metadata.
 */
async function open(c, obj, range, headOnly) {
  const get = () => (headOnly ? c.env.BLOBS.head(obj.key)
    : c.env.BLOBS.get(obj.key, range ? { range: { offset: range.Start, length: range.End - range.Start + 1 } } : {}));
  let o = await get();
  if ((!o || tagOf(o) !== obj.etag) && c.cfg.blobMirror) {
    await fill(c, obj.key);
    o = await get();
  }
  if (!o) return { error: storageError(c, obj, "the file could not be read from storage; try again", "missing") };
  if (tagOf(o) !== obj.etag) {
    await o.body?.cancel();
    return { error: storageError(c, obj, "the stored file is not the confirmed one", `etag ${tagOf(o)}`) };
  }
  return { body: o.body, size: o.size };
}

function tagOf(o) { return (o.customMetadata && o.customMetadata.etag) || o.httpEtag; }

function storageError(c, obj, detail, why) {
  console.log(JSON.stringify({ component: "edge", msg: "object storage read failed", request_id: c.rid, key: obj.key, err: why }));
  return problem(502, "unavailable", detail, c.rid);
}

// fill copies an object from the node's local blob store into R2 through
// the mirror (BLOB_MIRROR: local development and tests only), with the
// node's ETag in its custom metadata.
async function fill(c, key) {
  const r = await fetch(`${c.cfg.blobMirror}/${key.split("/").map(encodeURIComponent).join("/")}`);
  if (r.status !== 200) {
    await r.body?.cancel();
    return;
  }
  const etag = r.headers.get("ETag") || "";
  const bytes = await r.arrayBuffer(); // R2 writes need a known length
  await c.env.BLOBS.put(key, bytes, { customMetadata: { etag } });
}
