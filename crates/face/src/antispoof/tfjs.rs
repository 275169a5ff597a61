//! A small TensorFlow.js graph-model loader: reads `model.json` and its weight shards
//! and builds an equivalent tract [`TypedModel`], so that TF.js models run in pure Rust.
//!
//! Only the operations the Human library's `antispoof` and `liveness` models use are
//! supported (`_FusedConv2D`, `_FusedMatMul`, `MaxPool`, `Reshape`, `Relu`, `Sigmoid`,
//! `Softmax`, `Add`/`AddV2`/`BiasAdd`, `Mul`, `Sub`, `Identity`, `Const`, `Placeholder`),
//! all in TensorFlow's NHWC layout, which tract runs natively. Anything else is refused
//! with [`Error::Model`] naming the op, rather than guessed at.
//!
//! Weight quantisation as written by `tensorflowjs_converter` is undone at load time:
//! `float16` halves, and affine `uint8`/`uint16` (`min + scale * q`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::change_axes::wire_with_rank_broadcast;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_core::ops::nn::{DataFormat, Softmax, SoftmaxKind, sigmoid};

use crate::Error;

/// `model.json` of a TF.js graph model (the parts we read).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModelJson {
    format: Option<String>,
    model_topology: Topology,
    weights_manifest: Vec<WeightGroup>,
}

#[derive(Debug, Deserialize)]
struct Topology {
    node: Vec<NodeDef>,
}

#[derive(Debug, Deserialize)]
struct NodeDef {
    name: String,
    op: String,
    #[serde(default)]
    input: Vec<String>,
    #[serde(default)]
    attr: HashMap<String, AttrValue>,
}

/// A TensorFlow `AttrValue` in JSON form: exactly one of these is set.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AttrValue {
    /// Base64 of the bytes.
    s: Option<String>,
    /// Integers are strings in proto3 JSON.
    i: Option<String>,
    b: Option<bool>,
    list: Option<AttrList>,
    shape: Option<ShapeAttr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AttrList {
    s: Vec<String>,
    i: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ShapeAttr {
    dim: Vec<DimAttr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DimAttr {
    size: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WeightGroup {
    paths: Vec<String>,
    weights: Vec<WeightSpec>,
}

#[derive(Debug, Deserialize)]
struct WeightSpec {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    quantization: Option<Quantization>,
}

#[derive(Debug, Deserialize)]
struct Quantization {
    dtype: String,
    scale: Option<f32>,
    min: Option<f32>,
}

fn model_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Model(format!("{}: {msg}", path.display()))
}

fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::ModelMissing { path: path.to_path_buf() },
        _ => model_err(path, e),
    })
}

/// Loads a TF.js graph model and returns it as a typed tract model with a fixed batch of 1,
/// together with the input's `[height, width, channels]`.
pub(crate) fn load_graph_model(json_path: &Path) -> Result<(TypedModel, [usize; 3]), Error> {
    let json = read_file(json_path)?;
    let model: ModelJson = serde_json::from_slice(&json).map_err(|e| model_err(json_path, e))?;
    if let Some(format) = &model.format
        && format != "graph-model"
    {
        return Err(model_err(json_path, format!("format {format:?} is not a TF.js graph model")));
    }
    let dir = json_path.parent().unwrap_or(Path::new("."));
    let weights = read_weights(dir, &model.weights_manifest)?;
    build(&model.model_topology.node, weights).map_err(|e| model_err(json_path, format!("{e:#}")))
}

/// Reads every shard of the manifest and decodes its weights to tensors, by name.
fn read_weights(dir: &Path, manifest: &[WeightGroup]) -> Result<HashMap<String, Tensor>, Error> {
    let mut out = HashMap::new();
    for group in manifest {
        let mut bytes = Vec::new();
        let mut last_path = PathBuf::new();
        for p in &group.paths {
            last_path = dir.join(p);
            bytes.extend(read_file(&last_path)?);
        }
        let mut offset = 0usize;
        for w in &group.weights {
            let count: usize = w.shape.iter().product();
            let (tensor, used) = decode_weight(w, count, &bytes[offset.min(bytes.len())..])
                .map_err(|e| model_err(&last_path, format!("weight {}: {e}", w.name)))?;
            offset += used;
            out.insert(w.name.clone(), tensor);
        }
        if offset != bytes.len() {
            return Err(model_err(
                &last_path,
                format!("weights use {offset} bytes but the shards hold {}", bytes.len()),
            ));
        }
    }
    Ok(out)
}

