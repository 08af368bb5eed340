// Serves a node's local blob store (files named by key, each with its
// ETag in KEY.etag beside it) read-only on 127.0.0.1, for the Worker's
// BLOB_MIRROR in local development: the Worker copies an object it needs
// into local R2 from here, keeping the node's ETag in the object's custom
// metadata. Never part of a deployment (there the node writes to R2).
//   node blob-mirror.mjs DIR PORT
import { createServer } from "node:http";
import { createReadStream, promises as fs } from "node:fs";
import path from "node:path";

const [dir, port] = [path.resolve(process.argv[2]), Number(process.argv[3] || 8788)];

createServer(async (req, res) => {
  const key = decodeURIComponent(new URL(req.url, "http://x").pathname.slice(1));
  const file = path.resolve(dir, key);
  if (req.method !== "GET" || !file.startsWith(dir + path.sep) || key.endsWith(".etag")) {
    res.writeHead(404).end();
    return;
  }
  try {
    const [st, etag] = await Promise.all([fs.stat(file), fs.readFile(file + ".etag", "utf8")]);
    if (!st.isFile()) throw new Error("not a file");
    res.writeHead(200, { "Content-Length": st.size, ETag: etag.trim() });
    createReadStream(file).pipe(res);
  } catch {
    res.writeHead(404).end();
  }
}).listen(port, "127.0.0.1");
