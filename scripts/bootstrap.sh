#!/usr/bin/env bash
# Make a fresh machine ready: uv, a JDK and Maven (for the local Kafka broker), etcd and openssl (for the local
# Kubernetes API server of tests/cluster, which scripts/kube/build.sh builds with Go), redis-server (the cluster
# feature store's tests), and the project's venv.
# Idempotent and quiet when everything is already there; `make demo` and `make test` run it first.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bootstrap] %s\n' "$*" >&2; }

if ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then
    say "installing uv with pip"
    python3 -m pip install --quiet uv
fi

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)  # backs the local Kubernetes API server (tests/cluster)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)  # the cluster feature store's online store (tests)
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        say "please install: ${missing[*]} (needed for the local Kafka broker, Kubernetes API server and Redis)"
        exit 1
    fi
    say "installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if command -v uv >/dev/null 2>&1; then uv=(uv); else uv=(python3 -m uv); fi
"${uv[@]}" sync --frozen --quiet