fn decode_weight(w: &WeightSpec, count: usize, bytes: &[u8]) -> Result<(Tensor, usize), String> {
    let stored = w.quantization.as_ref().map(|q| q.dtype.as_str()).unwrap_or(w.dtype.as_str());
    let width = match stored {
        "float32" | "int32" => 4,
        "float16" | "uint16" => 2,
        "uint8" | "bool" => 1,
        other => return Err(format!("unsupported stored dtype {other}")),
    };
    let used = count * width;
    let bytes = bytes.get(..used).ok_or_else(|| "weight file is too short".to_string())?;
    let floats = |f: &dyn Fn(&[u8]) -> f32| -> Vec<f32> { bytes.chunks_exact(width).map(f).collect() };
    let affine = |q: &Quantization| -> Result<(f32, f32), String> {
        match (q.scale, q.min) {
            (Some(scale), Some(min)) => Ok((scale, min)),
            _ => Err("affine quantisation without scale and min".into()),
        }
    };
    let tensor = match (w.dtype.as_str(), &w.quantization) {
        ("float32", None) => {
            let v = floats(&|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            tensor_from(&w.shape, v)?
        }
        ("int32", None) => {
            let v: Vec<i32> = bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            tensor_from(&w.shape, v)?
        }
        ("float32", Some(q)) if q.dtype == "float16" => {
            let v = floats(&|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32());
            tensor_from(&w.shape, v)?
        }
        ("float32", Some(q)) if q.dtype == "uint8" => {
            let (scale, min) = affine(q)?;
            tensor_from(&w.shape, floats(&|c| min + scale * f32::from(c[0])))?
        }
        ("float32", Some(q)) if q.dtype == "uint16" => {
            let (scale, min) = affine(q)?;
            tensor_from(&w.shape, floats(&|c| min + scale * f32::from(u16::from_le_bytes([c[0], c[1]]))))?
        }
        (dtype, q) => {
            return Err(format!("unsupported dtype {dtype} (quantised as {:?})", q.as_ref().map(|q| q.dtype.as_str())));
        }
    };
    Ok((tensor, used))
}

fn tensor_from<T: Datum>(shape: &[usize], data: Vec<T>) -> Result<Tensor, String> {
    tract_ndarray::ArrayD::from_shape_vec(shape, data).map(Tensor::from).map_err(|e| e.to_string())
}

impl NodeDef {
    fn attr(&self, key: &str) -> TractResult<&AttrValue> {
        self.attr.get(key).with_context(|| format!("node {} ({}) has no attribute {key}", self.name, self.op))
    }

    fn attr_str(&self, key: &str) -> TractResult<String> {
        let s = self.attr(key)?.s.as_deref().with_context(|| format!("{}: {key} is not a string", self.name))?;
        decode_b64(s)
    }

    fn attr_ints(&self, key: &str) -> TractResult<Vec<i64>> {
        let list = self.attr(key)?.list.as_ref().with_context(|| format!("{}: {key} is not a list", self.name))?;
        list.i.iter().map(|i| Ok(i.parse::<i64>()?)).collect()
    }

    fn attr_bool(&self, key: &str) -> bool {
        self.attr.get(key).and_then(|a| a.b).unwrap_or(false)
    }

    fn fused_ops(&self) -> TractResult<Vec<String>> {
        match self.attr.get("fused_ops").and_then(|a| a.list.as_ref()) {
            Some(list) => list.s.iter().map(|s| decode_b64(s)).collect(),
            None => Ok(vec![]),
        }
    }

    /// Checks the layout is NHWC and returns the spatial strides or dilations of `key`.
    fn spatial(&self, key: &str) -> TractResult<TVec<usize>> {
        let v = match self.attr.get(key) {
            Some(_) => self.attr_ints(key)?,
            None => vec![1, 1, 1, 1],
        };
        ensure!(v.len() == 4 && v[0] == 1 && v[3] == 1, "{}: unsupported {key} {v:?}", self.name);
        Ok(tvec!(v[1] as usize, v[2] as usize))
    }

    fn check_nhwc(&self) -> TractResult<()> {
        if self.attr.contains_key("data_format") {
            let f = self.attr_str("data_format")?;
            ensure!(f == "NHWC", "{}: data_format {f} is not supported (only NHWC)", self.name);
        }
        Ok(())
    }

    fn padding(&self) -> TractResult<PaddingSpec> {
        Ok(match self.attr_str("padding")?.as_str() {
            "VALID" => PaddingSpec::Valid,
            // TensorFlow's SAME puts the odd pixel at the bottom/right.
            "SAME" => PaddingSpec::SameUpper,
            "EXPLICIT" => {
                let p = self.attr_ints("explicit_paddings")?;
                ensure!(p.len() == 8, "{}: explicit_paddings {p:?}", self.name);
                PaddingSpec::Explicit(tvec!(p[2] as usize, p[4] as usize), tvec!(p[3] as usize, p[5] as usize))
            }
            other => bail!("{}: padding {other} is not supported", self.name),
        })
    }
}

fn decode_b64(s: &str) -> TractResult<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s)?;
    Ok(String::from_utf8(bytes)?)
}

