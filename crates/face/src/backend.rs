//! The inference backend seam: the engine asks a [`Backend`] for an [`InferenceModel`] and
//! feeds it plain `f32` tensors. tract (pure Rust) is the only backend today; an ONNX
//! Runtime backend can be added behind the same traits without touching the stages.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::{Error, Result};

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
    /// Short name for logs and benchmarks (`"tract"`).
    fn name(&self) -> &'static str;

    /// Loads an ONNX file with its inputs fixed to `input_shapes` and prepares it to run.
    ///
    /// # Errors
    /// [`Error::ModelMissing`] when the file does not exist, [`Error::Model`] otherwise.
    fn load_onnx(&self, path: &Path, input_shapes: &[Vec<usize>]) -> Result<Arc<dyn InferenceModel>>;
}

/// The pure-Rust tract backend (single-threaded per call; run calls in parallel instead).
#[derive(Debug, Default, Clone, Copy)]
pub struct TractBackend;

type Plan = TypedRunnableModel<TypedModel>;

/// A tract model optimised for fixed input shapes.
#[derive(Debug)]
pub struct TractModel {
    plan: Plan,
}

fn model_err(path: &Path) -> impl Fn(TractError) -> Error + '_ {
    move |e| Error::Model(format!("{}: {e:#}", path.display()))
}

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn load_onnx(&self, path: &Path, input_shapes: &[Vec<usize>]) -> Result<Arc<dyn InferenceModel>> {
        if !path.is_file() {
            return Err(Error::ModelMissing { path: path.to_path_buf() });
        }
        let err = model_err(path);
        // Shapes recorded in the file describe the exporter's input size (e.g. YuNet's
        // 640×640); drop them so the model can be prepared for other sizes.
        let onnx = tract_onnx::onnx().with_ignore_output_shapes(true);
        let mut proto = onnx.proto_model_for_path(path).map_err(&err)?;
        if let Some(graph) = proto.graph.as_mut() {
            graph.value_info.clear();
        }
        let mut model = onnx.model_for_proto_model(&proto).map_err(&err)?;
        for (i, shape) in input_shapes.iter().enumerate() {
            model = model.with_input_fact(i, f32::fact(shape).into()).map_err(&err)?;
        }
        let plan = model.into_optimized().map_err(&err)?.into_runnable().map_err(&err)?;
        Ok(Arc::new(TractModel { plan }))
    }
}

impl InferenceModel for TractModel {
    fn run(&self, inputs: &[NdTensor]) -> Result<Vec<NdTensor>> {
        let inputs: TVec<TValue> = inputs
            .iter()
            .map(|t| {
                tract_onnx::prelude::Tensor::from_shape(&t.shape, &t.data)
                    .map(|t| t.into_tvalue())
                    .map_err(|e| Error::Model(format!("input: {e:#}")))
            })
            .collect::<Result<_>>()?;
        let outputs = self.plan.run(inputs).map_err(|e| Error::Model(format!("{e:#}")))?;
        outputs
            .iter()
            .map(|o| {
                let view = o.to_array_view::<f32>().map_err(|e| Error::Model(format!("output: {e:#}")))?;
                Ok(NdTensor { shape: view.shape().to_vec(), data: view.iter().copied().collect() })
            })
            .collect()
    }
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
    fn tensor_shape_is_checked() {
        assert!(NdTensor::new(vec![2, 3], vec![0.0; 6]).is_ok());
        assert!(NdTensor::new(vec![2, 3], vec![0.0; 5]).is_err());
    }
}
