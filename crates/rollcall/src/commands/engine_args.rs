//! The face-engine options `eval` and `bench` share.

use std::path::PathBuf;

use anyhow::Context;
use rollcall_face::{BackendChoice, EngineConfig, FaceEngine};

#[derive(clap::Args)]
pub struct EngineArgs {
    /// Directory with the model files (`make models`).
    #[arg(long, env = "ROLLCALL_MODELS_DIR", default_value = "data/models")]
    pub models: PathBuf,
    /// Skip anti-spoofing.
    #[arg(long)]
    pub no_anti_spoof: bool,
    /// Anti-spoof threshold on the combined score (default: the server's, `anti_spoof_threshold`).
    #[arg(long, value_parser = parse_unit_interval)]
    pub anti_spoof_threshold: Option<f32>,
    /// Inference backend: `auto` (ONNX Runtime when its library is among the models, else
    /// tract), `tract` or `onnxruntime`.
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    pub backend: BackendChoice,
}

fn parse_backend(s: &str) -> Result<BackendChoice, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("unknown backend {s:?}: use auto, tract or onnxruntime"))
}

fn parse_unit_interval(s: &str) -> Result<f32, String> {
    s.parse::<f32>()
        .ok()
        .filter(|v| (0.0..=1.0).contains(v))
        .ok_or_else(|| format!("{s:?} is not a number from 0 to 1"))
}

impl EngineArgs {
    /// The engine configuration these options describe.
    pub fn config(&self) -> EngineConfig {
        EngineConfig {
            anti_spoof: !self.no_anti_spoof,
            anti_spoof_threshold: self.anti_spoof_threshold,
            backend: self.backend,
            ..EngineConfig::new(&self.models)
        }
    }

    /// Loads the engine.
    pub fn load(&self) -> anyhow::Result<FaceEngine> {
        FaceEngine::load(&self.config()).context("loading the face models (run `make models`)")
    }
}
