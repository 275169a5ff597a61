#!/usr/bin/python3
"""An RTSP camera for the tests and benchmarks, at rtsp://127.0.0.1:PORT/stream, looping,
with GStreamer's RTSP server (Debian: gir1.2-gst-rtsp-server-1.0, python3-gi,
gstreamer1.0-plugins-{base,good,ugly}). Run it with Debian's own /usr/bin/python3, the one
python3-gi is built for.

    rtsp-test-camera.py PORT FRAMES_DIR FPS   the numbered JPEG frames of a folder
                                              (frame-00000.jpg, ...) encoded live to H.264
    rtsp-test-camera.py PORT FILE.h264        a raw H.264 byte stream played as it is, in
                                              real time (no encoder sharing the cores)

Every client gets its own playback from the start.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def frames_pipeline(frames: str, fps: int) -> str:
    # Keyframes every second so that a client joining late has a picture at once.
    return (
        f'( multifilesrc location="{frames}/frame-%05d.jpg" index=0 loop=true '
        f'caps="image/jpeg,framerate={fps}/1" ! jpegdec ! videoconvert ! video/x-raw,format=I420 '
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def file_pipeline(file: str) -> str:
    # h264parse times the frames from the frame rate in the stream's SPS, so playback runs
    # at the source's rate.
    return (
        f'( multifilesrc location="{file}" loop=true caps="video/x-h264,stream-format=byte-stream" '
        "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )


def main() -> None:
    if len(sys.argv) == 4:
        port, launch = sys.argv[1], frames_pipeline(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 3:
        port, launch = sys.argv[1], file_pipeline(sys.argv[2])
    else:
        sys.exit(__doc__)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(False)
    server.get_mount_points().add_factory("/stream", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print(f"serving rtsp://127.0.0.1:{port}/stream", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
