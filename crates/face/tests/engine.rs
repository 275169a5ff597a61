//! Integration tests of the face engine on real models and real photos.
//!
//! Needs the models (`make models`) and the fixture photos (`make fixtures`); fails with
//! that advice when they are missing. Reference numbers come from OpenCV's own YuNet +
//! SFace pipeline (`scripts/reference/opencv_golden.py` → `tests/golden/opencv.json`).

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::OnceLock;

use image::{ImageFormat, RgbImage};
use rollcall_face::backend::{Backend, NdTensor, ONNXRUNTIME_LIBRARY_FILE, OnnxRuntimeBackend, TractBackend};
use rollcall_face::decode::{self, DecodeOptions};
use rollcall_face::{
    BackendChoice, Decision, DecodedImage, EngineConfig, Error, ExactIndex, FaceEngine, FaceIndex, FaceRejection,
    Fusion, Identification, Template,
};

fn manifest_relative(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn models_dir() -> PathBuf {
    let dir =
        std::env::var_os("ROLLCALL_MODELS_DIR").map_or_else(|| manifest_relative("../../data/models"), PathBuf::from);
    for f in ["face_detection_yunet_2023mar.onnx", "face_recognition_sface_2021dec.onnx"] {
        assert!(dir.join(f).is_file(), "model {} is missing: run `make models`", dir.join(f).display());
    }
    dir
}

fn images_dir() -> PathBuf {
    let dir = std::env::var_os("ROLLCALL_FIXTURES_DIR")
        .map_or_else(|| manifest_relative("../../fixtures"), PathBuf::from)
        .join("images");
    assert!(dir.join("obama.jpg").is_file(), "fixture photos missing in {}: run `make fixtures`", dir.display());
    dir
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = images_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {} ({e}): run `make fixtures`", path.display()))
}

fn engine() -> &'static FaceEngine {
    static ENGINE: OnceLock<FaceEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let config = EngineConfig { anti_spoof: false, ..EngineConfig::new(models_dir()) };
        FaceEngine::load(&config).expect("engine loads")
    })
}

fn photo(name: &str) -> DecodedImage {
    engine().decode(&fixture_bytes(name)).expect("fixture decodes")
}

fn golden() -> &'static serde_json::Value {
    static GOLDEN: OnceLock<serde_json::Value> = OnceLock::new();
    GOLDEN.get_or_init(|| serde_json::from_str(include_str!("golden/opencv.json")).expect("golden JSON"))
}

fn embedding_of(name: &str) -> rollcall_face::Embedding {
    let faces = engine().analyze(&photo(name)).unwrap();
    faces[0].embedding.clone().expect("embedding")
}

#[test]
fn one_face_per_portrait_with_landmarks_inside_the_box() {
    for name in ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"] {
        let faces = engine().analyze(&photo(name)).unwrap();
        assert_eq!(faces.len(), 1, "{name}: {faces:?}");
        let f = &faces[0];
        assert!(f.detection.score >= 0.9, "{name}: {f:?}");
        for p in f.detection.landmarks.points() {
            assert!(f.detection.bbox.contains(p), "{name}: landmark {p:?} outside {:?}", f.detection.bbox);
        }
        assert!(f.quality.is_acceptable(), "{name}: {:?}", f.quality);
        assert!(f.embedding.is_some());
    }
}

#[test]
fn same_person_above_threshold_and_different_people_below() {
    let (o1, o2, o3, b) =
        (embedding_of("obama.jpg"), embedding_of("obama2.jpg"), embedding_of("obama3.jpg"), embedding_of("biden.jpg"));
    let t = rollcall_face::decision::OPENCV_SFACE_THRESHOLD;
    assert!(o1.cosine(&o2) > t, "obama vs obama2: {}", o1.cosine(&o2));
    assert!(o1.cosine(&o3) > t, "obama vs obama3: {}", o1.cosine(&o3));
    assert!(o1.cosine(&b) < t, "obama vs biden: {}", o1.cosine(&b));
    assert!(o2.cosine(&b) < t && o3.cosine(&b) < t);
}

