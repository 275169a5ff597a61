//! ONNX Runtime, loaded at run time from its shared library (`make models` fetches it,
//! pinned, from the `onnxruntime` wheel on PyPI); nothing is downloaded at build time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;
use prost::Message as _;

use super::{Backend, InferenceModel, NdTensor, proto_with_input_shapes};
use crate::{Error, Result};

/// File name of the ONNX Runtime library in the models directory.
pub const ONNXRUNTIME_LIBRARY_FILE: &str = "libonnxruntime.so.1.32.0";

/// ONNX Runtime with one thread per call, like tract: the server runs calls in parallel
/// instead.
#[derive(Debug, Clone)]
pub struct OnnxRuntimeBackend {
    environment: Arc<ort::environment::Environment>,
}

/// The library can be loaded once per process; later loads share the first.
static ENVIRONMENT: OnceLock<std::result::Result<Arc<ort::environment::Environment>, String>> = OnceLock::new();

impl OnnxRuntimeBackend {
    /// Loads the library at `library` (once per process).
    ///
    /// # Errors
    /// [`Error::ModelMissing`] when the file does not exist, [`Error::Model`] when it is not
    /// a usable ONNX Runtime.
    pub fn load(library: &Path) -> Result<Self> {
        if !library.is_file() {
            return Err(Error::ModelMissing { path: library.to_path_buf() });
        }
        let environment = ENVIRONMENT.get_or_init(|| {
            let builder = ort::init_from(library).map_err(|e| e.to_string())?;
            builder.with_name("rollcall").build().map(Arc::new).map_err(|e| e.to_string())
        });
        let environment = environment
            .clone()
            .map_err(|e| Error::Model(format!("ONNX Runtime library {}: {e}", library.display())))?;
        Ok(Self { environment })
    }
}

/// Sessions of one model for one input shape. ONNX Runtime runs a session for one caller
/// at a time, so calls from several threads each take a free session, opening another
/// when all are busy.
#[derive(Debug)]
pub struct OnnxRuntimeModel {
    environment: Arc<ort::environment::Environment>,
    /// Where another session reads the model from. The prepared model is not kept: SFace's
    /// is 37 MB, as much as a session holds, for sessions that are opened rarely.
    source: PathBuf,
    input_shapes: Vec<Vec<usize>>,
    input_names: Vec<String>,
    output_names: Vec<String>,
    idle: Mutex<Vec<Session>>,
}

fn ort_error(context: &str) -> impl Fn(ort::Error) -> Error + '_ {
    move |e| Error::Model(format!("{context}: {e}"))
}

/// Opens a session on the model at `path` with its inputs fixed to `input_shapes`; the
/// prepared model bytes live only while ONNX Runtime reads them.
fn open_session(
    environment: &ort::environment::Environment,
    path: &Path,
    input_shapes: &[Vec<usize>],
) -> Result<Session> {
    let model = proto_with_input_shapes(path, input_shapes)?.encode_to_vec();
    let context = path.display().to_string();
    let err = ort_error(&context);
    // Neither the CPU arena nor the memory pattern (a pre-planned block per input shape)
    // made inference measurably faster here, and together they kept 32 MB resident
    // (docs/PERFORMANCE.md, "Memory").
    Session::builder(environment)
        .map_err(&err)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| err(e.into()))?
        .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
        .map_err(|e| err(e.into()))?
        .with_memory_pattern(false)
        .map_err(|e| err(e.into()))?
        .with_intra_threads(1)
        .map_err(|e| err(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| err(e.into()))?
        .commit_from_memory(&model)
        .map_err(&err)
}

impl Backend for OnnxRuntimeBackend {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn load_onnx(&self, path: &Path, input_shapes: &[Vec<usize>]) -> Result<Arc<dyn InferenceModel>> {
        let session = open_session(&self.environment, path, input_shapes)?;
        let input_names = session.inputs().iter().map(|i| i.name().to_owned()).collect();
        let output_names = session.outputs().iter().map(|o| o.name().to_owned()).collect();
        Ok(Arc::new(OnnxRuntimeModel {
            environment: self.environment.clone(),
            source: path.to_path_buf(),
            input_shapes: input_shapes.to_vec(),
            input_names,
            output_names,
            idle: Mutex::new(vec![session]),
        }))
    }
}

impl OnnxRuntimeModel {
    fn run_on(&self, session: &mut Session, inputs: &[NdTensor]) -> Result<Vec<NdTensor>> {
        let values = inputs
            .iter()
            .zip(&self.input_names)
            .map(|(t, name)| {
                let tensor =
                    TensorRef::from_array_view((t.shape.clone(), t.data.as_slice())).map_err(ort_error("input"))?;
                Ok((name.as_str(), tensor))
            })
            .collect::<Result<Vec<_>>>()?;
        let outputs = session.run(values).map_err(ort_error("inference"))?;
        self.output_names
            .iter()
            .map(|name| {
                let value = outputs.get(name).ok_or_else(|| Error::Model(format!("output {name} missing")))?;
                let (shape, data) = value.try_extract_tensor::<f32>().map_err(ort_error("output"))?;
                let shape = shape.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
                NdTensor::new(shape, data.to_vec())
            })
            .collect()
    }
}

impl InferenceModel for OnnxRuntimeModel {
    fn run(&self, inputs: &[NdTensor]) -> Result<Vec<NdTensor>> {
        let idle = self.idle.lock().map_err(|_| Error::Model("session pool poisoned".into()))?.pop();
        let mut session = match idle {
            Some(session) => session,
            None => open_session(&self.environment, &self.source, &self.input_shapes)?,
        };
        let outputs = self.run_on(&mut session, inputs);
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(session);
        }
        outputs
    }
}
