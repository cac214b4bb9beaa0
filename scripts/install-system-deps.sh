#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those missing (so a second run does nothing).
#   etcd-server      cluster membership and bank metadata (tests start their own on loopback)
#   libfaiss-dev     faiss 1.7.3 static library + headers, linked into faiss-node
#   libopenblas-dev  BLAS for faiss (headers; the pthread build comes with it)
#   libopenblas0-openmp  the OpenMP build of OpenBLAS, the one faiss-node links (build-faiss-node.sh)
#   chromium         headless browser that checks the HTML report renders
#   openssl          the TLS tests make their own certificates with it
set -euo pipefail
packages=(etcd-server libfaiss-dev libopenblas-dev libopenblas0-openmp chromium patch openssl)
missing=()
for p in "${packages[@]}"; do
  # Read whole, then matched: `| grep -q` under pipefail can fail on a closed pipe.
  status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
  [[ "$status" == *"install ok installed"* ]] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-system-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# policy-rc.d keeps the package from starting a system etcd: tests and the demo start their own.
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