/// The default backend: ONNX Runtime where `make models` fetched it, else tract.
#[test]
fn agrees_with_opencv_reference() {
    agrees_with_opencv(engine());
}

#[test]
fn agrees_with_opencv_reference_on_tract() {
    static TRACT: OnceLock<FaceEngine> = OnceLock::new();
    let engine = TRACT.get_or_init(|| {
        let config =
            EngineConfig { anti_spoof: false, backend: BackendChoice::Tract, ..EngineConfig::new(models_dir()) };
        FaceEngine::load(&config).expect("engine loads")
    });
    assert_eq!(engine.backend_name(), "tract");
    agrees_with_opencv(engine);
}

/// An image-like input of `shape` (values 0–255), the same on every run.
fn noise(shape: &[usize]) -> NdTensor {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let data = (0..shape.iter().product::<usize>())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 256) as f32
        })
        .collect();
    NdTensor { shape: shape.to_vec(), data }
}

/// The detector runs at any multiple of 32 up to 640 on either side, and each size is a
/// plan of its own: the backends must agree at each. (tract 0.21's optimised plan was
/// wrong at 640×512 on CPUs without AVX-512, though right at the sizes around it.)
#[test]
fn tract_and_onnxruntime_agree_on_the_detector_at_every_size_with_a_640_side() {
    let models = models_dir();
    let library = models.join(ONNXRUNTIME_LIBRARY_FILE);
    assert!(library.is_file(), "{} is missing: run `make models`", library.display());
    let onnxruntime = OnnxRuntimeBackend::load(&library).expect("ONNX Runtime loads");
    let detector = models.join("face_detection_yunet_2023mar.onnx");
    let sizes = (32..=640).step_by(32).flat_map(|side| [(640, side), (side, 640)]);
    for (height, width) in sizes.filter(|&(h, w)| h != w || h == 640).collect::<std::collections::BTreeSet<_>>() {
        let shape = vec![1, 3, height, width];
        let input = noise(&shape);
        let run = |backend: &dyn Backend| {
            backend
                .load_onnx(&detector, std::slice::from_ref(&shape))
                .unwrap()
                .run(std::slice::from_ref(&input))
                .unwrap()
        };
        let (tract, reference) = (run(&TractBackend), run(&onnxruntime));
        for (got, want) in tract.iter().zip(&reference) {
            assert_eq!(got.shape, want.shape);
            let worst =
                got.data.iter().zip(&want.data).map(|(g, w)| (g - w).abs() / w.abs().max(1.0)).fold(0.0, f32::max);
            assert!(
                worst < 1e-3,
                "{height}×{width}: tract differs from ONNX Runtime by {worst} (output {:?})",
                want.shape
            );
        }
    }
}

#[test]
fn onnxruntime_is_the_default_where_its_library_was_fetched() {
    let fetched = models_dir().join(rollcall_face::backend::ONNXRUNTIME_LIBRARY_FILE).is_file();
    assert_eq!(engine().backend_name(), if fetched { "onnxruntime" } else { "tract" });
    let config = EngineConfig { backend: BackendChoice::Onnxruntime, ..EngineConfig::new("/nonexistent") };
    assert!(matches!(FaceEngine::load(&config), Err(Error::ModelMissing { .. })));
}

