#!/usr/bin/env bash
# End-to-end verification throughput through the HTTP API (docs/PERFORMANCE.md): starts a
# release server on a fresh data directory, enrolls one person from the fixture photos,
# then runs `rollcall bench --server` with a kiosk's API key.
#
#   scripts/bench-http.sh [--requests N] [--concurrency C] [--json]   # extra args go to bench
#   ROLLCALL_INFERENCE_BACKEND=tract scripts/bench-http.sh           # the pure-Rust backend
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-server.sh
bench_prepare fixtures
bench_serve "${ROLLCALL_BENCH_PORT:-18080}" "$data/server.log" ROLLCALL_RATE_LIMIT_FACE_VERIFICATION_REQUESTS=1000000
bench_enroll_obama
key=$(curl -sf "$base/api/v1/auth/api-keys/" "${auth[@]}" -d '{"name":"bench","role":"student"}' | field key)
mkdir "$data/photos" && cp fixtures/images/{obama3,biden}.jpg "$data/photos/"
"$bin" bench --server "$base" --api-key "$key" --images "$data/photos" "$@"
