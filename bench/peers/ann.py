#!/usr/bin/python3
"""Peers of the vector benchmark, on the same data: hnswlib and faiss HNSW,
single-threaded, M 16, efConstruction 64, inner product on unit vectors.
Usage: ann.py DIR DIM K PEERS EF... ; DIR holds data.f32, queries.f32, truth.i32;
PEERS is a comma-separated list of hnswlib and faiss.
Prints one JSON object per line."""
import json, sys, time
import numpy as np

d, dim, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
peers = sys.argv[4].split(",")
efs = [int(x) for x in sys.argv[5:]]
data = np.fromfile(f"{d}/data.f32", dtype=np.float32).reshape(-1, dim)
queries = np.fromfile(f"{d}/queries.f32", dtype=np.float32).reshape(-1, dim)
truth = np.fromfile(f"{d}/truth.i32", dtype=np.int32).reshape(len(queries), -1)[:, :k]

def report(name, build, ef, lat, found, cpu):
    lat = np.array(lat) * 1e6
    cpu = np.array(cpu) / 1e3  # ns -> µs
    recall = np.mean([len(set(found[i]) & set(truth[i])) / k for i in range(len(queries))])
    print(json.dumps({"system": name, "build_s": build, "ef": ef, "p50_us": float(np.percentile(lat, 50)),
        "p95_us": float(np.percentile(lat, 95)), "p99_us": float(np.percentile(lat, 99)),
        "cpu_p50_us": float(np.percentile(cpu, 50)), "cpu_p95_us": float(np.percentile(cpu, 95)),
        "cpu_p99_us": float(np.percentile(cpu, 99)), "recall": float(recall)}), flush=True)

import hnswlib
p = hnswlib.Index(space="ip", dim=dim)
p.init_index(max_elements=len(data), ef_construction=64, M=16)
p.set_num_threads(1)
t = time.perf_counter(); p.add_items(data, np.arange(len(data)), num_threads=1); build = time.perf_counter() - t
for ef in efs:
    p.set_ef(ef)
    for q in queries[:50]:
        p.knn_query(q, k=k)
    lat, found, cpu = [], [], []
    for q in queries:
        c = time.thread_time_ns(); t = time.perf_counter(); lab, _ = p.knn_query(q, k=k)
        lat.append(time.perf_counter() - t); cpu.append(time.thread_time_ns() - c); found.append(lab[0])
    report("hnswlib", build, ef, lat, found, cpu)

if "faiss" not in peers:
    sys.exit(0)
import faiss
faiss.omp_set_num_threads(1)
f = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
f.hnsw.efConstruction = 64
t = time.perf_counter(); f.add(data); build = time.perf_counter() - t
for ef in efs:
    f.hnsw.efSearch = ef
    lat, found, cpu = [], [], []
    for q in queries:
        qq = q.reshape(1, -1)
        c = time.thread_time_ns(); t = time.perf_counter(); _, lab = f.search(qq, k)
        lat.append(time.perf_counter() - t); cpu.append(time.thread_time_ns() - c); found.append(lab[0])
    report("faiss HNSWFlat", build, ef, lat, found, cpu)
