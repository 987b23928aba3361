#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests: both overlays render with plain
# `kubectl kustomize`, and every rendered object passes `kubernetes-validate --strict` (the
# Kubernetes OpenAPI schemas; unknown fields are errors) for K8S_VERSION. The
# monitoring.coreos.com kinds, which it has no schema for, go to check-monitoring-crds.py when
# its models are installed. No cluster, no network.
#
#   pip install kubernetes-validate cloudcoil-models-prometheus-operator
#   deploy/kubernetes/validate.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

version=${K8S_VERSION:-1.30.0}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for overlay in dev production; do
  kubectl kustomize "deploy/kubernetes/overlays/$overlay" >"$out/$overlay.yaml"
  objects=$(grep -c '^kind: ' "$out/$overlay.yaml")
  # kubernetes-validate warns (exit 0) on a kind it has no schema for: only the Prometheus
  # Operator's may be unknown.
  if ! kubernetes-validate --strict --quiet -k "$version" "$out/$overlay.yaml" >"$out/$overlay.txt"; then
    cat "$out/$overlay.txt"
    exit 1
  fi
  if grep -v 'api version monitoring.coreos.com/' "$out/$overlay.txt" | grep -q .; then
    cat "$out/$overlay.txt"
    exit 1
  fi
  echo "$overlay: $objects objects rendered, valid against Kubernetes $version"
  if grep -q '^apiVersion: monitoring.coreos.com/' "$out/$overlay.yaml"; then
    if python3 -c 'import cloudcoil.models.prometheus_operator' 2>/dev/null; then
      python3 deploy/kubernetes/check-monitoring-crds.py <"$out/$overlay.yaml"
    else
      echo "$overlay: monitoring.coreos.com objects not checked (pip install cloudcoil-models-prometheus-operator)"
    fi
  fi
done
