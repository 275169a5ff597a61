#!/usr/bin/env bash
# Rollcall's face engine against OpenCV's own YuNet + SFace pipeline (docs/PERFORMANCE.md,
# "Against OpenCV's own pipeline"): the same photos, the same two ONNX files and the same
# number of threads, back to back in one run. Prints a markdown table of photos/s for
# OpenCV (scripts/reference/opencv_throughput.py: the faster of one pipeline with
# cv2.setNumThreads(T) and T worker threads), `rollcall bench --no-anti-spoof` and
# `rollcall bench` with anti-spoofing, the ratios, Rollcall's per-stage times, the load
# average before and after, and for each figure how many cores other work kept busy while it
# was measured (other processes and steal; anything above 0.1 is reported as polluted).
#
#   scripts/bench-opencv.sh [--images DIR] [--threads 2] [--iterations 4]
#
#   --images      a folder of photos (default: the fixture photos `make fixtures` fetches)
#   --threads     threads on both sides
#   --iterations  timed passes over the photos, after one untimed warm-up pass on both sides.
#                 `rollcall bench` gives each thread whole passes, so use a multiple of
#                 --threads: with 3 passes on 2 threads one thread does two and the other one.
#
# OpenCV comes from PyPI, pinned below, in a virtual environment made once at
# ~/.cache/rollcall/opencv-venv (made again when the pins change). ROLLCALL_BIN=path uses
# that rollcall binary instead of building one; ROLLCALL_MODELS_DIR and ROLLCALL_FIXTURES_DIR
# move the models and the fixture photos, as for make.
set -euo pipefail

images=
threads=2
iterations=4
while [ $# -gt 0 ]; do
  case $1 in
    --images) images=$(cd "$2" && pwd); shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    *) echo "usage: $0 [--images DIR] [--threads T] [--iterations N]" >&2; exit 2 ;;
  esac
done
bin=${ROLLCALL_BIN:+$(realpath "$ROLLCALL_BIN")}
cd "$(dirname "$0")/.."
images=${images:-${ROLLCALL_FIXTURES_DIR:-$PWD/fixtures}/images}

source scripts/python-venv.sh
python_venv opencv-venv "opencv-python-headless==4.14.0.94 numpy==2.4.6"

make --quiet models fixtures
models=${ROLLCALL_MODELS_DIR:-$PWD/data/models}
if [ -z "$bin" ]; then
  cargo build --release --quiet --bin rollcall
  bin=${CARGO_TARGET_DIR:-target}/release/rollcall
fi
if [ $((iterations % threads)) -ne 0 ]; then
  echo "note: $iterations passes on $threads threads: rollcall bench's threads get unequal shares" >&2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ticks=$(getconf CLK_TCK)
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; } # steal included
own_ticks() { awk '{print $16 + $17}' "/proc/$$/stat"; } # this script's children, once waited for
# step NAME COMMAND...: runs COMMAND with its output in $out/NAME.json, and writes to
# $out/NAME.others how many cores other work kept busy meanwhile (other processes' CPU time
# and the hypervisor's steal, over the step's wall time), so that a polluted figure says so.
step() {
  local name=$1 busy0 own0 start
  shift
  busy0=$(busy_ticks) own0=$(own_ticks) start=$(date +%s.%N)
  "$@" >"$out/$name.json"
  awk -v b="$(($(busy_ticks) - busy0))" -v o="$(($(own_ticks) - own0))" -v t="$ticks" \
    -v s0="$start" -v s1="$(date +%s.%N)" 'BEGIN { printf "%.2f", (b - o) / t / (s1 - s0) }' >"$out/$name.others"
}

cut -d' ' -f1-3 /proc/loadavg >"$out/load-before"
step opencv "$py" scripts/reference/opencv_throughput.py --models "$models" --images "$images" \
  --threads "$threads" --iterations "$iterations"
common=(bench --images "$images" --models "$models" --threads "$threads" --iterations "$iterations" --json)
step rollcall-no-anti-spoof "$bin" "${common[@]}" --no-anti-spoof
step rollcall "$bin" "${common[@]}"
cut -d' ' -f1-3 /proc/loadavg >"$out/load-after"

"$py" - "$out" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
names = ("opencv", "rollcall-no-anti-spoof", "rollcall")
cv, off, on = (json.loads((out / f"{n}.json").read_text()) for n in names)
others = [float((out / f"{n}.others").read_text()) for n in names]
base = cv["photos_per_sec"]
modes = ", ".join(f"{m['mode']} {m['photos_per_sec']:.2f}" for m in cv["modes"])
print(f"{cv['distinct_photos']} photos x {cv['iterations']} passes, {cv['threads']} threads, "
      f"load average {(out / 'load-before').read_text().strip()} before, {(out / 'load-after').read_text().strip()} after\n")
print("| pipeline | photos/s | faces | vs OpenCV | cores busy with other work meanwhile |")
print("|---|---|---|---|---|")
print(f"| OpenCV {cv['opencv']} YuNet + SFace ({cv['mode']}; measured: {modes}) | {base:.2f} | {cv['faces']} "
      f"| 1.00x | {others[0]:.2f} |")
for name, r, busy in (("anti-spoof off", off, others[1]), ("anti-spoof on", on, others[2])):
    ips = r["images_per_second"]
    print(f"| Rollcall `bench` ({r['backend']}), {name} | {ips:.2f} | {r['faces_processed']} | {ips / base:.2f}x "
          f"| {busy:.2f} |")
print("\n| Rollcall, ms per photo on its thread | decode | detect | align + quality | anti-spoof | embed |")
print("|---|---|---|---|---|---|")
for name, r in (("anti-spoof off", off), ("anti-spoof on", on)):
    s = r["stage_ms_per_image"]
    print(f"| {name} | {s['decode_ms']:.1f} | {s['detect_ms']:.1f} | {s['align_quality_ms']:.1f} | "
          f"{s['anti_spoof_ms']:.1f} | {s['embed_ms']:.1f} |")
if max(others) > 0.1:
    print("\nwarning: other processes used the cores during the runs: these figures are polluted", file=sys.stderr)
EOF
