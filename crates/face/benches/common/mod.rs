//! Shared set-up for the face benches: models and fixtures, found as the tests find them.

use std::path::PathBuf;

use rollcall_face::{BackendChoice, DecodedImage, EngineConfig, FaceEngine};

fn manifest_relative(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn models_dir() -> PathBuf {
    let dir =
        std::env::var_os("ROLLCALL_MODELS_DIR").map_or_else(|| manifest_relative("../../data/models"), PathBuf::from);
    assert!(
        dir.join("face_detection_yunet_2023mar.onnx").is_file(),
        "models missing in {}: run `make models`",
        dir.display()
    );
    dir
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    let dir =
        std::env::var_os("ROLLCALL_FIXTURES_DIR").map_or_else(|| manifest_relative("../../fixtures"), PathBuf::from);
    let path = dir.join("images").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{} ({e}): run `make fixtures`", path.display()))
}

pub fn engine(anti_spoof: bool, backend: BackendChoice) -> FaceEngine {
    let config = EngineConfig { anti_spoof, backend, ..EngineConfig::new(models_dir()) };
    FaceEngine::load(&config).expect("engine loads")
}

/// obama.jpg scaled to 640 px wide and cropped to 640×480 (the face stays whole).
pub fn photo_640x480(engine: &FaceEngine) -> DecodedImage {
    let full = engine.decode(&fixture_bytes("obama.jpg")).expect("fixture decodes");
    let h = (f64::from(full.height()) * 640.0 / f64::from(full.width())).round() as u32;
    let scaled = rollcall_face::detect::area_resize(full.rgb(), 640, h);
    DecodedImage::from_rgb(image::imageops::crop_imm(&scaled, 0, 0, 640, 480).to_image())
}
