#!/usr/bin/env bash
# What RTSP cameras cost the server (docs/PERFORMANCE.md, "Camera ingestion"): a release
# `rollcall serve` on a fresh data directory watches N cameras that all play the same
# 1080p H.264 door scene (each its own RTSP session), and the server's CPU time is read
# from /proc over a fixed window for each N, with each camera's health (frames received
# and sampled per second, status, errors).
#
#   scripts/bench-cameras.sh [--cameras "0 1 2 4 8"] [--window 60] [--warmup 20]
#                            [--sample-fps 2] [--sweep "0.2 2 5"]
#                            [--fps 25] [--gop-secs 2] [--kbps 4000]
#
#   --cameras     the numbers of cameras to measure, in order (0: the idle server)
#   --window      seconds each figure is measured over; --warmup: seconds before that
#   --sample-fps  each camera's sampling rate (the server's default is 2)
#   --sweep       then one camera at each of these sampling rates, to tell the cost of
#                 decoding every frame from the cost of looking at sampled ones ("" skips)
#   --fps, --gop-secs, --kbps   the test stream: frame rate, keyframe interval, bitrate
#
# The stream is encoded once (scripts/encode-door-scene.py, from two fixture photos) into
# ~/.cache/rollcall/bench-cameras/ and played from there without re-encoding
# (scripts/rtsp-test-camera.py PORT FILE.h264), so that no encoder shares the cores with the server;
# the RTSP server's own CPU is reported apart. ROLLCALL_BIN=path uses that server binary
# instead of building one; ROLLCALL_BENCH_PORT (18090) and ROLLCALL_BENCH_RTSP_PORT (18554)
# move the ports. Needs GStreamer's RTSP server for Debian's /usr/bin/python3 (`make test-tools`).
set -euo pipefail
cd "$(dirname "$0")/.."

counts="0 1 2 4 8"
window=60
warmup=20
sample_fps=2
sweep="0.2 2 5"
fps=25
gop_secs=2
kbps=4000
pass_secs=24 # one pass of the scene (scripts/encode-door-scene.py), played in a loop
while [ $# -gt 0 ]; do
  case $1 in
    --cameras) counts=$2 ;;
    --window) window=$2 ;;
    --warmup) warmup=$2 ;;
    --sample-fps) sample_fps=$2 ;;
    --sweep) sweep=$2 ;;
    --fps) fps=$2 ;;
    --gop-secs) gop_secs=$2 ;;
    --kbps) kbps=$2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done

source scripts/bench-server.sh
bench_prepare fixtures test-tools

cache=$HOME/.cache/rollcall/bench-cameras
mkdir -p "$cache"
stream=$cache/door-1920x1080-${fps}fps-gop${gop_secs}s-${kbps}k.h264
if [ ! -s "$stream" ]; then
  echo "encoding the test stream into $stream (once)" >&2
  /usr/bin/python3 scripts/encode-door-scene.py "$stream.part" fixtures/images/obama3.jpg \
    fixtures/images/biden.jpg --fps "$fps" --gop-secs "$gop_secs" --kbps "$kbps" --pass-secs "$pass_secs" >&2
  mv "$stream.part" "$stream"
fi

rtsp_port=${ROLLCALL_BENCH_RTSP_PORT:-18554}
/usr/bin/python3 scripts/rtsp-test-camera.py "$rtsp_port" "$stream" >"$cache/rtsp.log" 2>&1 &
camera=$!
bench_pids+=("$camera")
for _ in $(seq 50); do grep -q serving "$cache/rtsp.log" && break; kill -0 "$camera" 2>/dev/null || break; sleep 0.2; done
grep -q serving "$cache/rtsp.log" || { echo "the RTSP camera did not start: $(cat "$cache/rtsp.log")" >&2; exit 1; }
bench_serve "${ROLLCALL_BENCH_PORT:-18090}" "$cache/server.log" ROLLCALL_RATE_LIMIT_ENABLED=false
# One person enrolled, so that the scene has a recognised walk-past and a stranger's.
bench_enroll_obama

cameras=0
rate=
set_cameras() { # $1 cameras sampling at $2 fps: adds or removes CAM01, CAM02, ...
  if [ "$cameras" -gt 0 ] && [ "$2" != "$rate" ]; then
    for i in $(seq "$cameras"); do
      curl -sf -X PUT "$base/api/v1/cameras/CAM$(printf %02d "$i")/" "${auth[@]}" -o /dev/null \
        -d "{\"sample_fps\":$2}"
    done
  fi
  rate=$2
  while [ "$cameras" -lt "$1" ]; do
    cameras=$((cameras + 1))
    curl -sf "$base/api/v1/cameras/" "${auth[@]}" -o /dev/null -d "{\"id\":\"CAM$(printf %02d $cameras)\",
      \"name\":\"Bench $cameras\",\"rtsp_url\":\"rtsp://127.0.0.1:$rtsp_port/stream\",\"sample_fps\":$2}"
  done
  while [ "$cameras" -gt "$1" ]; do
    curl -sf -X DELETE "$base/api/v1/cameras/CAM$(printf %02d $cameras)/" "${auth[@]}" -o /dev/null
    cameras=$((cameras - 1))
  done
}

