#!/usr/bin/env bash
# Attendance read paths at scale (docs/PERFORMANCE.md): fills a fresh database with
# `rollcall demo-data`, starts a release server on it and times the logs listing (first
# page, a deep page), summaries and the JSON report. Each figure is the median of 5 runs
# of curl's total time, client and server on this machine.
#
#   scripts/bench-attendance.sh PEOPLE DAYS                  # SQLite in a temporary data dir
#   scripts/bench-attendance.sh PEOPLE DAYS postgres://postgres@127.0.0.1:5432/rollcall_bench
#     (the PostgreSQL database is dropped and created afresh)
set -euo pipefail
cd "$(dirname "$0")/.."
people=${1:?people}; days=${2:?days}; url=${3:-}

source scripts/bench-server.sh
bench_prepare
if [ -n "$url" ]; then
  name=${url##*/}; server_url=${url%/*}/postgres
  psql -q "$server_url" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name"
  export ROLLCALL_DATABASE_URL=$url
fi

ROLLCALL_DATA_DIR=$data "$bin" demo-data --people "$people" --days "$days"
bench_serve "${ROLLCALL_BENCH_PORT:-18081}" "$data/server.log" \
  ROLLCALL_RATE_LIMIT_REPORTS_REQUESTS=1000000 ROLLCALL_RATE_LIMIT_GENERAL_REQUESTS=1000000
count=$(curl -sf "$base/api/v1/attendance/logs/?page_size=1" -H "Authorization: Bearer $token" | field count)
deep=$((count / 50 / 2))
# The log just before the deep page: keyset paging starts after it.
before=$(curl -sf "$base/api/v1/attendance/logs/?page_size=50&page=$((deep - 1))" -H "Authorization: Bearer $token" |
  python3 -c "import json, sys; print(json.load(sys.stdin)['results'][-1]['id'])")
yesterday=$(date -u -d yesterday +%F)
month_ago=$(date -u -d '30 days ago' +%F)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_of() {
  for _ in 1 2 3 4 5; do
    curl -s -o /dev/null -w '%{time_total}\n' "$base/api/v1/$1" -H "Authorization: Bearer $token"
  done | median
}
echo "| rows | request | median s |"
echo "|---|---|---|"
for request in \
  "attendance/logs/?page_size=50" \
  "attendance/logs/?page_size=50&page=$deep" \
  "attendance/logs/?page_size=50&before=$before" \
  "attendance/logs/?page_size=50&department=Physics&date_from=$month_ago" \
  "attendance/summary/?date_from=$yesterday" \
  "attendance/summary/?date_from=$month_ago&date_to=$yesterday" \
  "attendance/summary/?period=yearly" \
  "reports/attendance/?date_from=$month_ago&date_to=$yesterday"; do
  echo "| $count | \`$request\` | $(time_of "$request") |"
done