fn agrees_with_opencv(engine: &FaceEngine) {
    let g = golden();
    let mut embeddings = std::collections::HashMap::new();
    for (name, expected) in g["images"].as_object().unwrap() {
        let faces = engine.analyze(&photo(name)).unwrap();
        let expected_faces = expected["faces"].as_array().unwrap();
        assert_eq!(faces.len(), expected_faces.len(), "{name}: face count");
        let (f, e) = (&faces[0], &expected_faces[0]);
        let eb: Vec<f32> = e["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let b = f.detection.bbox;
        // Same area resampling as OpenCV's INTER_AREA: boxes agree to about a pixel.
        let tol = 2.0;
        for (got, want) in [b.x, b.y, b.width, b.height].iter().zip(&eb) {
            assert!((got - want).abs() <= tol, "{name}: box {b:?} vs OpenCV {eb:?}");
        }
        for (p, w) in f.detection.landmarks.points().iter().zip(e["landmarks"].as_array().unwrap()) {
            let (wx, wy) = (w[0].as_f64().unwrap() as f32, w[1].as_f64().unwrap() as f32);
            assert!((p.x - wx).abs() <= tol && (p.y - wy).abs() <= tol, "{name}: landmark {p:?} vs ({wx}, {wy})");
        }
        assert!((f.detection.score - e["score"].as_f64().unwrap() as f32).abs() < 0.02, "{name}: score");
        let reference: Vec<f32> =
            expected["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let reference = rollcall_face::Embedding::new(&reference).unwrap();
        let ours = f.embedding.clone().unwrap();
        assert!(ours.cosine(&reference) > 0.995, "{name}: our embedding vs OpenCV's: {}", ours.cosine(&reference));
        embeddings.insert(name.clone(), ours);
    }
    for pair in g["pairs"].as_array().unwrap() {
        let (a, b) = (pair["a"].as_str().unwrap(), pair["b"].as_str().unwrap());
        let want = pair["cosine"].as_f64().unwrap() as f32;
        let got = embeddings[a].cosine(&embeddings[b]);
        assert!((got - want).abs() < 0.01, "{a} vs {b}: {got} vs OpenCV {want}");
    }
}

// ---- decoding ----

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

#[test]
fn a_huge_png_header_is_refused_before_decoding() {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    png_chunk(&mut png, b"IEND", &[]);
    // 30 GB of pixels claimed by an 80-byte file: refused from the header alone.
    let r = decode::decode(&png, &DecodeOptions::default());
    assert!(
        matches!(r, Err(Error::TooLarge { width: 100_000, height: 100_000, limit: decode::DEFAULT_MAX_PIXELS })),
        "{r:?}"
    );
}

#[test]
fn non_images_and_truncated_files_are_typed_errors() {
    assert!(matches!(engine().decode(b"%PDF-1.4 not a photo"), Err(Error::NotAnImage)));
    let jpeg = fixture_bytes("obama.jpg");
    let r = engine().decode(&jpeg[..jpeg.len() / 2]);
    assert!(matches!(r, Err(Error::Truncated)), "{r:?}");
    let png = fixture_bytes("32bit.png");
    let r = engine().decode(&png[..png.len() / 2]);
    assert!(matches!(r, Err(Error::Truncated | Error::Corrupt(_))), "{r:?}");
    let r = engine().decode(&png[..20]);
    assert!(matches!(r, Err(Error::Truncated | Error::Corrupt(_))), "{r:?}");
}

#[test]
fn data_uri_round_trip_gives_the_same_face() {
    let bytes = fixture_bytes("obama2.jpg");
    let uri = decode::to_data_uri(&bytes, "image/jpeg");
    let from_uri = engine().decode_base64(&uri).unwrap();
    let bare = uri.split_once(',').unwrap().1;
    let from_bare = engine().decode_base64(bare).unwrap();
    let direct = photo("obama2.jpg");
    assert_eq!(from_uri.rgb(), direct.rgb());
    assert_eq!(from_bare.rgb(), direct.rgb());
}

/// Inserts an EXIF APP1 segment with the given orientation right after the JPEG's SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\x00\x08\x00\x00\x00".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one IFD entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // count
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn encode_jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg).unwrap();
    out
}

#[test]
fn exif_orientation_is_applied() {
    // Stored 40×20, left half red, right half blue; orientation 6 = rotate 90° clockwise to display.
    let stored =
        RgbImage::from_fn(40, 20, |x, _| if x < 20 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) });
    let img = engine().decode(&with_exif_orientation(&encode_jpeg(&stored), 6)).unwrap();
    assert_eq!((img.width(), img.height()), (20, 40));
    let top = img.rgb().get_pixel(10, 5).0;
    let bottom = img.rgb().get_pixel(10, 35).0;
    assert!(top[0] > 200 && top[2] < 60, "top should be red: {top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "bottom should be blue: {bottom:?}");

    // A real portrait stored sideways with orientation 6 is found upright.
    let upright = photo("obama.jpg");
    let sideways = image::imageops::rotate270(upright.rgb());
    let img = engine().decode(&with_exif_orientation(&encode_jpeg(&sideways), 6)).unwrap();
    assert_eq!((img.width(), img.height()), (upright.width(), upright.height()));
    let faces = engine().analyze(&img).unwrap();
    assert_eq!(faces.len(), 1);
    let lm = faces[0].detection.landmarks;
    assert!(lm.nose.y > lm.right_eye.y && lm.nose.y > lm.left_eye.y, "face is upright: {lm:?}");
    let same = faces[0].embedding.as_ref().unwrap().cosine(&embedding_of("obama.jpg"));
    assert!(same > 0.9, "{same}");
}

