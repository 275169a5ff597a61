#!/usr/bin/env bash
# End-to-end verification throughput through the HTTP API (docs/PERFORMANCE.md): starts a
# release server on a fresh data directory, enrolls one person from the fixture photos,
# then runs `rollcall bench --server` with a kiosk's API key.
#
#   scripts/bench-http.sh [--requests N] [--concurrency C] [--json]   # extra args go to bench
#   ROLLCALL_INFERENCE_BACKEND=tract scripts/bench-http.sh           # the pure-Rust backend
set -euo pipefail
cd "$(dirname "$0")/.."

make --quiet models fixtures
cargo build --release --quiet --bin rollcall
bin=${CARGO_TARGET_DIR:-target}/release/rollcall
data=$(mktemp -d)
port=${ROLLCALL_BENCH_PORT:-18080}
base=http://127.0.0.1:$port

ROLLCALL_DATA_DIR=$data ROLLCALL_BIND=127.0.0.1:$port ROLLCALL_MODELS_DIR=$PWD/data/models \
  ROLLCALL_ADMIN_EMAIL=admin@example.com ROLLCALL_ADMIN_PASSWORD=bench-password-1 \
  ROLLCALL_RATE_LIMIT_FACE_VERIFICATION_REQUESTS=1000000 RUST_LOG=warn "$bin" serve &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.2; done

field() { python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
token=$(curl -sf "$base/api/v1/auth/login/" -H 'content-type: application/json' \
  -d '{"email":"admin@example.com","password":"bench-password-1"}' | field access)
auth=(-H "Authorization: Bearer $token" -H 'content-type: application/json')
curl -sf "$base/api/v1/users/" "${auth[@]}" -o /dev/null -d '{"employee_id":"OBAMA","email":"obama@example.com",
  "first_name":"Barack","last_name":"Obama","role":"faculty","password":"obama-password-1"}'
uri() { printf '"data:image/jpeg;base64,%s"' "$(base64 -w0 "fixtures/images/$1")"; }
echo "{\"employee_id\":\"OBAMA\",\"images\":[$(uri obama.jpg),$(uri obama2.jpg)]}" >"$data/enroll.json"
curl -sf "$base/api/v1/face/enroll/?wait=true" "${auth[@]}" -o /dev/null -d @"$data/enroll.json"
key=$(curl -sf "$base/api/v1/auth/api-keys/" "${auth[@]}" -d '{"name":"bench","role":"student"}' | field key)
mkdir "$data/photos" && cp fixtures/images/{obama3,biden}.jpg "$data/photos/"
"$bin" bench --server "$base" --api-key "$key" --images "$data/photos" "$@"
