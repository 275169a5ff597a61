//! The pure-Rust tract backend.

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;

use super::{Backend, InferenceModel, NdTensor, proto_with_input_shapes};
use crate::{Error, Result};

/// The pure-Rust tract backend (single-threaded per call; run calls in parallel instead).
#[derive(Debug, Default, Clone, Copy)]
pub struct TractBackend;

type Plan = Arc<TypedRunnableModel>;

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
        let proto = proto_with_input_shapes(path, input_shapes)?;
        let err = model_err(path);
        let mut model = tract_onnx::onnx().model_for_proto_model(&proto).map_err(&err)?;
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
                let view = o.to_plain_array_view::<f32>().map_err(|e| Error::Model(format!("output: {e:#}")))?;
                Ok(NdTensor { shape: view.shape().to_vec(), data: view.iter().copied().collect() })
            })
            .collect()
    }
}
