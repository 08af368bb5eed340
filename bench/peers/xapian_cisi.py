#!/usr/bin/python3
"""The BM25 peer of the retrieval-quality benchmark: Xapian with English
stemming, BM25 k1 1.2 b 0.75, over the CISI documents as given.
Usage: xapian_cisi.py CISI_DIR ; prints JSON {"map","ndcg10"}."""
import json, math, re, sys, tempfile
import xapian

d = sys.argv[1]

def records(path):
    recs, cur, field = [], None, None
    for line in open(path, encoding="latin-1"):
        line = line.rstrip("\n")
        if line.startswith(".I "):
            cur = {"id": int(line[3:].strip())}; recs.append(cur); field = None; continue
        if len(line) == 2 and line[0] == ".":
            field = line[1]; cur[field] = ""; continue
        if cur is not None and field:
            cur[field] += line + "\n"
    return recs

docs = records(f"{d}/CISI.ALL")
queries = records(f"{d}/CISI.QRY")
rel = {}
for line in open(f"{d}/CISI.REL"):
    p = line.split()
    if len(p) >= 2:
        rel.setdefault(int(p[0]), set()).add(int(p[1]))

db = xapian.WritableDatabase(tempfile.mkdtemp(), xapian.DB_CREATE_OR_OVERWRITE)
tg = xapian.TermGenerator(); tg.set_stemmer(xapian.Stem("english"))
for doc in docs:
    x = xapian.Document(); tg.set_document(x)
    tg.index_text(doc.get("T", "") + "\n" + doc.get("W", ""))
    x.set_data(str(doc["id"])); db.add_document(x)
db.commit()
enq = xapian.Enquire(db); enq.set_weighting_scheme(xapian.BM25Weight(1.2, 0, 1, 0.75, 0.5))
qp = xapian.QueryParser(); qp.set_stemmer(xapian.Stem("english")); qp.set_stemming_strategy(xapian.QueryParser.STEM_SOME)
qp.set_default_op(xapian.Query.OP_OR)
aps, ndcgs = [], []
for q in queries:
    if q["id"] not in rel: continue
    text = re.sub(r"[^\w\s]", " ", q.get("W", "") + " " + q.get("T", ""))
    enq.set_query(qp.parse_query(text))
    ranked = [int(m.document.get_data()) for m in enq.get_mset(0, 100)]
    R = rel[q["id"]]
    hits, s = 0, 0.0
    for i, dd in enumerate(ranked):
        if dd in R: hits += 1; s += hits / (i + 1)
    aps.append(s / len(R))
    dcg = sum(1 / math.log2(i + 2) for i, dd in enumerate(ranked[:10]) if dd in R)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(10, len(R))))
    ndcgs.append(dcg / idcg)
print(json.dumps({"system": "Xapian 1.4 BM25 (k1 1.2, b 0.75, English stemming)", "queries": len(aps), "map": sum(aps) / len(aps), "ndcg10": sum(ndcgs) / len(ndcgs)}))