// ---- alignment ----

#[test]
fn aligned_crops_are_deterministic() {
    let img = photo("obama3.jpg");
    let d = engine().detect(&img).unwrap()[0];
    let a = engine().align(&img, &d).unwrap();
    let b = engine().align(&img, &d).unwrap();
    assert_eq!(a.dimensions(), (112, 112));
    assert_eq!(a.as_raw(), b.as_raw());
    let again = engine().detect(&photo("obama3.jpg")).unwrap()[0];
    assert_eq!(engine().align(&img, &again).unwrap().as_raw(), a.as_raw());
}

#[test]
fn our_alignment_of_opencv_landmarks_embeds_like_opencv() {
    // Isolates align + embed from detection: OpenCV's landmarks, our warp and SFace run.
    let g = golden();
    for name in ["obama.jpg", "biden.jpg"] {
        let e = &g["images"][name];
        let pts: Vec<rollcall_face::Point> = e["faces"][0]["landmarks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| rollcall_face::Point { x: p[0].as_f64().unwrap() as f32, y: p[1].as_f64().unwrap() as f32 })
            .collect();
        let lm = rollcall_face::Landmarks::from_points([pts[0], pts[1], pts[2], pts[3], pts[4]]);
        let crop = rollcall_face::align::align_face(photo(name).rgb(), &lm).unwrap();
        let ours = engine().embed_aligned(&crop).unwrap();
        let reference: Vec<f32> =
            e["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let cos = ours.cosine(&rollcall_face::Embedding::new(&reference).unwrap());
        assert!(cos > 0.998, "{name}: {cos}");
    }
}

// ---- enrollment and identification ----

#[test]
fn enroll_then_identify() {
    let photos: Vec<DecodedImage> = ["obama.jpg", "obama2.jpg"].iter().map(|n| photo(n)).collect();
    let enrollment = engine().enroll(&photos).unwrap();
    assert!(enrollment.outcomes.iter().all(|o| matches!(o, rollcall_face::EnrollOutcome::Accepted { .. })));
    let obama = enrollment.template.unwrap();
    assert_eq!(obama.embeddings().len(), 2);
    let biden = engine().enroll(&[photo("biden.jpg")]).unwrap().template.unwrap();

    // A photo with no face, and one with a cut-off face.
    let blank = DecodedImage::from_rgb(RgbImage::from_pixel(320, 240, image::Rgb([90, 90, 90])));
    let outcomes = engine().enroll(std::slice::from_ref(&blank)).unwrap();
    assert!(outcomes.template.is_none());
    assert!(matches!(
        &outcomes.outcomes[0],
        rollcall_face::EnrollOutcome::Rejected { reason: FaceRejection::NoFace, .. }
    ));

    for fusion in [Fusion::BestOf, Fusion::Mean] {
        let mut index = ExactIndex::new(fusion);
        index.upsert("obama", &Template::from_bytes(&obama.to_bytes()).unwrap());
        index.upsert("biden", &biden);
        let id = engine().identify(&photo("obama3.jpg"), &index).unwrap();
        assert_eq!(id.identity(), Some("obama"), "{id:?}");
        let Identification::Searched { decision: Decision::Recognised { similarity, margin, confidence, .. }, .. } = id
        else {
            panic!("{id:?}")
        };
        assert!(similarity > 0.6 && margin > 0.3 && confidence > 0.9, "{similarity} {margin} {confidence}");

        index.remove("obama");
        let id = engine().identify(&photo("obama3.jpg"), &index).unwrap();
        assert_eq!(id.identity(), None, "a stranger must not be recognised: {id:?}");
        let id = engine().identify(&blank, &index).unwrap();
        assert!(matches!(id, Identification::Rejected { reason: FaceRejection::NoFace, .. }));
    }
}

#[test]
fn the_engine_is_usable_from_several_threads() {
    let reference = embedding_of("biden.jpg");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3).map(|_| s.spawn(|| embedding_of("biden.jpg"))).collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), reference);
        }
    });
}

