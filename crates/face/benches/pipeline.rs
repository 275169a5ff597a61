//! Per-stage cost of the face pipeline on one 640×480 portrait, one thread, on each
//! inference backend in the same run (ONNX Runtime only where `make models` fetched it).
//!
//! What the numbers should show: detect + align + embed + anti-spoof well under the 60 ms
//! single-core target for a 640×480 photo, with embedding (SFace) the largest share and
//! decode/align/quality small next to inference.

mod common;

use std::hint::black_box;
use std::io::Cursor;

use criterion::{Criterion, criterion_group, criterion_main};
use rollcall_face::{BackendChoice, quality};

fn stages(c: &mut Criterion) {
    let mut backends = vec![BackendChoice::Tract];
    if common::models_dir().join(rollcall_face::backend::ONNXRUNTIME_LIBRARY_FILE).is_file() {
        backends.push(BackendChoice::Onnxruntime);
    }
    for backend in backends {
        stages_on(c, common::engine(true, backend));
    }
}

fn stages_on(c: &mut Criterion, engine: rollcall_face::FaceEngine) {
    let photo = common::photo_640x480(&engine);
    let mut jpeg = Vec::new();
    photo.rgb().write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    let detection = engine.detect(&photo).unwrap()[0];
    let aligned = engine.align(&photo, &detection).unwrap();
    let anti_spoof = engine.anti_spoof().expect("anti-spoof enabled");

    let mut g = c.benchmark_group(format!("face_640x480_{}", engine.backend_name()));
    g.sample_size(30);
    g.bench_function("decode_jpeg", |b| b.iter(|| engine.decode(black_box(&jpeg)).unwrap()));
    g.bench_function("detect", |b| b.iter(|| engine.detect(black_box(&photo)).unwrap()));
    g.bench_function("align", |b| b.iter(|| engine.align(black_box(&photo), black_box(&detection)).unwrap()));
    g.bench_function("quality", |b| {
        b.iter(|| quality::assess(black_box(&detection), (640, 480), black_box(&aligned), &engine.config().quality))
    });
    g.bench_function("embed", |b| b.iter(|| engine.embed_aligned(black_box(&aligned)).unwrap()));
    g.bench_function("anti_spoof", |b| b.iter(|| anti_spoof.check(black_box(photo.rgb()), detection.bbox).unwrap()));
    g.bench_function("analyze_all_stages", |b| b.iter(|| engine.analyze(black_box(&photo)).unwrap()));
    g.bench_function("decode_and_analyze", |b| {
        b.iter(|| {
            let img = engine.decode(black_box(&jpeg)).unwrap();
            engine.analyze(&img).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
