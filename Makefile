# SparsePrintInspector. Every target installs what it needs, so `make demo` and `make test` work as
# the first command on a fresh Debian machine with Node 20, npm, make, g++ and python3.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

NODE_STAMP   := node_modules/.spi-npm-ci
FAISS_NODE   := node_modules/faiss-node/build/Release/faiss-node.node
SYSTEM_STAMP := build/.system-deps
MODELS_STAMP := build/models/.built
TSX          := node --import tsx
MOCHA        := node_modules/.bin/mocha --config .mocharc.json
STATS        := build/test-stats

.PHONY: help setup models build lint typecheck test test-unit test-integration demo eval bench bench-memory soak quantize docs clean

help:
	@echo "make demo   - bring up an embedded cluster, build a bank, inspect, rotate, write a report"
	@echo "make test   - lint, type-check, unit and integration tests (installs what it needs)"
	@echo "make setup  - install Debian packages, npm packages, native builds and models (idempotent)"
	@echo "make models - convert the ImageNet backbones to ONNX under build/models"
	@echo "make eval   - full evaluation on ../shared/data (results in eval-results/)"
	@echo "make bench  - speed figures (results in bench/results.json and bench/results.md)"
	@echo "make bench-memory - fits of 500 and 5,000 synthetic 512 px prints under one --max-memory (bench/memory-results.json/.md; ~25 min on 2 cores)"
	@echo "make soak   - fault drill on a local cluster under load, SOAK_MINUTES (default 10; soak-results.json/.md)"
	@echo "make build  - compile TypeScript to dist/"
	@echo "make docs   - regenerate docs/API.md from the proto"
	@echo "make quantize - build the INT8 MobileNetV2 backbone"
	@echo "make clean  - remove build outputs"

setup: $(SYSTEM_STAMP) $(NODE_STAMP) $(FAISS_NODE) $(MODELS_STAMP)

# Debian packages; the script installs only the missing ones.
$(SYSTEM_STAMP): scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	@mkdir -p build && touch $@

# --ignore-scripts: faiss-node's install script downloads binaries; we build it ourselves below.
$(NODE_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

$(FAISS_NODE): $(NODE_STAMP) $(SYSTEM_STAMP) scripts/build-faiss-node.sh scripts/faiss-node-0.5.1.patch
	bash scripts/build-faiss-node.sh
	@touch $@

$(MODELS_STAMP): $(NODE_STAMP) $(wildcard models/*.ts models/**/*.ts models/specs/*.json)
	$(TSX) models/build.ts --out build/models
	@touch $@

models: $(NODE_STAMP)
	$(TSX) models/build.ts --out build/models
	@touch $(MODELS_STAMP)

build: setup
	node_modules/.bin/tsc -p tsconfig.json

lint: $(NODE_STAMP)
	node_modules/.bin/eslint .
	node_modules/.bin/prettier --check .

typecheck: $(NODE_STAMP)
	node_modules/.bin/tsc -p tsconfig.json --noEmit

# The last line is the whole run's summary, counted from mocha's own results.
test: setup
	@rm -rf $(STATS) && mkdir -p $(STATS)
	$(MAKE) --no-print-directory lint typecheck
	SPI_TEST_STATS=$(STATS)/unit.json $(MOCHA) --reporter test/helpers/summary-reporter.cjs 'test/unit/**/*.test.ts' \
	  || touch $(STATS)/failed
	SPI_TEST_STATS=$(STATS)/integration.json $(MOCHA) --reporter test/helpers/summary-reporter.cjs 'test/integration/**/*.test.ts' \
	  || touch $(STATS)/failed
	@node test/helpers/print-summary.cjs $(STATS)

test-unit: setup
	$(MOCHA) 'test/unit/**/*.test.ts'

test-integration: setup
	$(MOCHA) 'test/integration/**/*.test.ts'

demo: setup
	$(TSX) services/cli/spi.ts demo --out demo-out

eval: setup
	$(TSX) services/cli/spi.ts eval-suite --out eval-results

bench: setup
	$(TSX) bench/run.ts --out bench

# Peak RSS and time per image of bounded-memory fits (#18); makes the 5,000 prints once (build/bench-memory).
bench-memory: setup
	$(TSX) bench/fit-memory.ts --out bench

# Bounded: SOAK_MINUTES of load and faults (default 10) plus about a minute of set-up.
SOAK_MINUTES ?= 10
soak: setup
	SOAK_MINUTES=$(SOAK_MINUTES) $(TSX) bench/soak/run.ts

# INT8 backbone, calibrated on random-normal inputs (the seeds' finding; `spi quantize --help`).
quantize: setup
	$(TSX) services/cli/spi.ts quantize --model mobilenet_v2-imagenet --out build/models/mobilenet_v2-imagenet-int8-randn --calibration randn

# API reference from the proto comments.
docs: $(NODE_STAMP)
	$(TSX) scripts/gen-api-docs.ts

clean:
	rm -rf dist build/models build/test-stats build/bench-memory demo-out eval-results bench/results.json bench/results.md bench/memory-results.json bench/memory-results.md soak-results.json soak-results.md