# Prints one JSON line: CPU ticks of the server (all, and its H.264 decoder threads) and of
# the RTSP server, each camera's health, the load average.
snapshot() {
  python3 - "$server" "$camera" "$base" "$token" "$cameras" <<'PY'
import json, os, sys, time, urllib.request
server, camera, base, token, cameras = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
def ticks(stat):
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime + stime
def proc(pid):
    with open(f"/proc/{pid}/stat") as f:
        return ticks(f.read())
decode = {}
for tid in os.listdir(f"/proc/{server}/task"):
    try:
        with open(f"/proc/{server}/task/{tid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        continue
    if stat[stat.index("(") + 1:stat.rindex(")")] == "rollcall-h264":
        decode[tid] = ticks(stat)
health = []
for i in range(1, cameras + 1):
    request = urllib.request.Request(f"{base}/api/v1/cameras/CAM{i:02d}/health/",
                                     headers={"Authorization": f"Bearer {token}"})
    health.append(json.load(urllib.request.urlopen(request, timeout=30)))
print(json.dumps({"t": time.monotonic(), "server": proc(server), "decode": decode, "rtsp": proc(camera),
                  "health": health, "load": open("/proc/loadavg").read().split()[:3]}))
PY
}

rows=$data/rows.jsonl
: >"$rows"
measure() { # $1 label, $2 sampling rate
  sleep "$warmup"
  local before after
  before=$(snapshot)
  sleep "$window"
  after=$(snapshot)
  printf '{"label":"%s","cameras":%s,"sample_fps":%s,"before":%s,"after":%s}\n' \
    "$1" "$cameras" "$2" "$before" "$after" >>"$rows"
  echo "measured: $1, $cameras camera(s) at $2 fps" >&2
}

for n in $counts; do
  set_cameras "$n" "$sample_fps"
  measure series "$sample_fps"
done
if [ -n "$sweep" ]; then
  set_cameras 0 "$sample_fps"
  for r in $sweep; do
    set_cameras 1 "$r"
    measure sweep "$r"
  done
fi
set_cameras 0 "$sample_fps"

python3 - "$rows" "$(getconf CLK_TCK)" "$stream" "$pass_secs" "$window" "$fps" <<'PY'
import json, os, sys
rows, hz, stream, pass_secs, window = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]
fps = float(sys.argv[6])
rows = [json.loads(line) for line in open(rows)]
print(f"stream: {os.path.basename(stream)}, {os.path.getsize(stream) * 8 / 1e6 / pass_secs:.2f} Mbit/s "
      f"(a {pass_secs:g} s pass, looped), served over RTSP/TCP; window {window} s per row; CPU in % of one core")
print()
print("| cameras | sampling | server CPU | per camera (over idle) | H.264 decoder threads | rest of server "
      "| RTSP server CPU | received fps / camera (min) | sampled fps / camera (min) | behind live (max) "
      "| faces tracked | verifications | all online, no errors | load average |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
idle = None
for row in rows:
    b, a = row["before"], row["after"]
    secs = a["t"] - b["t"]
    pct = lambda d: 100.0 * d / hz / secs
    server = pct(a["server"] - b["server"])
    decode = pct(sum(v - b["decode"].get(tid, 0) for tid, v in a["decode"].items()))
    rtsp = pct(a["rtsp"] - b["rtsp"])
    n = row["cameras"]
    if row["label"] == "series" and n == 0:
        idle = server
    per = f"{(server - idle) / n:.1f}" if n and idle is not None else "—"
    rate = lambda key: [(ha[key] - hb[key]) / secs for hb, ha in zip(b["health"], a["health"])]
    received, sampled = rate("frames_received"), rate("frames_sampled")
    show = lambda xs: f"{sum(xs) / len(xs):.2f} ({min(xs):.2f})" if xs else "—"
    # How far the frames read lag behind the stream's clock: time online less the frames
    # received over the source's rate (the test camera slows down to its reader's pace).
    behind = [h["uptime_secs"] - h["frames_received"] / fps for h in a["health"] if h["uptime_secs"] is not None]
    behind = f"{max(behind):.0f} s" if behind else "—"
    faces = sum(ha["faces_tracked"] - hb["faces_tracked"] for hb, ha in zip(b["health"], a["health"]))
    verified = sum(ha["verifications"] - hb["verifications"] for hb, ha in zip(b["health"], a["health"]))
    ok = all(h["status"] == "online" for h in b["health"] + a["health"]) and all(
        ha["error_count"] == hb["error_count"] for hb, ha in zip(b["health"], a["health"]))
    sampling = f"{row['sample_fps']:g} fps" + (" (sweep)" if row["label"] == "sweep" else "")
    print(f"| {n} | {sampling} | {server:.1f} % | {per} | {decode:.1f} % | {server - decode:.1f} % | {rtsp:.1f} % | "
          f"{show(received)} | {show(sampled)} | {behind} | {faces} | {verified} | {'yes' if ok else 'NO'} | "
          f"{' '.join(b['load'])} → {' '.join(a['load'])} |")
PY
echo "server log: $cache/server.log ($(grep -c 'WARN\|ERROR' "$cache/server.log" || true) lines with warnings or errors)" >&2
