#!/usr/bin/env bash
# Fetches the test photos (face_recognition 1.3.0's tests/test_images from its PyPI
# source distribution) into ./fixtures/images, checking each against a pinned sha256.
# The photos are never committed; tests find them through ROLLCALL_FIXTURES_DIR or ./fixtures.
set -euo pipefail

fixtures_dir=${ROLLCALL_FIXTURES_DIR:-./fixtures}/images
cache_dir=${ROLLCALL_CACHE_DIR:-$HOME/.cache/rollcall/downloads}
SDIST="face_recognition-1.3.0.tar.gz"
SDIST_SHA=5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec

pinned=(
  "32bit.png|44dca895a7d635a4aedddd91a4f37af9a8a5b44e66154282a24645a757b5f627"
  "biden.jpg|3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"
  "obama.jpg|0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"
  "obama2.jpg|a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"
  "obama3.jpg|76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"
  "obama_partial_face.jpg|c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117"
  "obama_partial_face2.jpg|9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028"
)

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
fail() { echo "make fixtures: $*" >&2; exit 1; }

mkdir -p "$fixtures_dir" "$cache_dir/pypi"
all_ok=1
for entry in "${pinned[@]}"; do
  IFS='|' read -r file sha <<<"$entry"
  sha_ok "$fixtures_dir/$file" "$sha" || all_ok=0
done
[ "$all_ok" = 1 ] && { echo "make fixtures: all test photos present in $fixtures_dir"; exit 0; }

sdist="$cache_dir/pypi/$SDIST"
if ! sha_ok "$sdist" "$SDIST_SHA"; then
  python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$cache_dir/pypi" face_recognition==1.3.0 \
    || fail "could not download face_recognition==1.3.0 from PyPI"
  sha_ok "$sdist" "$SDIST_SHA" || fail "$SDIST does not match its pinned sha256"
fi
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
tar -xzf "$sdist" -C "$unpacked" face_recognition-1.3.0/tests/test_images
for entry in "${pinned[@]}"; do
  IFS='|' read -r file sha <<<"$entry"
  src="$unpacked/face_recognition-1.3.0/tests/test_images/$file"
  sha_ok "$src" "$sha" || fail "$file does not match its pinned sha256"
  cp "$src" "$fixtures_dir/$file"
done
echo "make fixtures: all test photos present in $fixtures_dir"
