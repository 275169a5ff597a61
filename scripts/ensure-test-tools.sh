#!/usr/bin/env bash
# Programs the tests read Rollcall's files with: poppler-utils (pdftotext, pdftoppm) opens
# the PDF reports. Installed from Debian's packages when missing and we may; otherwise the
# tests that need them say what to install.
set -euo pipefail

missing=()
command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null || missing+=(poppler-utils)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} (test tools)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
else
  echo "the tests need ${missing[*]}: install it (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
