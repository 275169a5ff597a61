#!/usr/bin/env bash
# Verification throughput of a scaled-out deployment (docs/PERFORMANCE.md, "Scale-out"): one
# API instance (`rollcall serve --no-workers`) with 1, then 2, worker processes
# (`rollcall worker`) on PostgreSQL and RabbitMQ, measured through the HTTP API by
# `rollcall bench --server`, beside one `rollcall serve` (API and workers in one process) on
# the same database. Each run has a schema and a queue prefix of its own.
#
#   scripts/bench-scale-out.sh [--requests N] [--concurrency C]     # extra args go to bench
#   PG=postgres://… AMQP=amqp://… scripts/bench-scale-out.sh
set -euo pipefail
cd "$(dirname "$0")/.."

pg=${PG:-postgres://postgres@127.0.0.1:5432/test}
amqp=${AMQP:-amqp://guest:guest@127.0.0.1:5672/%2f}
source scripts/bench-server.sh
bench_prepare fixtures
mkdir "$data/photos" && cp fixtures/images/{obama3,biden}.jpg "$data/photos/"
# Every process of a deployment shares the data key (a base64 AES-256 key).
data_key=$(python3 -c 'import os, base64; print(base64.b64encode(os.urandom(32)).decode())')

# Runs one deployment: $1 = label, $2 = worker processes (0: one `serve` does it all),
# $3 = task workers per process; prints label, verifications/s, p50 and p99 latency, errors.
measure() {
  local label=$1 processes=$2 threads=$3 schema
  schema=bench_$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')
  psql "$pg" -qc "CREATE SCHEMA $schema"
  local env=(ROLLCALL_DATABASE_URL="$pg?options=-c%20search_path%3D$schema" ROLLCALL_DATA_KEY="$data_key"
    ROLLCALL_TASK_WORKERS="$threads" ROLLCALL_RATE_LIMIT_FACE_VERIFICATION_REQUESTS=1000000
    ROLLCALL_MAX_QUEUE_WAIT_SECS=600)
  [ "$processes" -gt 0 ] && env+=(ROLLCALL_AMQP_URL="$amqp" ROLLCALL_AMQP_QUEUE_PREFIX="$schema.")
  local pids=()
  for n in $(seq "$processes"); do
    env ROLLCALL_DATA_DIR="$data/w$n" ROLLCALL_BIND="127.0.0.1:$((18190 + n))" ROLLCALL_MODELS_DIR="$PWD/data/models" \
      RUST_LOG=warn "${env[@]}" "$bin" worker >"$data/worker-$label-$n.log" 2>&1 &
    pids+=($!)
  done
  bench_pids+=("${pids[@]}")
  serve_command=$([ "$processes" -gt 0 ] && echo "serve --no-workers" || echo serve)
  bench_serve 18180 "$data/api-$label.log" "${env[@]}"
  for n in $(seq "$processes"); do
    for _ in $(seq 300); do curl -sf "127.0.0.1:$((18190 + n))/readyz" >/dev/null && break; sleep 0.2; done
  done
  bench_enroll_obama
  local key
  key=$(curl -sf "$base/api/v1/auth/api-keys/" "${auth[@]}" -d '{"name":"bench","role":"student"}' | field key)
  "$bin" bench --server "$base" --api-key "$key" --images "$data/photos" --json "${bench_args[@]}" >"$data/$label.json"
  python3 - "$label" "$data/$label.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
l = r["latency_ms"]
print(f"{sys.argv[1]}\t{r['verifications_per_second']:.2f}\t{l['p50']:.0f}\t{l['p99']:.0f}\t{sum(r['errors'].values())}")
PY
  kill "$server" "${pids[@]}" 2>/dev/null || true
  wait "$server" "${pids[@]}" 2>/dev/null || true
  server=
  PGOPTIONS=--client-min-messages=warning psql "$pg" -qc "DROP SCHEMA $schema CASCADE"
}

bench_args=("$@")
printf 'deployment\tverifications/s\tp50 ms\tp99 ms\terrors\n'
measure "serve (API + 2 workers, one process)" 0 2
measure "API + 1 worker process (1 thread)" 1 1
measure "API + 2 worker processes (1 thread each)" 2 1
measure "API + 1 worker process (2 threads)" 1 2
