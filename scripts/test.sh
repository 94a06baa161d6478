#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh) and runs every test: fast tests, then e2e with
# real nginx, iptables and nftables (e2e needs root for network namespaces).
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k golden
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
