// Golden outputs for Rollcall's anti-spoof module (crates/face/tests/golden/antispoof.json):
// runs the Human library's `antispoof` and `liveness` TF.js graph models with TF.js's own
// CPU backend, using Human 3.3.6's pre-processing (src/face/facemeshutil.ts enlargeBox(1.4)
// + squarifyBox + cutAndResize to 192x192 / 255, then src/face/antispoof.ts and
// liveness.ts resizeBilinear to 128x128 and 32x32). Reference tooling only: nothing at
// build, test or run time needs Node.
//
//   npm ci   (or npm install; versions pinned in package.json)
//   python yunet_boxes.py ../../../data/models ../../../fixtures/images > boxes.json
//   node golden.js ../../../data/models ../../../fixtures/images boxes.json \
//     > ../../../crates/face/tests/golden/antispoof.json
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const { loadGraphModel } = require('@tensorflow/tfjs-converter');
const jpeg = require('jpeg-js');
const { PNG } = require('pngjs');

const [modelsDir, imagesDir, boxesFile] = process.argv.slice(2);

async function load(name) {
  const json = JSON.parse(fs.readFileSync(path.join(modelsDir, `${name}.json`), 'utf8'));
  const weightSpecs = [];
  const buffers = [];
  for (const group of json.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const p of group.paths) buffers.push(fs.readFileSync(path.join(modelsDir, p)));
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const handler = {
    load: async () => ({
      modelTopology: json.modelTopology, weightSpecs, weightData, format: json.format,
      generatedBy: json.generatedBy, convertedBy: json.convertedBy, signature: json.signature,
    }),
  };
  return loadGraphModel(handler);
}

// Deterministic NHWC input in [0, 1]: 0.5 + 0.5 sin(0.37 x + 0.23 y + 1.7 c + k).
function pattern(size, k) {
  const data = new Float32Array(size * size * 3);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) for (let c = 0; c < 3; c++) {
    data[(y * size + x) * 3 + c] = 0.5 + 0.5 * Math.sin(0.37 * x + 0.23 * y + 1.7 * c + k);
  }
  return tf.tensor4d(data, [1, size, size, 3]);
}

// Deterministic RGB image: (7x + 3y + 85c + (x*y mod 31)) mod 256.
function syntheticImage(width, height) {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) {
    data[(y * width + x) * 3 + c] = (7 * x + 3 * y + 85 * c + ((x * y) % 31)) % 256;
  }
  return { width, height, data };
}

function decode(file) {
  const buf = fs.readFileSync(file);
  let rgba;
  let width;
  let height;
  if (file.endsWith('.png')) {
    const png = PNG.sync.read(buf);
    ({ width, height } = png);
    rgba = png.data;
  } else {
    const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
    ({ width, height } = img);
    rgba = img.data;
  }
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) for (let c = 0; c < 3; c++) data[i * 3 + c] = rgba[i * 4 + c];
  return { width, height, data };
}

// Human 3.3.6 src/face/facemeshutil.ts: enlargeBox(box, 1.4) then squarifyBox.
function humanBox(b) {
  const cx = b.x + b.width / 2;
  const cy = b.y + b.height / 2;
  const half = Math.max(1.4 * b.width, 1.4 * b.height) / 2;
  return [Math.round(cx - half), Math.round(cy - half), Math.round(cx + half), Math.round(cy + half)];
}

// Human's face tensor (cutAndResize to the 192x192 face-mesh input, / 255) and the two
// resizes of antispoof.ts / liveness.ts.
function crops(img, box) {
  return tf.tidy(() => {
    const input = tf.tensor4d(Float32Array.from(img.data), [1, img.height, img.width, 3]);
    const [x0, y0, x1, y1] = humanBox(box);
    const cut = [y0 / img.height, x0 / img.width, y1 / img.height, x1 / img.width];
    const face = tf.div(tf.image.cropAndResize(input, [cut], [0], [192, 192]), 255);
    return [tf.image.resizeBilinear(face, [128, 128], false), tf.image.resizeBilinear(face, [32, 32], false)];
  });
}

const round = (v) => Math.round(v * 1e7) / 1e7;
const summary = (t) => {
  const d = t.dataSync();
  let sum = 0;
  for (const v of d) sum += v;
  return { sum: round(sum), first: Array.from(d.slice(0, 6)).map(round), at_1000: Array.from(d.slice(1000, 1003)).map(round) };
};

async function main() {
  const antispoof = await load('antispoof');
  const liveness = await load('liveness');
  const run = (a, l) => ({
    antispoof: Array.from(antispoof.execute(a).dataSync()).map(round),
    liveness: Array.from(liveness.execute(l).dataSync()).map(round),
  });
  const out = {
    generated_by: 'scripts/reference/antispoof/golden.js',
    tfjs: tf.version_core,
    patterns: [0, 1, 2].map((k) => ({ k, ...run(pattern(128, k), pattern(32, k)) })),
    synthetic: [],
    fixtures: {},
  };
  const synth = syntheticImage(180, 150);
  for (const box of [
    { x: 50, y: 40, width: 60, height: 70 },
    { x: 20, y: -10, width: 120, height: 140 },
  ]) {
    const [a, l] = crops(synth, box);
    out.synthetic.push({ width: 180, height: 150, box, crop_box: humanBox(box), antispoof_crop: summary(a), liveness_crop: summary(l), ...run(a, l) });
  }
  const boxes = JSON.parse(fs.readFileSync(boxesFile, 'utf8'));
  for (const name of Object.keys(boxes).sort()) {
    const b = boxes[name];
    const box = { x: b.x, y: b.y, width: b.width, height: b.height };
    const [a, l] = crops(decode(path.join(imagesDir, name)), box);
    out.fixtures[name] = { box, ...run(a, l) };
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

main().catch((e) => { console.error(e); process.exit(1); });
