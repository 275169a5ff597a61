"""Face boxes for the fixture portraits from OpenCV's own YuNet (the model Rollcall's
detector runs), written to boxes.json for golden.js. Reference tooling only.

    pip install numpy==2.4.6 opencv-python-headless==5.0.0.93
    python yunet_boxes.py ../../../data/models ../../../fixtures/images > boxes.json
"""
import json
import os
import sys

import cv2

models, images = sys.argv[1], sys.argv[2]
out = {}
for name in sorted(os.listdir(images)):
    img = cv2.imread(os.path.join(images, name), cv2.IMREAD_COLOR)
    if img is None:
        continue
    h, w = img.shape[:2]
    det = cv2.FaceDetectorYN.create(
        os.path.join(models, "face_detection_yunet_2023mar.onnx"), "", (w, h), 0.9, 0.3, 5000
    )
    _, faces = det.detect(img)
    if faces is None:
        continue
    # the largest face
    f = max(faces, key=lambda f: f[2] * f[3])
    out[name] = {"x": float(f[0]), "y": float(f[1]), "width": float(f[2]), "height": float(f[3]),
                 "score": float(f[14]), "image_width": w, "image_height": h}
json.dump(out, sys.stdout, indent=2)
print()
