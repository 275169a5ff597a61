#!/usr/bin/python3
"""An RTSP camera for the tests: serves the numbered JPEG frames of a folder
(frame-00000.jpg, frame-00001.jpg, ...) as an H.264 stream at rtsp://127.0.0.1:PORT/stream,
looping, with GStreamer's RTSP server (Debian: gir1.2-gst-rtsp-server-1.0, python3-gi,
gstreamer1.0-plugins-{base,good,ugly}). Run it with Debian's own /usr/bin/python3, the one
python3-gi is built for.

    rtsp-test-camera.py PORT FRAMES_DIR FPS
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, frames, fps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # Every client gets the scene from its start; keyframes every second so that a
    # client joining late has a picture at once.
    factory.set_launch(
        f'( multifilesrc location="{frames}/frame-%05d.jpg" index=0 loop=true '
        f'caps="image/jpeg,framerate={fps}/1" ! jpegdec ! videoconvert ! video/x-raw,format=I420 '
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory("/stream", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print(f"serving rtsp://127.0.0.1:{port}/stream", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
