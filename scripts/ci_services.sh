#!/usr/bin/env bash
# As root on a CI machine: the system packages and services the test suite uses when present.
# Each is optional for scripts/test.sh (a missing one is a skip line), so a failure here warns only.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "ci_services: not root, nothing installed"; exit 0; fi
export DEBIAN_FRONTEND=noninteractive
apt_packages=(pocketsphinx-testdata)
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null || echo "ci_services: apt-get install ${missing[*]} failed"
fi
# a one-node SLURM cluster for the real-SLURM tier (tests/launch/test_slurm_real.py)
bash scripts/slurm_up.sh || echo "ci_services: no SLURM cluster; the real-SLURM tests will skip"
