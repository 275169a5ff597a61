//! The inference backend seam: the engine asks a [`Backend`] for an [`InferenceModel`] and
//! feeds it plain `f32` tensors. Two backends: [`TractBackend`] (pure Rust, always there)
//! and [`OnnxRuntimeBackend`] (ONNX Runtime's library, loaded at run time: several times
//! faster on the depth-wise convolutions both face models are made of; see
//! `docs/PERFORMANCE.md`). [`BackendChoice`] picks one.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tract_onnx::pb;
use tract_onnx::prelude::Framework as _;

use crate::{Error, Result};

mod onnxruntime;
mod tract;

pub use onnxruntime::{ONNXRUNTIME_LIBRARY_FILE, OnnxRuntimeBackend};
pub use tract::{TractBackend, TractModel};

/// A dense row-major `f32` tensor, the only currency between stages and backends.
#[derive(Debug, Clone, PartialEq)]
pub struct NdTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values in row-major order.
    pub data: Vec<f32>,
}

impl NdTensor {
    /// Builds a tensor, checking that `data` matches `shape`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the lengths disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        if shape.iter().product::<usize>() != data.len() {
            return Err(Error::InvalidArgument(format!(
                "tensor of shape {shape:?} needs {} values, got {}",
                shape.iter().product::<usize>(),
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }
}

/// A loaded model, ready to run; shareable between threads.
pub trait InferenceModel: Send + Sync + Debug {
    /// Runs the model on `inputs` (in the model's input order) and returns its outputs in
    /// the model's output order.
    ///
    /// # Errors
    /// [`Error::Model`] when inference fails (e.g. a wrong input shape).
    fn run(&self, inputs: &[NdTensor]) -> Result<Vec<NdTensor>>;
}

/// Loads models for one inference runtime.
pub trait Backend: Send + Sync + Debug {
    /// Short name for logs and benchmarks (`"tract"`, `"onnxruntime"`).
    fn name(&self) -> &'static str;

    /// Loads an ONNX file with its inputs fixed to `input_shapes` and prepares it to run.
    ///
    /// # Errors
    /// [`Error::ModelMissing`] when the file does not exist, [`Error::Model`] otherwise.
    fn load_onnx(&self, path: &Path, input_shapes: &[Vec<usize>]) -> Result<Arc<dyn InferenceModel>>;
}

/// Which backend the engine runs its ONNX models on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// ONNX Runtime when its library ([`ONNXRUNTIME_LIBRARY_FILE`]) is in the models
    /// directory and loads on this machine, else tract.
    #[default]
    Auto,
    /// tract, pure Rust.
    Tract,
    /// ONNX Runtime; its library must be in the models directory.
    Onnxruntime,
}

impl BackendChoice {
    /// The backend this choice means for the models in `models_dir`.
    ///
    /// # Errors
    /// [`Error::ModelMissing`] when ONNX Runtime is asked for and its library is missing,
    /// [`Error::Model`] when the library cannot be loaded.
    pub fn resolve(self, models_dir: &Path) -> Result<Arc<dyn Backend>> {
        let library = models_dir.join(ONNXRUNTIME_LIBRARY_FILE);
        match self {
            BackendChoice::Tract => Ok(Arc::new(TractBackend)),
            BackendChoice::Auto => match OnnxRuntimeBackend::load(&library) {
                Ok(onnxruntime) => Ok(Arc::new(onnxruntime)),
                // Missing, or built for another platform: tract runs everywhere.
                Err(_) => Ok(Arc::new(TractBackend)),
            },
            BackendChoice::Onnxruntime => Ok(Arc::new(OnnxRuntimeBackend::load(&library)?)),
        }
    }
}

/// Reads an ONNX file with its inputs fixed to `input_shapes`, and with the shapes the
/// exporter recorded for outputs and intermediate values dropped: they describe the
/// exporter's input size (e.g. YuNet's 640×640), and each backend infers them again for
/// the fixed inputs.
fn proto_with_input_shapes(path: &Path, input_shapes: &[Vec<usize>]) -> Result<pb::ModelProto> {
    if !path.is_file() {
        return Err(Error::ModelMissing { path: path.to_path_buf() });
    }
    let mut proto = tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| Error::Model(format!("{}: {e:#}", path.display())))?;
    let graph = proto.graph.as_mut().ok_or_else(|| Error::Model(format!("{}: no graph", path.display())))?;
    graph.value_info.clear();
    for output in &mut graph.output {
        output.r#type = None;
    }
    // Weights listed as graph inputs (SFace lists all 174) could be fed at run time, so
    // ONNX Runtime may not treat them as constants and cannot fold batch norms into the
    // convolutions; since IR version 4 an initializer need not be an input.
    let initializers: std::collections::HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    graph.input.retain(|input| !initializers.contains(&input.name));
    for (input, shape) in graph.input.iter_mut().zip(input_shapes) {
        input.r#type = Some(float_tensor_type(shape));
    }
    proto.ir_version = proto.ir_version.max(4);
    Ok(proto)
}

/// The ONNX type of an `f32` tensor of exactly `shape`.
fn float_tensor_type(shape: &[usize]) -> pb::TypeProto {
    let dim = shape
        .iter()
        .map(|&d| pb::tensor_shape_proto::Dimension {
            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d as i64)),
            ..Default::default()
        })
        .collect();
    let tensor = pb::type_proto::Tensor {
        elem_type: pb::tensor_proto::DataType::Float as i32,
        shape: Some(pb::TensorShapeProto { dim }),
    };
    pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(tensor)), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn tract_model_is_send_and_sync() {
        assert_send_sync::<TractModel>();
    }

    #[test]
    fn missing_file_is_model_missing() {
        let r = TractBackend.load_onnx(Path::new("/nonexistent/model.onnx"), &[vec![1]]);
        assert!(matches!(r, Err(Error::ModelMissing { .. })));
    }

    #[test]
    fn auto_falls_back_to_tract_when_onnxruntime_cannot_load() {
        let dir = std::env::temp_dir().join(format!("rollcall-backend-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(BackendChoice::Auto.resolve(&dir).unwrap().name(), "tract", "no library");
        assert!(matches!(BackendChoice::Onnxruntime.resolve(&dir), Err(Error::ModelMissing { .. })));
        std::fs::write(dir.join(ONNXRUNTIME_LIBRARY_FILE), b"not a shared library").unwrap();
        assert_eq!(BackendChoice::Auto.resolve(&dir).unwrap().name(), "tract", "unloadable library");
        assert!(matches!(BackendChoice::Onnxruntime.resolve(&dir), Err(Error::Model(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tensor_shape_is_checked() {
        assert!(NdTensor::new(vec![2, 3], vec![0.0; 6]).is_ok());
        assert!(NdTensor::new(vec![2, 3], vec![0.0; 5]).is_err());
    }
}
