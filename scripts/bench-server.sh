# Sourced by the bench scripts: a release server on a fresh data directory, signed in as
# its first admin, stopped (with anything in bench_pids) and its data removed on exit.
#
#   bench_prepare [make targets...]   builds the server (ROLLCALL_BIN=path uses that binary)
#                                     and makes $data, the data directory
#   bench_serve PORT LOG [VAR=value...]  starts it with those settings, waits until it is
#                                     ready; sets $base, $server, $token and $auth (curl args);
#                                     the command is $serve_command (default: serve)
#   bench_enroll_obama                OBAMA enrolled from two fixture photos
#   field NAME                        prints one field of the JSON object on stdin

bench_pids=()

bench_prepare() {
  make --quiet models "$@"
  if [ -z "${ROLLCALL_BIN:-}" ]; then
    cargo build --release --quiet --bin rollcall
    bin=${CARGO_TARGET_DIR:-target}/release/rollcall
  else
    bin=$ROLLCALL_BIN
  fi
  data=$(mktemp -d)
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for pid in ${server:-} "${bench_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$data"
}

bench_serve() {
  local port=$1 log=$2
  shift 2
  base=http://127.0.0.1:$port
  env ROLLCALL_DATA_DIR="$data" ROLLCALL_BIND="127.0.0.1:$port" ROLLCALL_MODELS_DIR="$PWD/data/models" \
    ROLLCALL_ADMIN_EMAIL=admin@example.com ROLLCALL_ADMIN_PASSWORD=bench-password-1 RUST_LOG=warn \
    "$@" "$bin" ${serve_command:-serve} >"$log" 2>&1 &
  server=$!
  for _ in $(seq 300); do
    curl -sf "$base/readyz" >/dev/null && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
  done
  curl -sf "$base/readyz" >/dev/null || { echo "the server did not start: see $log" >&2; exit 1; }
  token=$(curl -sf "$base/api/v1/auth/login/" -H 'content-type: application/json' \
    -d '{"email":"admin@example.com","password":"bench-password-1"}' | field access)
  auth=(-H "Authorization: Bearer $token" -H 'content-type: application/json')
}

field() { python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }

bench_enroll_obama() {
  curl -sf "$base/api/v1/users/" "${auth[@]}" -o /dev/null -d '{"employee_id":"OBAMA",
    "email":"obama@example.com","first_name":"Barack","last_name":"Obama","role":"faculty",
    "password":"obama-password-1"}'
  uri() { printf '"data:image/jpeg;base64,%s"' "$(base64 -w0 "fixtures/images/$1")"; }
  echo "{\"employee_id\":\"OBAMA\",\"images\":[$(uri obama.jpg),$(uri obama2.jpg)]}" >"$data/enroll.json"
  curl -sf "$base/api/v1/face/enroll/?wait=true" "${auth[@]}" -o /dev/null -d @"$data/enroll.json"
}
