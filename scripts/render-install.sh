#!/usr/bin/env bash
# Regenerate deploy/install.yaml: the deployment-loadbalancer overlay, rendered, for
# `kubectl apply -f` without kustomize. tests/test_deploy.py fails when it is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
kubectl=kubectl
[ -x .venv/bin/kubectl ] && kubectl=.venv/bin/kubectl  # the one scripts/setup.sh provides, if any
{
  echo "# ingressctl, rendered from deploy/overlays/deployment-loadbalancer by scripts/render-install.sh;"
  echo "# do not edit (edit the kustomize tree and rerun the script). Apply with:"
  echo "#   kubectl apply -f deploy/install.yaml"
  echo "# Image ingressctl:0.1.0 is built from the Dockerfile; push it to your registry and edit"
  echo "# the image fields, or render the overlay with 'kustomize edit set image'."
  "$kubectl" kustomize deploy/overlays/deployment-loadbalancer
} > deploy/install.yaml.tmp
mv deploy/install.yaml.tmp deploy/install.yaml
