#!/usr/bin/env python3
"""Reference values from OpenCV's own YuNet + SFace pipeline, for rollcall-face's tests.

Runs cv2.FaceDetectorYN and cv2.FaceRecognizerSF (alignCrop + feature) with the same
ONNX files Rollcall uses on the fixture photos, and prints JSON that the Rust tests
compare against (crates/face/tests/golden/opencv.json).

The detector input is chosen as Rollcall chooses it: the longest side is scaled down to
at most 640 px (cv2.INTER_AREA), then the detector pads to a multiple of 32. Boxes and
landmarks are mapped back to original-image coordinates before alignment, as Rollcall does.

    pip install opencv-python-headless numpy
    python3 scripts/reference/opencv_golden.py \
        --models data/models --images fixtures/images > crates/face/tests/golden/opencv.json
"""
import argparse
import json
import os

import cv2
import numpy as np

IMAGES = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "32bit.png"]
PAIRS = [("obama.jpg", "obama2.jpg"), ("obama.jpg", "obama3.jpg"), ("obama2.jpg", "obama3.jpg"),
         ("obama.jpg", "biden.jpg"), ("obama2.jpg", "biden.jpg"), ("obama3.jpg", "biden.jpg")]
MAX_SIDE = 640


def r(x, n=3):
    return round(float(x), n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="data/models")
    ap.add_argument("--images", default="fixtures/images")
    args = ap.parse_args()
    det_path = os.path.join(args.models, "face_detection_yunet_2023mar.onnx")
    rec_path = os.path.join(args.models, "face_recognition_sface_2021dec.onnx")
    detector = cv2.FaceDetectorYN.create(det_path, "", (320, 320), 0.9, 0.3, 5000)
    recognizer = cv2.FaceRecognizerSF.create(rec_path, "")

    out = {"opencv": cv2.__version__, "max_side": MAX_SIDE, "images": {}, "pairs": []}
    features = {}
    for name in IMAGES:
        img = cv2.imread(os.path.join(args.images, name), cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        scale = min(1.0, MAX_SIDE / max(w, h))
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA) if scale < 1 else img
        detector.setInputSize((nw, nh))
        _, faces = detector.detect(small)
        faces = [] if faces is None else faces
        sx, sy = w / nw, h / nh
        entries = []
        for f in faces:
            g = f.copy()
            g[0:14:2] *= sx
            g[1:14:2] *= sy
            entries.append(g)
        # largest first, as Rollcall sorts
        entries.sort(key=lambda g: -(g[2] * g[3]))
        img_out = {"width": w, "height": h, "detector_input": [nw, nh], "faces": []}
        for g in entries:
            img_out["faces"].append({
                "box": [r(v) for v in g[0:4]],
                "landmarks": [[r(g[4 + 2 * i]), r(g[5 + 2 * i])] for i in range(5)],
                "score": r(g[14], 4),
            })
        if entries:
            aligned = recognizer.alignCrop(img, entries[0])
            feat = recognizer.feature(aligned).flatten()
            feat = feat / np.linalg.norm(feat)
            features[name] = feat
            img_out["embedding"] = [r(v, 5) for v in feat]
        out["images"][name] = img_out
    for a, b in PAIRS:
        if a in features and b in features:
            out["pairs"].append({"a": a, "b": b, "cosine": r(np.dot(features[a], features[b]), 4)})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
