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
    /// Inference backend: `auto` (ONNX Runtime when its library is among the models, else
    /// tract), `tract` or `onnxruntime`.
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    pub backend: BackendChoice,
}

fn parse_backend(s: &str) -> Result<BackendChoice, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("unknown backend {s:?}: use auto, tract or onnxruntime"))
}

impl EngineArgs {
    /// The engine configuration these options describe.
    pub fn config(&self) -> EngineConfig {
        EngineConfig { anti_spoof: !self.no_anti_spoof, backend: self.backend, ..EngineConfig::new(&self.models) }
    }

    /// Loads the engine.
    pub fn load(&self) -> anyhow::Result<FaceEngine> {
        FaceEngine::load(&self.config()).context("loading the face models (run `make models`)")
    }
}
