#!/usr/bin/env bash
# Install the Debian packages reprshift needs, if any is missing (needs root for apt-get).
# usage: scripts/install-deps.sh [--tests | --slurm]
#   build: compiler, CMake, OpenBLAS, cJSON, cmocka, libjpeg-turbo, libpng, zlib, libzip, OpenSSL,
#          oneDNN (bf16 products on AMX-BF16 and AMD AVX512-BF16 CPUs, fp32 linear layers on AMD AVX-512:
#          docs/precision.md, docs/pipeline.md; the build works without it)
#   --tests: also chromium (test_report_chromium renders the report; only the tests need it), jq
#            (cli_steer.sh, cli_crosscoder.sh read JSON with it) and
#            python3 + python3-venv (tests/cli_python.sh: the Python package's tests in a venv;
#            `pip install .` of the Python package needs them too: docs/python.md),
#            slurm-wlm + munge (tests/cli_slurm.sh starts a one-node Slurm: docs/cluster.md)
#   --slurm: only slurm-wlm + munge
set -euo pipefail
PKGS="build-essential cmake pkg-config libopenblas-dev libopenblas-openmp-dev libcjson-dev libcmocka-dev
      libjpeg62-turbo-dev libpng-dev zlib1g-dev libzip-dev libssl-dev libdnnl-dev"
case "${1:-}" in
  --tests) PKGS="$PKGS chromium jq python3 python3-venv slurm-wlm munge" ;;
  --slurm) PKGS="slurm-wlm munge" ;;
  "") ;;
  *) echo "usage: scripts/install-deps.sh [--tests | --slurm]" >&2; exit 2 ;;
esac
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages:$missing (run: sudo apt-get install$missing)" >&2
  exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
