// The Worker's settings, from its vars and secrets (wrangler.jsonc), with
// the Go edge's defaults. Names follow sostenuto-edge's settings.

const list = (v) => (v || "").split(",").map((s) => s.trim()).filter(Boolean);
const num = (v, d) => (v === undefined || v === "" ? d : Number(v));
const ms = (v, d) => num(v, d / 1000) * 1000; // settings are given in seconds

/** settings reads env; an unusable value throws (the Worker then answers 503). */
export function settings(env) {
  const nodes = list(env.NODES || "http://127.0.0.1:8080").map((u) => u.replace(/\/+$/, ""));
  for (const u of nodes) new URL(u); // throws on a bad URL
  const cfg = {
    nodes,
    healthIntervalMs: ms(env.HEALTH_INTERVAL, 1000),
    healthTimeoutMs: ms(env.HEALTH_TIMEOUT, 1000),
    upstreamTimeoutMs: ms(env.UPSTREAM_TIMEOUT, 60000),
    decisionTimeoutMs: ms(env.DECISION_TIMEOUT, 70000),
    jwksURLs: env.JWKS_URLS !== undefined ? list(env.JWKS_URLS) : nodes.map((n) => `${n}/api/auth/jwks.json`),
    jwksRefreshMs: ms(env.JWKS_REFRESH, 300000),
    secrets: list(env.JWT_HS256_SECRET).concat(list(env.SUPABASE_JWT_SECRET)),
    issuers: list(env.JWT_ISSUERS || "sostenuto"),
    audiences: list(env.JWT_AUDIENCES || "sostenuto-api"),
    leewayMs: ms(env.JWT_LEEWAY, 30000),
    authzTTLms: Math.min(ms(env.AUTHZ_TTL, 15000), 300000),
    cacheMaxBytes: num(env.CACHE_MAX_BYTES, 262144),
    answerTTLs: Math.max(60, num(env.ANSWER_TTL, 86400)),
    maxReplayBytes: num(env.MAX_REPLAY_BYTES, 1048576),
    blobMirror: (env.BLOB_MIRROR || "").replace(/\/+$/, ""),
  };
  for (const [k, v] of Object.entries(cfg)) {
    if (typeof v === "number" && !(v >= 0)) throw new Error(`setting ${k} is not a number`);
  }
  return cfg;
}
