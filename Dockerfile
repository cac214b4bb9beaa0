# syntax=docker/dockerfile:1
# One image for both roles of a SparsePrintInspector cluster: `spi serve` (gateway) and `spi shard`
# (bank shard); the Kubernetes manifests in k8s/ choose the role with the container args.
#   docker build -t registry.example/spi:0.1.0 .
# Not built by this repository's tests or CI: there is no container engine there. The manifest tests
# (test/unit/k8s) only check that USER, EXPOSE and ENTRYPOINT agree with the manifests.
# amd64 only: scripts/build-faiss-node.sh links Debian's x86_64 libfaiss.a.
ARG NODE_VERSION=20.19.5

# ---- build: native faiss-node, ONNX backbones, compiled TypeScript ---------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 patch libfaiss-dev libopenblas-dev libopenblas0-openmp \
 && rm -rf /var/lib/apt/lists/*
# build-faiss-node.sh passes --nodedir=/usr (Debian's nodejs layout); this image keeps node's headers
# under /usr/local.
RUN ln -s /usr/local/include/node /usr/include/node
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: faiss-node's own install script downloads binaries; it is built below instead.
# The stamp tells the Makefile that node_modules is installed.
RUN npm ci --ignore-scripts --no-audit --no-fund && touch node_modules/.spi-npm-ci
COPY scripts/ scripts/
RUN bash scripts/build-faiss-node.sh
COPY . .
# The ImageNet backbones converted to ONNX under build/models, then dist/ from the TypeScript.
RUN make models && npm run build
# Runtime dependencies only (faiss-node keeps the binary built above).
RUN npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime ---------------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim
# faiss-node links OpenBLAS (its OpenMP build, by path) and GNU OpenMP dynamically (libfaiss itself
# is static).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopenblas0-openmp libgomp1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules/
COPY --from=build /app/dist dist/
COPY --from=build /app/proto proto/
COPY --from=build /app/bin bin/
COPY --from=build /app/build/models build/models/
ENV NODE_ENV=production
# glibc: large buffers (images, embeddings) unmapped when freed, two arenas; else resident memory
# ratchets up after every spike and stays (services/local/processes.ts NATIVE_MEMORY_ENV, make soak).
# Shards and gateways add MALLOC_TOP_PAD_ (k8s/base/*.yaml): without it a request's large scratch
# is returned to the kernel and faulted in again (a shard's search 4x, a gateway's sheet 2x slower).
ENV MALLOC_MMAP_THRESHOLD_=131072 MALLOC_ARENA_MAX=2
# Numeric, so Kubernetes' runAsNonRoot can verify it; the manifests run as the same uid.
USER 10001:10001
# gRPC of a gateway; metrics/probes of a gateway and of a shard (a shard's gRPC port is set by flag).
EXPOSE 50051 9464 9465
# Node runs as PID 1: both roles handle SIGTERM themselves (readiness off, drain, exit 0).
ENTRYPOINT ["node", "bin/spi"]
CMD ["help"]
