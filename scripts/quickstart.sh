#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), starts three small echo backends on loopback and
# runs `ingressctl run --manifests examples/quickstart` in the foreground. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
py=.venv/bin/python
$py examples/echo_server.py web-1 127.0.0.1:18081 & pids=$!
$py examples/echo_server.py web-2 127.0.0.1:18082 & pids="$pids $!"
$py examples/echo_server.py api 127.0.0.1:18083 & pids="$pids $!"
trap 'kill $pids 2>/dev/null || true' EXIT
echo "backends: web-1 :18081, web-2 :18082, api :18083"
echo "try:  curl -H 'Host: web.example.com' http://127.0.0.1:8080/   (more in examples/quickstart/ingress.yaml)"
# nginx listens on 8443, not 443: redirects to HTTPS must name that port here.
.venv/bin/ingressctl run --manifests examples/quickstart --redirect-https-port 8443 "$@"