#[test]
fn anti_spoof_runs_as_a_pipeline_stage() {
    let engine = FaceEngine::load(&EngineConfig::new(models_dir())).expect("engine with anti-spoof loads");
    assert!(engine.anti_spoof().is_some());
    let faces = engine.analyze(&photo("obama.jpg")).unwrap();
    let liveness = faces[0].liveness.expect("liveness computed");
    assert!((0.0..=1.0).contains(&liveness.anti_spoof_score), "{liveness:?}");
    // The other stages are unchanged by it.
    assert_eq!(faces[0].embedding, Some(embedding_of("obama.jpg")));
}

#[test]
fn eval_pairs_on_fixtures() {
    use rollcall_face::eval;
    let csv = "file_x,file_y,decision\nobama.jpg,obama2.jpg,Yes\nobama.jpg,obama3.jpg,Yes\nobama.jpg,biden.jpg,No\nobama2.jpg,biden.jpg,No\nobama.jpg,missing.jpg,Yes\n";
    let pairs = eval::parse_pairs_csv(csv).unwrap();
    let report = eval::evaluate_pairs(engine(), &pairs, &images_dir(), 0.363).unwrap();
    assert_eq!(report.pairs, 5);
    assert_eq!(report.scored_pairs, 4);
    assert_eq!(report.detection_failures.len(), 1);
    assert_eq!(report.detection_failures[0].reason, "unreadable");
    let at = report.at_configured_threshold.unwrap();
    assert_eq!(at.accuracy, 1.0, "{at:?}");
    assert!(report.best_threshold.unwrap().accuracy == 1.0);
    assert!(report.at_far_1_percent.is_none(), "2 different-person pairs cannot measure a 1% FAR");
    assert!(report.mean_ms_per_photo > 0.0);
}

#[test]
fn enrollment_refuses_group_photos_and_blurred_faces() {
    // Two portraits side by side: two comparable faces.
    let (a, b) = (photo("obama2.jpg"), photo("biden.jpg"));
    let h = 600;
    let scale = |img: &DecodedImage| {
        let w = (f64::from(img.width()) * f64::from(h) / f64::from(img.height())).round() as u32;
        rollcall_face::detect::area_resize(img.rgb(), w, h)
    };
    let (a, b) = (scale(&a), scale(&b));
    let mut group = RgbImage::new(a.width() + b.width(), h);
    image::imageops::replace(&mut group, &a, 0, 0);
    image::imageops::replace(&mut group, &b, i64::from(a.width()), 0);
    let group = DecodedImage::from_rgb(group);
    assert_eq!(engine().detect(&group).unwrap().len(), 2);
    let enrollment = engine().enroll(std::slice::from_ref(&group)).unwrap();
    assert!(enrollment.template.is_none());
    assert!(matches!(
        &enrollment.outcomes[0],
        rollcall_face::EnrollOutcome::Rejected { reason: FaceRejection::MultipleFaces { count: 2 }, .. }
    ));

    // A heavily blurred portrait: refused as low quality, with `blurry` among the reasons.
    let blurred = DecodedImage::from_rgb(image::imageops::fast_blur(&scale(&photo("obama.jpg")), 6.0));
    let enrollment = engine().enroll(std::slice::from_ref(&blurred)).unwrap();
    match &enrollment.outcomes[0] {
        rollcall_face::EnrollOutcome::Rejected { reason: FaceRejection::LowQuality { issues }, .. } => {
            assert!(issues.contains(&rollcall_face::QualityIssue::Blurry), "{issues:?}")
        }
        other => panic!("expected low_quality, got {other:?}"),
    }
}