/// Translates the TF graph into a tract model, node by node, in dependency order.
fn build(nodes: &[NodeDef], mut weights: HashMap<String, Tensor>) -> TractResult<(TypedModel, [usize; 3])> {
    let mut model = TypedModel::default();
    let mut wires: HashMap<&str, OutletId> = HashMap::new();
    let mut input_shape = None;
    let mut output = None;
    let mut pending: Vec<&NodeDef> = nodes.iter().collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for node in pending {
            let inputs: Option<Vec<OutletId>> = node
                .input
                .iter()
                .filter(|i| !i.starts_with('^'))
                .map(|i| wires.get(i.strip_suffix(":0").unwrap_or(i)).copied())
                .collect();
            let Some(inputs) = inputs else {
                rest.push(node);
                continue;
            };
            let wire = match node.op.as_str() {
                "Placeholder" => {
                    ensure!(input_shape.is_none(), "graph has more than one input");
                    let dims = &node.attr("shape")?.shape.as_ref().context("placeholder shape")?.dim;
                    let dims: Vec<i64> =
                        dims.iter().map(|d| d.size.as_deref().unwrap_or("-1").parse()).collect::<Result<_, _>>()?;
                    ensure!(
                        dims.len() == 4 && dims[1..].iter().all(|d| *d > 0),
                        "input shape {dims:?} is not [batch, height, width, channels]"
                    );
                    let hwc = [dims[1] as usize, dims[2] as usize, dims[3] as usize];
                    input_shape = Some(hwc);
                    model.add_source(&node.name, f32::fact([1, hwc[0], hwc[1], hwc[2]]))?
                }
                "Const" => {
                    let t =
                        weights.remove(&node.name).with_context(|| format!("no weights for const {}", node.name))?;
                    model.add_const(&node.name, t)?
                }
                "Identity" => {
                    if node.name == "Identity" || output.is_none() {
                        output = Some(inputs[0]);
                    }
                    inputs[0]
                }
                "_FusedConv2D" | "Conv2D" => wire_conv(&mut model, node, &inputs)?,
                "_FusedMatMul" | "MatMul" => wire_matmul(&mut model, node, &inputs)?,
                "MaxPool" => {
                    node.check_nhwc()?;
                    let ksize = node.spatial("ksize")?;
                    let c = channels(&model, inputs[0])?;
                    let pool_spec = PoolSpec {
                        data_format: DataFormat::NHWC,
                        kernel_shape: ksize,
                        padding: node.padding()?,
                        dilations: None,
                        strides: Some(node.spatial("strides")?),
                        input_channels: c,
                        output_channels: c,
                    };
                    model.wire_node(&node.name, MaxPool { pool_spec, with_index_outputs: None }, &[inputs[0]])?[0]
                }
                "Reshape" => wire_reshape(&mut model, node, &inputs)?,
                "Relu" => relu(&mut model, &node.name, inputs[0])?,
                "Sigmoid" => model.wire_node(&node.name, sigmoid(), &[inputs[0]])?[0],
                "Softmax" => {
                    let rank = model.outlet_fact(inputs[0])?.rank();
                    let op = Softmax { axes: tvec!(rank - 1), quant_output_dt: None, kind: SoftmaxKind::default() };
                    model.wire_node(&node.name, op, &[inputs[0]])?[0]
                }
                "Add" | "AddV2" | "BiasAdd" => binary(&mut model, &node.name, math::add(), inputs[0], inputs[1])?,
                "Sub" => binary(&mut model, &node.name, math::sub(), inputs[0], inputs[1])?,
                "Mul" => binary(&mut model, &node.name, math::mul(), inputs[0], inputs[1])?,
                other => bail!("unsupported TensorFlow op {other} (node {})", node.name),
            };
            wires.insert(&node.name, wire);
        }
        ensure!(
            rest.len() < before,
            "graph has dangling inputs: {:?}",
            rest.iter().map(|n| &n.name).collect::<Vec<_>>()
        );
        pending = rest;
    }
    let input_shape = input_shape.context("graph has no Placeholder input")?;
    let output = output.context("graph has no Identity output")?;
    model.select_output_outlets(&[output])?;
    Ok((model, input_shape))
}

