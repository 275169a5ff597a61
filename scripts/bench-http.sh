#!/usr/bin/env bash
# End-to-end verification throughput through the HTTP API (docs/PERFORMANCE.md): starts a
# release server on a fresh data directory, enrolls one person from the fixture photos,
# then runs `rollcall bench --server` with a kiosk's API key.
#
#   scripts/bench-http.sh [--requests N] [--concurrency C] [--json]   # extra args go to bench
#   ROLLCALL_INFERENCE_BACKEND=tract scripts/bench-http.sh           # the pure-Rust backend
#
# Then, once the server has stopped, the engine alone on the same photos with as many
# threads as the server had task workers (`rollcall bench --images`, anti-spoofing on as
# in the server): the HTTP path's share of the engine's throughput.
# ROLLCALL_BENCH_ENGINE_ITERATIONS (default 100 passes over the two photos; 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/bench-server.sh
bench_prepare fixtures
bench_serve "${ROLLCALL_BENCH_PORT:-18080}" "$data/server.log" ROLLCALL_RATE_LIMIT_FACE_VERIFICATION_REQUESTS=1000000
bench_enroll_obama
key=$(curl -sf "$base/api/v1/auth/api-keys/" "${auth[@]}" -d '{"name":"bench","role":"student"}' | field key)
mkdir "$data/photos" && cp fixtures/images/{obama3,biden}.jpg "$data/photos/"
"$bin" bench --server "$base" --api-key "$key" --images "$data/photos" "$@"
engine_iterations=${ROLLCALL_BENCH_ENGINE_ITERATIONS:-100}
[ "$engine_iterations" -gt 0 ] || exit 0
workers=$(curl -sf "$base/api/v1/system/health/" "${auth[@]}" \
  | python3 -c "import json, sys; print(json.load(sys.stdin)['services']['ai_workers']['configured_workers'])")
kill "$server" && wait "$server" 2>/dev/null || true
server=
echo "engine alone, same photos, $workers thread(s):"
ROLLCALL_MODELS_DIR="$PWD/data/models" "$bin" bench --images "$data/photos" --threads "$workers" \
  --iterations "$engine_iterations"
