#!/usr/bin/env bash
# What a large gallery costs in memory (docs/PERFORMANCE.md, "Memory by enrolled people"):
# for each size, a release `rollcall serve` on a fresh SQLite data directory holding that
# many people, each enrolled with a random face template (`rollcall demo-data --faces`),
# answers a few verifications (so that the inference sessions have allocated what they
# keep), then its resident memory (VmRSS) and peak (VmHWM) are read from /proc.
#
#   scripts/bench-memory.sh [--people "0 10000 100000"] [--verifications 4]
#
# ROLLCALL_BIN=path uses that server binary instead of building one; ROLLCALL_BENCH_PORT
# (18091) moves the port.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes="0 10000 100000"
verifications=4
while [ $# -gt 0 ]; do
  case $1 in
    --people) sizes=$2 ;;
    --verifications) verifications=$2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done

source scripts/bench-server.sh
bench_prepare fixtures
port=${ROLLCALL_BENCH_PORT:-18091}
status_kb() { awk -v key="$1:" '$1 == key { print $2 }' "/proc/$server/status"; }

echo "| enrolled people | index load (server start to ready) | RSS | peak RSS |"
echo "|---|---|---|---|"
for people in $sizes; do
  rm -rf "$data" && mkdir -p "$data"
  if [ "$people" -gt 0 ]; then
    ROLLCALL_DATA_DIR="$data" RUST_LOG=warn "$bin" demo-data --people "$people" --days 1 --faces >&2
  fi
  started=$(date +%s.%N)
  bench_serve "$port" "$data/server.log"
  ready=$(date +%s.%N)
  printf '{"image":"data:image/jpeg;base64,%s"}' "$(base64 -w0 fixtures/images/obama3.jpg)" >"$data/verify.json"
  for _ in $(seq "$verifications"); do
    curl -sf "$base/api/v1/face/verify/?wait=true" "${auth[@]}" -d @"$data/verify.json" -o /dev/null
  done
  rss=$(status_kb VmRSS)
  hwm=$(status_kb VmHWM)
  awk -v n="$people" -v s="$started" -v r="$ready" -v rss="$rss" -v hwm="$hwm" \
    'BEGIN { printf "| %d | %.1f s | %.0f MB | %.0f MB |\n", n, r - s, rss / 1024, hwm / 1024 }'
  kill "$server" && wait "$server" 2>/dev/null || true
  server=
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
