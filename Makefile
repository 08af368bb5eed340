# Sostenuto — the two commands:
#   make run    install what is missing, start PostgreSQL + pgvector and a node on :8080
#   make test   install what is missing, start the test cluster, run every test
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
# The vector index's fine-code kernel (index/vector/dot8_simd.go) is written
# with the standard library's simd/archsimd, which Go 1.26 builds only under
# this experiment; built without it the index keeps no fine codes and expands
# on exact distances instead (same answers, slower). `make test` runs the
# vector package both ways.
export GOEXPERIMENT := simd

GO        ?= go
BIN       := bin/sostenuto
EDGE_BIN  := bin/sostenuto-edge
EDGE_LISTEN ?= :8090
WORKER_PORT ?= 8787
RUN_DIR   := .data/run
RUN_PORT  ?= 5433
TEST_PORT ?= 5434
LISTEN    ?= :8080
GOFILES   := $(shell find . -name '*.go' -not -path './.data/*' 2>/dev/null) $(wildcard migrations/*.sql server/*.json) go.mod go.sum

.PHONY: run stop clean test deps build vet fmt logs pg-run pg-test tools bench-cluster edge bench-edge bench-faults fuzz worker-deps worker-build edge-worker bench-worker

## build: compile the node binary into bin/
build: $(BIN)

$(BIN): $(GOFILES)
	@mkdir -p bin
	$(GO) build -o $(BIN) ./cmd/sostenuto

## deps: install PostgreSQL 15 and pgvector 0.8.0 when missing (Debian 12)
deps:
	@scripts/deps.sh

pg-run: deps
	@scripts/pg.sh up run $(RUN_PORT)

pg-test: deps
	@scripts/pg.sh up test $(TEST_PORT)

# A real S3-compatible server for the tests (Apache-2.0), pinned.
VERSITYGW_VERSION := v1.8.0
VERSITYGW := .data/tools/versitygw
$(VERSITYGW):
	@echo "installing versitygw $(VERSITYGW_VERSION) (a few minutes, once)"
	@mkdir -p .data/tools
	GOBIN=$(CURDIR)/.data/tools $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

tools: $(VERSITYGW)
	@scripts/deps.sh test-tools

## run: start the local cluster and a node on $(LISTEN) in the background;
## returns once the node answers /api/ready. A second run restarts the node.
run: pg-run build
	@scripts/node.sh restart $(LISTEN)

## edge: start sostenuto-edge on $(EDGE_LISTEN) in front of the `make run`
## node (run `make run` first); a second call restarts it.
edge: $(EDGE_BIN)
	@scripts/edge.sh restart $(EDGE_LISTEN) http://127.0.0.1$(LISTEN)

## worker-deps: Node 22, workerd, miniflare and wrangler for the Worker,
## pinned in edge/worker/package-lock.json, from npm
worker-deps:
	@scripts/deps.sh worker

## worker-build: the rules compiled to Wasm for the Worker (edge/worker/build)
worker-build:
	@scripts/edge-worker.sh build

## edge-worker: the Worker under `wrangler dev` on :8787 in front of the
## `make run` node, with local R2 filled from the node's blob store
edge-worker: worker-deps worker-build
	@scripts/edge-worker.sh dev $(WORKER_PORT) http://127.0.0.1$(LISTEN)

$(EDGE_BIN): $(GOFILES)
	@mkdir -p bin
	$(GO) build -o $(EDGE_BIN) ./cmd/sostenuto-edge

## logs: follow the node's log
logs:
	@tail -n 100 -f $(RUN_DIR)/node.log

## stop: stop the node and both PostgreSQL clusters
stop:
	@scripts/edge.sh stop
	@scripts/edge-worker.sh stop
	@scripts/node.sh stop
	@scripts/pg.sh down run
	@scripts/pg.sh down test

## clean: stop everything and delete all local state (clusters, blobs, keys, bin; keeps .data/tools)
clean:
	@scripts/edge.sh stop
	@scripts/edge-worker.sh stop
	@scripts/node.sh stop
	@scripts/pg.sh destroy run
	@scripts/pg.sh destroy test
	rm -rf .data/run .data/test bin

## test: vet, then every test with the race detector against a real PostgreSQL
## (the Worker's tests run it in Miniflare: edge/conformance, server/worker_test.go)
test: pg-test tools worker-deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	SOSTENUTO_TEST_DATABASE_URL_FILE=$(CURDIR)/.data/test/database_url SOSTENUTO_TEST_VERSITYGW=$(CURDIR)/$(VERSITYGW) \
		$(GO) test -race -count=1 -timeout 30m ./...
	GOEXPERIMENT= $(GO) test -count=1 ./index/vector

fmt:
	gofmt -w $$(git ls-files '*.go')

# Replication at 100k chunks on three processes (prints the figures).
## fuzz: every fuzz target for FUZZTIME (30s) each; `make test` runs their
## seed corpora (testdata/fuzz and the seeds in the code)
fuzz:
	@FUZZTIME=$(or $(FUZZTIME),30s) scripts/fuzz.sh $(FUZZ_FLAGS)

## bench-edge: what the edge adds and saves (latency, streaming, answer cache)
bench-edge: pg-test tools
	SOSTENUTO_TEST_DATABASE_URL_FILE=$(CURDIR)/.data/test/database_url SOSTENUTO_TEST_VERSITYGW=$(CURDIR)/$(VERSITYGW) \
		$(GO) test -count=1 -run '^$$' -bench Edge -benchtime 1x -timeout 30m ./bench

## bench-worker: the Worker (in workerd) against the Go edge and the node:
## added latency and PDF throughput
bench-worker: pg-test tools worker-deps
	SOSTENUTO_TEST_DATABASE_URL_FILE=$(CURDIR)/.data/test/database_url SOSTENUTO_TEST_VERSITYGW=$(CURDIR)/$(VERSITYGW) \
		$(GO) test -count=1 -run '^$$' -bench EdgeWorker -benchtime 1x -timeout 30m ./bench

## bench-faults: 200 users/s through the edge to three nodes while
## PostgreSQL restarts and the Raft leader is killed (about 3 minutes)
bench-faults: pg-test
	SOSTENUTO_TEST_DATABASE_URL_FILE=$(CURDIR)/.data/test/database_url \
		$(GO) test -count=1 -run '^$$' -bench LoadUnderFaults -benchtime 1x -timeout 30m ./bench

bench-cluster: pg-test
	SOSTENUTO_TEST_DATABASE_URL_FILE=$(CURDIR)/.data/test/database_url SOSTENUTO_BENCH_CLUSTER=1 \
		$(GO) test -count=1 -run TestClusterBench -v -timeout 60m ./cmd/sostenuto
