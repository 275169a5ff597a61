#!/usr/bin/env bash
# Programs the tests need: poppler-utils (pdftotext, pdftoppm) opens the PDF reports, and
# GStreamer's RTSP server with the x264 encoder plays the RTSP camera
# (scripts/rtsp-test-camera.py, run with Debian's /usr/bin/python3). Installed from Debian's packages when missing and we may; otherwise the
# tests that need them say what to install.
set -euo pipefail

missing=()
command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null || missing+=(poppler-utils)
rtsp_camera_ready() {
  /usr/bin/python3 - <<'PY' 2>/dev/null
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
needed = ["multifilesrc", "jpegdec", "videoconvert", "x264enc", "rtph264pay"]
raise SystemExit(0 if all(Gst.ElementFactory.find(name) for name in needed) else 1)
PY
}
rtsp_camera_ready || missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} (test tools)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
else
  echo "the tests need ${missing[*]}: install them (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
