#!/usr/bin/python3
"""The door scene of scripts/bench-cameras.sh, encoded once so that no encoder shares the
cores with the server being measured (scripts/rtsp-test-camera.py PORT FILE.h264 plays
it). With GStreamer (Debian: python3-gi, gstreamer1.0-plugins-{base,good,ugly}; `make
test-tools` installs them); run it with Debian's own /usr/bin/python3, the one python3-gi is
built for.

    encode-door-scene.py OUT.h264 PHOTO_A PHOTO_B [--fps 25] [--gop-secs 2] [--kbps 4000]
                         [--width 1920] [--height 1080] [--pass-secs 24]

It writes one pass of a door scene as a raw H.264 byte stream (High profile, no
B-frames, a keyframe every --gop-secs and no other, constant bitrate, as an IP camera
sends): an empty grey doorway with sensor-like noise on every frame, PHOTO_A walking
across from left to right, the doorway again, PHOTO_B walking back from right to left,
the doorway again (each walk-past takes 5 s; the rest of the pass is empty doorway).
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstController", "1.0")
from gi.repository import Gst, GstController  # noqa: E402

# Where the pass puts its walk-pasts: (start, end) in seconds.
WALK_A = (4.0, 9.0)
WALK_B = (14.0, 19.0)
# How high the photos are drawn, as a share of the frame's height: a face of about
# 130-170 px in a 1080p frame (someone 2-3 m from a door camera).
PHOTO_HEIGHT = 0.8
# Opacity of the per-frame noise drawn over the scene.
NOISE_ALPHA = 0.06


def jpeg_size(path: str) -> tuple[int, int]:
    """Width and height from a JPEG's start-of-frame marker."""
    with open(path, "rb") as f:
        data = f.read()
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            at += 1
            continue
        marker, length = data[at + 1], int.from_bytes(data[at + 2 : at + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(data[at + 7 : at + 9], "big"), int.from_bytes(data[at + 5 : at + 7], "big")
        at += 2 + length
    sys.exit(f"{path}: not a JPEG")


def animate(pad: Gst.Pad, prop: str, points: list[tuple[float, float]], linear: bool) -> None:
    source = GstController.InterpolationControlSource()
    source.set_property(
        "mode", GstController.InterpolationMode.LINEAR if linear else GstController.InterpolationMode.NONE
    )
    for secs, value in points:
        source.set(int(secs * Gst.SECOND), value)
    pad.add_control_binding(GstController.DirectControlBinding.new_absolute(pad, prop, source))


def encode(args: argparse.Namespace) -> None:
    fps, width, height = args.fps, args.width, args.height
    frames = int(args.pass_secs * fps)
    gop = max(1, round(args.gop_secs * fps))
    photo_h = int(height * PHOTO_HEIGHT) // 2 * 2
    widths = []
    for photo in (args.photo_a, args.photo_b):
        w, h = jpeg_size(photo)
        widths.append(round(w * photo_h / h) // 2 * 2)
    raw = f"video/x-raw,width={width},height={height},framerate={fps}/1"
    photo_branches = "".join(
        f'filesrc location="{photo}" ! jpegdec ! videoconvert ! videoscale '
        f"! video/x-raw,width={w},height={photo_h},pixel-aspect-ratio=1/1 "
        f"! imagefreeze num-buffers={frames} ! video/x-raw,framerate={fps}/1 ! mix.sink_{i + 1} "
        for i, (photo, w) in enumerate(zip((args.photo_a, args.photo_b), widths))
    )
    pipeline = Gst.parse_launch(
        f"compositor name=mix background=black "
        f"sink_0::zorder=0 sink_1::zorder=1 sink_2::zorder=2 sink_3::zorder=3 sink_3::alpha={NOISE_ALPHA} "
        f"sink_1::ypos={(height - photo_h) // 2} sink_2::ypos={(height - photo_h) // 2} "
        f"! videoconvert ! video/x-raw,format=I420 "
        f"! x264enc bitrate={args.kbps} pass=cbr vbv-buf-capacity=1000 key-int-max={gop} bframes=0 "
        f'speed-preset=medium option-string="scenecut=0:keyint-min={gop}" '
        f"! video/x-h264,profile=high,stream-format=byte-stream,alignment=au "
        f'! filesink location="{args.out}" '
        f"videotestsrc pattern=solid-color foreground-color=0xff5f6468 num-buffers={frames} ! {raw} ! mix.sink_0 "
        f"videotestsrc pattern=snow num-buffers={frames} ! {raw} ! mix.sink_3 " + photo_branches
    )
    mix = pipeline.get_by_name("mix")
    margin = width // 20
    for i, ((start, end), w) in enumerate(zip((WALK_A, WALK_B), widths)):
        pad = mix.get_static_pad(f"sink_{i + 1}")
        left, right = margin, width - margin - w
        xs = (left, right) if i == 0 else (right, left)
        animate(pad, "xpos", [(start, xs[0]), (end, xs[1])], linear=True)
        animate(pad, "alpha", [(0.0, 0.0), (start, 1.0), (end, 0.0)], linear=False)
    pipeline.set_state(Gst.State.PLAYING)
    message = pipeline.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if message.type == Gst.MessageType.ERROR:
        error, debug = message.parse_error()
        sys.exit(f"encoding failed: {error.message} ({debug})")
    print(f"wrote {args.out}: {width}x{height}, {fps} fps, {frames} frames, keyframe every {gop}, {args.kbps} kbit/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("photo_a")
    parser.add_argument("photo_b")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--gop-secs", type=float, default=2.0)
    parser.add_argument("--kbps", type=int, default=4000)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--pass-secs", type=float, default=24.0)
    args = parser.parse_args()
    Gst.init(None)
    encode(args)


if __name__ == "__main__":
    main()
