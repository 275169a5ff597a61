"""SFace on ONNX Runtime, two ways to make it cheaper, measured against the model as the
engine runs it (docs/PERFORMANCE.md, "SFace: batching and int8"):

- batching: one run for N faces against N runs of one face (the same fp32 model with a
  dynamic batch dimension; outputs must be identical);
- int8: the model quantised statically (QDQ, per-channel int8 weights, uint8 activations,
  ranges from the faces of the even-numbered people) against fp32, in time and in how far
  each embedding moves (cosine between the fp32 and int8 embedding of the same face, on the
  faces of the odd-numbered people).

Faces: the first photo of each person in PHOTOS (a folder `PHOTOS/<person>/<photo>`, e.g.
../shared/calibration/photos), the central 40% × 44% of the photo resized to 112×112: the
calibration photos are centred 250×250 portraits, so this is close to the aligned crop.
One intra-op thread, as each of the engine's workers runs. Run by scripts/bench-sface-variants.sh.
"""

import argparse
import pathlib
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static
from PIL import Image


def faces(paths):
    for path in paths:
        image = Image.open(path).convert("RGB")
        w, h = image.size
        crop = image.crop((w * 0.3, h * 0.28, w * 0.7, h * 0.72)).resize((112, 112))
        bgr = np.asarray(crop, dtype=np.float32)[:, :, ::-1]
        yield bgr.transpose(2, 0, 1)[None].copy()


def prepared(model_path, work):
    """The model as the engine prepares it: weights no longer graph inputs, batch 1."""
    model = onnx.load(model_path)
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    # DequantizeLinear's per-channel axis needs opset 13; SFace is opset 11.
    model = version_converter.convert_version(model, 13)
    fixed, dynamic = onnx.ModelProto(), onnx.ModelProto()
    fixed.CopyFrom(model)
    dynamic.CopyFrom(model)
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    for value in [*dynamic.graph.input, *dynamic.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "faces"
    paths = work / "sface_fp32.onnx", work / "sface_batch.onnx"
    onnx.save(fixed, paths[0])
    onnx.save(dynamic, paths[1])
    return paths


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ms_per_face(run, faces_count, rounds):
    started = time.perf_counter()
    for _ in range(rounds):
        run()
    return (time.perf_counter() - started) / rounds / faces_count * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--photos", required=True)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each comparison")
    args = parser.parse_args()
    people = sorted(p for p in pathlib.Path(args.photos).iterdir() if p.is_dir())
    first = [sorted(p.iterdir())[0] for p in people if any(p.iterdir())]
    calibrate, held_out = first[0::2], first[1::2]
    work = pathlib.Path(tempfile.mkdtemp())
    fixed, dynamic = prepared(args.model, work)
    single, batched = session(fixed), session(dynamic)
    name = single.get_inputs()[0].name
    probes = np.concatenate(list(faces(held_out)))
    print(f"{len(probes)} faces of as many people, 1 thread, ONNX Runtime {ort.__version__}")

    print("batching (fp32): ms per face, rounds alternating")
    for size in (2, 4, 8):
        groups = [probes[i : i + size] for i in range(0, len(probes) - size + 1, size)]
        count = len(groups) * size
        one_by_one = lambda: [single.run(None, {name: face[None]}) for group in groups for face in group]  # noqa: E731
        together = lambda: [batched.run(None, {name: group}) for group in groups]  # noqa: E731
        apart, joint = [], []
        for _ in range(args.rounds):
            apart.append(ms_per_face(one_by_one, count, 1))
            joint.append(ms_per_face(together, count, 1))
        same = np.allclose(np.concatenate([single.run(None, {name: f[None]})[0] for f in groups[0]]),
                           batched.run(None, {name: groups[0]})[0], atol=1e-4)
        print(f"  {size} faces a run: one at a time {min(apart):.1f} ms, batched {min(joint):.1f} ms, "
              f"speed-up {min(apart) / min(joint):.2f}x (best of {args.rounds}); same outputs: {same}")

    readable = work / "sface_pre.onnx"
    quant_pre_process(str(fixed), str(readable))

    class Ranges(CalibrationDataReader):
        def __init__(self):
            self.faces = iter({name: face} for face in faces(calibrate))

        def get_next(self):
            return next(self.faces, None)

    quantised = work / "sface_int8.onnx"
    quantize_static(str(readable), str(quantised), Ranges(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    int8 = session(quantised)
    embed = lambda s: np.concatenate([s.run(None, {name: f[None]})[0] for f in probes])  # noqa: E731
    fp32_ms, int8_ms = [], []
    for _ in range(args.rounds):
        fp32_ms.append(ms_per_face(lambda: embed(single), len(probes), 1))
        int8_ms.append(ms_per_face(lambda: embed(int8), len(probes), 1))
    a, b = embed(single), embed(int8)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    moved = (a * b).sum(axis=1)
    pairs = np.triu_indices(len(a), 1)
    drift = np.abs((a @ a.T)[pairs] - (b @ b.T)[pairs])
    print(f"int8 (QDQ, ranges from {len(calibrate)} other people's faces): "
          f"fp32 {min(fp32_ms):.1f} ms, int8 {min(int8_ms):.1f} ms a face, speed-up {min(fp32_ms) / min(int8_ms):.2f}x")
    print(f"  cosine of each face's fp32 and int8 embedding: min {moved.min():.3f}, p1 {np.percentile(moved, 1):.3f}, "
          f"median {np.median(moved):.3f}")
    print(f"  change of the similarity between two people's faces: median {np.median(drift):.3f}, "
          f"p99 {np.percentile(drift, 99):.3f}, max {drift.max():.3f}")


if __name__ == "__main__":
    main()
