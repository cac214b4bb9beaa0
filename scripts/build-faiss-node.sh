#!/usr/bin/env bash
# Builds faiss-node (installed from its npm tarball by `npm ci --ignore-scripts`) against Debian's
# libfaiss-dev (faiss 1.7.3, static) and libopenblas-dev with node-gyp. Its own install script would
# download a prebuilt binary or clone faiss, neither of which is possible here.
# Our patch (scripts/faiss-node-0.5.1.patch) fixes idx_t for faiss 1.7.3 and adds Float32Array
# add/search that read and write the typed arrays in place (no copies), an async search on the libuv
# pool (also for float16 queries, widened there: searchHalfAsync; and float32 narrowed to halves for
# the gateway's side of the hop: toHalves), an exact search of flat L2
# indexes by blocks (setBlockedFlatSearch turns it off for comparisons; blasCore names the kernels OpenBLAS chose), a search of listed rows gathered
# natively (searchRows) and faiss' pairwise_L2sqr (pairwiseL2) for the coreset's greedy, a BLAS
# matrix product for the random projections (matmul), setNprobe
# for IVF indexes, and setParameter for any search-time parameter faiss' ParameterSpace knows
# (efSearch of HNSW indexes).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
pkg="$root/node_modules/faiss-node"
patch_file="$here/faiss-node-0.5.1.patch"
stamp="$pkg/build/Release/.spi-build-stamp"

fail() { echo "build-faiss-node: $*" >&2; exit 1; }

[ -d "$pkg" ] || fail "node_modules/faiss-node is missing: run 'npm ci --ignore-scripts' first."
version="$(node -p "require('$pkg/package.json').version")"
[ "$version" = "0.5.1" ] || fail "expected faiss-node 0.5.1, found $version (the patch is written for 0.5.1)."
[ -f /usr/include/faiss/IndexFlat.h ] || fail "faiss headers not found: install libfaiss-dev (make setup does)."
[ -f /usr/lib/x86_64-linux-gnu/libfaiss.a ] || [ -f /usr/lib/libfaiss.a ] || fail "libfaiss.a not found: install libfaiss-dev."
ls /usr/lib/*/libopenblas.so* >/dev/null 2>&1 || fail "libopenblas not found: install libopenblas-dev."
# The OpenMP build of OpenBLAS, linked by path (not through Debian's libopenblas.so.0 alternative,
# which points at the pthread build): faiss' loops and OpenBLAS then share one OpenMP thread pool,
# and a GEMM called inside a parallel region runs on its own thread (the exact search's blocks).
openmp_blas="/usr/lib/$(gcc -print-multiarch)/openblas-openmp"
[ -f "$openmp_blas/libopenblas.so.0" ] || fail "OpenBLAS' OpenMP build not found in $openmp_blas: install libopenblas0-openmp."

want="$(sha256sum "$patch_file" "$0" | sha256sum | cut -d' ' -f1)"
if [ -f "$pkg/build/Release/faiss-node.node" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "build-faiss-node: up to date"
  exit 0
fi

cd "$pkg"
# Start from the pristine tarball source so a re-run never applies the patch twice.
if [ ! -f src/faiss.cc.orig-spi ]; then cp src/faiss.cc src/faiss.cc.orig-spi; fi
cp src/faiss.cc.orig-spi src/faiss.cc
patch -p1 --forward --quiet < "$patch_file" || fail "patch did not apply to faiss-node $version."

cat > binding.gyp <<GYP
{
  "targets": [{
    "target_name": "faiss-node",
    "sources": ["src/faiss.cc"],
    "include_dirs": ["<!(node -p \\"require('node-addon-api').include_dir\\")", "/usr/include"],
    "defines": ["NAPI_VERSION=6", "NAPI_DISABLE_CPP_EXCEPTIONS"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-fopenmp", "-O2"],
    "libraries": ["-lfaiss", "$openmp_blas/libopenblas.so.0", "-lgomp", "-Wl,-rpath,$openmp_blas"]
  }]
}
GYP

gyp="$root/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$gyp" ] || fail "node-gyp is missing from node_modules (it is a devDependency)."
node "$gyp" rebuild --nodedir=/usr --jobs="$(nproc)" || fail "node-gyp failed; see the compiler output above."
node -e "const f=require('$pkg'); const i=new f.IndexFlatL2(2); i.addBuffer(new Float32Array([0,0,1,1])); const r=i.searchBuffer(new Float32Array([1,1]),1); if(r.labels[0]!==1) process.exit(1)" \
  || fail "the built module does not load or search correctly."
# ldd's output is read whole first: `ldd | grep -q` under pipefail fails whenever grep's early exit
# leaves ldd writing into a closed pipe (a clean-clone CI run failed here once, on a good build).
linked="$(ldd build/Release/faiss-node.node)"
grep -q "openblas-openmp/libopenblas.so.0" <<<"$linked" \
  || fail "the built module does not load OpenBLAS' OpenMP build (ldd build/Release/faiss-node.node)."
echo "$want" > "$stamp"
echo "build-faiss-node: built $pkg/build/Release/faiss-node.node"
