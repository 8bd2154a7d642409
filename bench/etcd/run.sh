#!/usr/bin/env bash
# tenure against etcd 3.4, side by side, on this machine, loopback only (BENCHMARKS.md, "The
# real service"): three local agents of each, each its own process, fsync on, no TLS on either
# side, 16 clients, the same workload (writes, linearizable reads, lock acquire+release
# cycles), release builds.
#   bench/etcd/run.sh [SECONDS_PER_PHASE]
# Installs etcd-server and protobuf-compiler with apt-get if they are missing. Every process
# it starts is stopped when it ends, also on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
S=${1:-5}
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$2"; }; }
need etcd etcd-server
need protoc protobuf-compiler
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
cluster="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$dir/e$i" \
    --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
    --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token bench \
    >"$dir/e$i.log" 2>&1 &
  pids+=($!)
done
endpoints="http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793"
for _ in $(seq 1 100); do
  etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done
echo "== etcd $(etcd --version | head -1 | awk '{print $3}')"
cargo run -q --release --manifest-path bench/etcd/Cargo.toml -- --endpoints "$endpoints" --clients 16 --seconds "$S"
cargo build -q --release --bin tenure
peers="127.0.0.1:27001,127.0.0.1:27002,127.0.0.1:27003"
for i in 1 2 3; do
  target/release/tenure agent --id "$i" --peers "$peers" --plaintext --cluster bench \
    --data "$dir/t$i" >"$dir/t$i.log" 2>&1 &
  pids+=($!)
done
url="tenure://$peers?cluster=bench&plaintext"
for _ in $(seq 1 100); do
  target/release/tenure status "$url" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "== tenure (three tenure agent processes)"
target/release/tenure load "$url" --clients 16 --seconds "$S"
