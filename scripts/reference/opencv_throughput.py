#!/usr/bin/env python3
"""Photos per second of OpenCV's own YuNet + SFace pipeline on a folder of photos: the
other side of `rollcall bench` in scripts/bench-opencv.sh (docs/PERFORMANCE.md, "Against
OpenCV's own pipeline").

Each photo goes through what Rollcall does with it, written as fast as OpenCV's API allows:
decode (cv2.imdecode of the file's bytes, read before timing as `rollcall bench` reads them;
EXIF orientation applied), the longest side scaled down to at most 640 px (cv2.INTER_AREA)
exactly as scripts/reference/opencv_golden.py chooses Rollcall's detector input,
cv2.FaceDetectorYN (setInputSize per photo), boxes and landmarks mapped back to the original
image, then cv2.FaceRecognizerSF alignCrop on the original + feature for every face found.

Timed as `rollcall bench` times itself: one untimed warm-up pass over the photos (models
loaded before it), then wall time over photos x iterations. Two ways to use T threads are
measured and the faster is reported:
  sequential  one detector and recognizer, cv2.setNumThreads(T) inside each inference;
  threads     T worker threads with a detector and recognizer each, cv2.setNumThreads(1),
              photos handed out one at a time (OpenCV releases the GIL in every call).

    python3 scripts/reference/opencv_throughput.py --models data/models \
        --images fixtures/images --threads 2 --iterations 4 [--mode auto|sequential|threads]

Prints JSON: photos (photos x iterations timed), faces, seconds, photos_per_sec, mode, and
the figures of every mode measured.
"""
import argparse
import concurrent.futures
import json
import os
import queue
import threading
import time

import cv2
import numpy as np

from opencv_golden import MAX_SIDE

DETECTOR = "face_detection_yunet_2023mar.onnx"
RECOGNIZER = "face_recognition_sface_2021dec.onnx"
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


class Pipeline:
    """One YuNet detector and one SFace recognizer (not to be shared between threads)."""

    def __init__(self, models):
        # Rollcall's detector settings: score 0.9, NMS 0.3, top 5000.
        self.detector = cv2.FaceDetectorYN.create(os.path.join(models, DETECTOR), "", (320, 320), 0.9, 0.3, 5000)
        self.recognizer = cv2.FaceRecognizerSF.create(os.path.join(models, RECOGNIZER), "")

    def run(self, data):
        """Decodes one photo, finds its faces and embeds them all; returns how many."""
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("cannot decode photo")
        h, w = img.shape[:2]
        # The detector input, as opencv_golden.py (and Rollcall) chooses it.
        scale = min(1.0, MAX_SIDE / max(w, h))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(img, size, interpolation=cv2.INTER_AREA) if scale < 1 else img
        self.detector.setInputSize(size)
        _, faces = self.detector.detect(small)
        if faces is None:
            return 0
        faces[:, 0:14:2] *= w / size[0]
        faces[:, 1:14:2] *= h / size[1]
        for face in faces:
            self.recognizer.feature(self.recognizer.alignCrop(img, face))
        return len(faces)


def read_photos(folder):
    """The photos' bytes, sorted by file name as `rollcall bench` sorts them."""
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(EXTENSIONS))
    if not names:
        raise SystemExit(f"no JPEG, PNG or WebP photos in {folder}")
    photos = []
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            photos.append(f.read())
    return photos


def figures(mode, threads, photos, faces, seconds):
    return {"mode": mode, "threads": threads, "photos": photos, "faces": faces,
            "seconds": round(seconds, 3), "photos_per_sec": round(photos / seconds, 2)}


def sequential(models, photos, threads, iterations):
    cv2.setNumThreads(threads)
    pipeline = Pipeline(models)
    for data in photos:
        pipeline.run(data)
    started = time.perf_counter()
    faces = sum(pipeline.run(data) for _ in range(iterations) for data in photos)
    return figures("sequential", threads, len(photos) * iterations, faces, time.perf_counter() - started)


def worker_threads(models, photos, threads, iterations):
    cv2.setNumThreads(1)
    # Loaded before the warm-up; each worker thread takes one for itself when it starts.
    pipelines = queue.SimpleQueue()
    for _ in range(threads):
        pipelines.put(Pipeline(models))
    local = threading.local()

    def take():
        local.pipeline = pipelines.get()

    def run(data):
        return local.pipeline.run(data)

    with concurrent.futures.ThreadPoolExecutor(threads, initializer=take) as pool:
        list(pool.map(run, photos))
        started = time.perf_counter()
        faces = sum(pool.map(run, photos * iterations))
        seconds = time.perf_counter() - started
    return figures("threads", threads, len(photos) * iterations, faces, seconds)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="data/models")
    ap.add_argument("--images", default="fixtures/images")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--mode", choices=["auto", "sequential", "threads"], default="auto",
                    help="auto measures both (threads only with --threads > 1) and reports the faster")
    args = ap.parse_args()
    threads, iterations = max(1, args.threads), max(1, args.iterations)
    photos = read_photos(args.images)

    runs = []
    if args.mode in ("auto", "sequential"):
        runs.append(sequential(args.models, photos, threads, iterations))
    if args.mode == "threads" or (args.mode == "auto" and threads > 1):
        runs.append(worker_threads(args.models, photos, threads, iterations))
    best = max(runs, key=lambda r: r["photos_per_sec"])
    print(json.dumps({**best, "opencv": cv2.__version__, "iterations": iterations,
                      "distinct_photos": len(photos), "modes": runs}, indent=1))


if __name__ == "__main__":
    main()
