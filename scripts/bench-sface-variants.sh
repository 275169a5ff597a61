#!/usr/bin/env bash
# SFace batched and quantised to int8 against SFace as the engine runs it, on ONNX Runtime's
# Python package of the same version as the engine's library (docs/PERFORMANCE.md, "SFace:
# batching and int8"): scripts/reference/sface_variants.py.
#
#   scripts/bench-sface-variants.sh [--photos DIR] [--rounds N]
#
#   --photos  a folder PHOTOS/<person>/<photo> (default ../shared/calibration/photos)
set -euo pipefail
cd "$(dirname "$0")/.."
photos=../shared/calibration/photos
rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --photos) photos=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--photos DIR] [--rounds N]" >&2; exit 2 ;;
  esac
done
source scripts/python-venv.sh
python_venv ort-venv "onnxruntime==1.32.0 onnx==1.23.2 numpy==2.4.6 pillow==13.0.0 sympy==1.14.0"
make --quiet models
models=${ROLLCALL_MODELS_DIR:-$PWD/data/models}
"$py" scripts/reference/sface_variants.py --model "$models/face_recognition_sface_2021dec.onnx" \
  --photos "$photos" --rounds "$rounds"