fn channels(model: &TypedModel, wire: OutletId) -> TractResult<usize> {
    let fact = model.outlet_fact(wire)?;
    ensure!(fact.rank() == 4, "expected an NHWC tensor, got {fact:?}");
    Ok(fact.shape[3].to_usize()?)
}

fn binary(model: &mut TypedModel, name: &str, op: TypedBinOp, a: OutletId, b: OutletId) -> TractResult<OutletId> {
    Ok(wire_with_rank_broadcast(name, model, op, &[a, b])?[0])
}

fn relu(model: &mut TypedModel, name: &str, x: OutletId) -> TractResult<OutletId> {
    let zero = model.add_const(format!("{name}.zero"), tensor0(0f32))?;
    binary(model, name, math::max(), x, zero)
}

/// Applies the ops `_FusedConv2D`/`_FusedMatMul` fuse after the product.
fn fused_tail(model: &mut TypedModel, node: &NodeDef, inputs: &[OutletId], mut x: OutletId) -> TractResult<OutletId> {
    let ops = node.fused_ops()?;
    let mut ops = ops.iter().map(String::as_str).peekable();
    if ops.peek() == Some(&"BiasAdd") {
        ops.next();
        let bias = *inputs.get(2).with_context(|| format!("{}: BiasAdd without a bias input", node.name))?;
        x = binary(model, &format!("{}.bias", node.name), math::add(), x, bias)?;
    }
    for op in ops {
        x = match op {
            "Relu" => relu(model, &format!("{}.relu", node.name), x)?,
            other => bail!("{}: unsupported fused op {other}", node.name),
        };
    }
    Ok(x)
}

fn wire_conv(model: &mut TypedModel, node: &NodeDef, inputs: &[OutletId]) -> TractResult<OutletId> {
    node.check_nhwc()?;
    let kernel = model.outlet_fact(inputs[1])?.clone();
    ensure!(kernel.rank() == 4, "{}: kernel {kernel:?} is not HWIO", node.name);
    let k: Vec<usize> = kernel.shape.iter().map(|d| d.to_usize()).collect::<Result<_, _>>()?;
    ensure!(k[2] == channels(model, inputs[0])?, "{}: kernel {k:?} does not match the input channels", node.name);
    let pool_spec = PoolSpec {
        data_format: DataFormat::NHWC,
        kernel_shape: tvec!(k[0], k[1]),
        padding: node.padding()?,
        dilations: Some(node.spatial("dilations")?),
        strides: Some(node.spatial("strides")?),
        input_channels: k[2],
        output_channels: k[3],
    };
    let conv = Conv { pool_spec, kernel_fmt: KernelFormat::HWIO, group: 1, q_params: None };
    let zero_bias = model.add_const(format!("{}.no_bias", node.name), tensor0(0f32))?;
    let x = model.wire_node(format!("{}.conv", node.name), conv, &[inputs[0], inputs[1], zero_bias])?[0];
    let x = fused_tail(model, node, inputs, x)?;
    Ok(model.wire_node(&node.name, tract_onnx::tract_core::ops::identity::Identity, &[x])?[0])
}

fn wire_matmul(model: &mut TypedModel, node: &NodeDef, inputs: &[OutletId]) -> TractResult<OutletId> {
    let a = if node.attr_bool("transpose_a") { "km" } else { "mk" };
    let b = if node.attr_bool("transpose_b") { "nk" } else { "kn" };
    let axes: AxesMapping = format!("{a},{b}->mn").parse()?;
    let x = model.wire_node(format!("{}.matmul", node.name), EinSum::new(axes, f32::datum_type()), &inputs[..2])?[0];
    let x = fused_tail(model, node, inputs, x)?;
    Ok(model.wire_node(&node.name, tract_onnx::tract_core::ops::identity::Identity, &[x])?[0])
}

fn wire_reshape(model: &mut TypedModel, node: &NodeDef, inputs: &[OutletId]) -> TractResult<OutletId> {
    let from = model.outlet_fact(inputs[0])?.shape.to_tvec();
    let target = model
        .outlet_fact(inputs[1])?
        .konst
        .clone()
        .with_context(|| format!("{}: the target shape must be a constant", node.name))?;
    let target: Vec<i64> = target.cast_to::<i64>()?.to_plain_array_view::<i64>()?.iter().copied().collect();
    let volume = from.iter().map(|d| d.to_i64()).product::<Result<i64, _>>()?;
    let known: i64 = target.iter().filter(|d| **d >= 0).product();
    let to: TVec<TDim> = target.iter().map(|d| if *d < 0 { volume / known.max(1) } else { *d }.to_dim()).collect();
    Ok(model.wire_node(&node.name, AxisOp::Reshape(0, from, to), &[inputs[0]])?[0])
}
