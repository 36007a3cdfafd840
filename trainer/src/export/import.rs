//! ONNX import, the inverse of the exporter: turn an ONNX model built from the runtime's layers
//! (written by `anole`, or exported from PyTorch) into an architecture and f32 parameters, and
//! refuse anything else with an error that names the node and operator.
//!
//! Accepted: a single chain of nodes from one float input (`[batch, n]` or `[batch, c, h, w]`)
//! to one output, made of `Gemm` (`transB` 0 or 1), `MatMul` (+ `Add` of a bias), `Conv`,
//! `BatchNormalization` (inference mode), `Relu`, `Tanh`, `MaxPool` (no padding), `Flatten`
//! (`axis = 1`), `Reshape` to `[batch, -1]`, `Identity`, and `Constant` nodes feeding them.

use crate::export::onnx::{loss_name, optimizer_name, META_PREFIX};
use crate::model::{encode_blob, Arch, BlobMeta};
use anole::blob::AdaptSettings;
use anole::layers::{Window, MAX_DIM};
use anole::{DType, Layer, Shape};
use anyhow::{anyhow, bail, Context, Result};
use prost::Message;
use std::collections::HashMap;
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType,
    tensor_shape_proto::dimension::Value as Dim, type_proto, AttributeProto, ModelProto, NodeProto,
    TensorProto,
};

/// Oldest default-domain opset read (BatchNormalization and Gemm have today's semantics since 9).
pub const MIN_OPSET: i64 = 9;

/// A network read from ONNX: architecture, parameters in blob order, and the settings and
/// provenance an anole export carries in its metadata (absent for other producers).
#[derive(Clone, Debug)]
pub struct Imported {
    /// Architecture.
    pub arch: Arch,
    /// Parameters in blob tensor order.
    pub params: Vec<f32>,
    /// Settings and provenance from `anole.*` metadata, if the file has them.
    pub meta: Option<BlobMeta>,
}

/// Loss to adapt an imported model with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LossArg {
    /// Mean squared error (regression).
    Mse,
    /// Softmax cross-entropy on integer labels (classification).
    Xent,
}

/// Which layers adapt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AdaptArg {
    /// Every layer with parameters.
    All,
    /// The last layer with parameters only.
    Head,
}

/// Storage dtype of the written blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DTypeArg {
    /// 32-bit float.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl From<DTypeArg> for DType {
    fn from(d: DTypeArg) -> DType {
        match d {
            DTypeArg::F32 => DType::F32,
            DTypeArg::F16 => DType::F16,
            DTypeArg::Bf16 => DType::Bf16,
        }
    }
}

/// Overrides of the blob's settings; `None` keeps the file's `anole.*` metadata or, for other
/// producers, the defaults ([`DEFAULT_LR`], [`DEFAULT_STEPS`], [`DEFAULT_BATCH`], MSE, SGD,
/// all layers, f32).
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Inner learning rate.
    pub lr: Option<f32>,
    /// Adaptation steps.
    pub steps: Option<u32>,
    /// Minibatch size of one step.
    pub batch: Option<u32>,
    /// Loss.
    pub loss: Option<LossArg>,
    /// Which layers adapt.
    pub adapt: Option<AdaptArg>,
    /// Storage dtype.
    pub dtype: Option<DTypeArg>,
}

/// Learning rate of a model without anole metadata: the sine recipe's adaptation rate.
pub const DEFAULT_LR: f32 = 0.02;
/// Steps of a model without anole metadata: the sine recipe's 32 adaptation steps.
pub const DEFAULT_STEPS: u32 = 32;
/// Batch of a model without anole metadata: the sine recipe's 10 support points.
pub const DEFAULT_BATCH: u32 = 10;

/// Decode ONNX bytes and read the network (see the module documentation for what is accepted).
pub fn parse_onnx(bytes: &[u8]) -> Result<Imported> {
    let model = ModelProto::decode(bytes)
        .map_err(|e| anyhow!("not an ONNX model (protobuf decoding failed: {e})"))?;
    read_model(&model)
}

/// Encode an imported network as a blob with `opts` applied over its metadata or defaults.
pub fn to_blob(imp: &Imported, opts: &ImportOptions) -> Result<Vec<u8>> {
    let mut meta = imp.meta.clone().unwrap_or_else(|| BlobMeta {
        dtype: DType::F32,
        settings: AdaptSettings {
            loss: 0,
            optimizer: 0,
            lr: DEFAULT_LR,
            steps: DEFAULT_STEPS,
            batch: DEFAULT_BATCH,
            trainable: imp.arch.all_layers(),
            lr_scale: Default::default(),
        },
        algorithm: "import".into(),
        task: "onnx".into(),
        seed: 0,
        meta_iterations: 0,
    });
    let s = &mut meta.settings;
    if let Some(lr) = opts.lr {
        if !(lr.is_finite() && lr >= 0.0) {
            bail!("--lr {lr}: must be finite and >= 0");
        }
        s.lr = lr;
    }
    if let Some(steps) = opts.steps {
        s.steps = steps;
    }
    if let Some(batch) = opts.batch {
        if batch == 0 {
            bail!("--batch must be at least 1");
        }
        s.batch = batch;
    }
    if let Some(loss) = opts.loss {
        s.loss = match loss {
            LossArg::Mse => 0,
            LossArg::Xent => 1,
        };
    }
    let outputs = imp.arch.shapes()?.last().map(|s| s.len()).unwrap_or(0);
    if s.loss == 1 && outputs < 2 {
        bail!("cross-entropy needs at least 2 outputs (classes); the model has {outputs}");
    }
    if let Some(adapt) = opts.adapt {
        s.trainable = match adapt {
            AdaptArg::All => imp.arch.all_layers(),
            AdaptArg::Head => imp.arch.head_only(),
        };
    }
    if let Some(d) = opts.dtype {
        meta.dtype = d.into();
    }
    encode_blob(&imp.arch, &imp.params, &meta)
}

/// Where a node sits, for error messages: `node 3 'conv1' (Conv)`.
fn at(i: usize, n: &NodeProto) -> String {
    if n.name.is_empty() {
        format!("node {i} ({})", n.op_type)
    } else {
        format!("node {i} '{}' ({})", n.name, n.op_type)
    }
}

/// Read a decoded model.
pub fn read_model(model: &ModelProto) -> Result<Imported> {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| {
            anyhow!("no default-domain opset import: not an ONNX model of standard operators")
        })?;
    if opset < MIN_OPSET {
        bail!("opset {opset} is older than {MIN_OPSET}, the oldest this importer reads; re-export with a newer opset");
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| anyhow!("the model has no graph"))?;
    let mut consts: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    for n in &graph.node {
        if n.op_type == "Constant" {
            if let (Some(out), Some(t)) = (
                n.output.first(),
                n.attribute
                    .iter()
                    .find(|a| a.name == "value")
                    .and_then(|a| a.t.as_ref()),
            ) {
                consts.insert(out.as_str(), t);
            }
        }
    }

    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|v| !consts.contains_key(v.name.as_str()))
        .collect();
    let [input] = inputs.as_slice() else {
        bail!(
            "the graph has {} inputs besides its weights; the runtime takes exactly one",
            inputs.len()
        );
    };
    let [output] = graph.output.as_slice() else {
        bail!(
            "the graph has {} outputs; the runtime produces exactly one",
            graph.output.len()
        );
    };
    let input_shape = input_dims(input)?;
    let mut shape = Shape::from_dims(&input_shape).ok_or_else(|| {
        anyhow!(
            "input '{}': per-sample shape {input_shape:?} must be [n] or [c, h, w]",
            input.name
        )
    })?;

    let mut layers: Vec<Layer> = Vec::new();
    let mut tensors: Vec<Vec<f32>> = Vec::new();
    let mut cur = input.name.clone();
    // Output name of the last node that made a Dense layer (an Add right after it is its bias).
    let mut dense_out: Option<String> = None;

    for (i, n) in graph.node.iter().enumerate() {
        let here = at(i, n);
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            bail!(
                "{here}: operator domain '{}' is not supported (only standard ONNX operators)",
                n.domain
            );
        }
        if n.op_type == "Constant" {
            continue;
        }
        let Some(out) = n.output.first().filter(|o| !o.is_empty()) else {
            bail!("{here}: has no output");
        };
        if n.output.iter().skip(1).any(|o| !o.is_empty()) {
            bail!(
                "{here}: optional outputs (training statistics, indices, masks) are not supported"
            );
        }
        // The activation this node reads; every other input must be a weight.
        if n.op_type == "Add" && n.input.len() != 2 {
            bail!("{here}: Add with {} inputs; expected 2", n.input.len());
        }
        let data_pos = if n.op_type == "Add" {
            n.input.iter().position(|x| *x == cur)
        } else {
            Some(0)
        };
        let reads_chain = data_pos
            .and_then(|p| n.input.get(p))
            .is_some_and(|x| *x == cur);
        if !reads_chain {
            bail!(
                "{here}: does not read the previous layer's output '{cur}'; only a single chain of layers is supported"
            );
        }
        for (k, x) in n.input.iter().enumerate() {
            if Some(k) != data_pos && !x.is_empty() && !consts.contains_key(x.as_str()) {
                bail!("{here}: input '{x}' is computed in the graph; the runtime needs it as a constant weight");
            }
        }
        let attrs = Attrs {
            here: &here,
            node: n,
        };
        let weight = |k: usize| -> Result<Option<(Vec<i64>, Vec<f32>)>> {
            match n.input.get(k).filter(|x| !x.is_empty()) {
                None => Ok(None),
                Some(x) => {
                    let t = constant(&consts, x, &here)?;
                    Ok(Some((
                        t.dims.clone(),
                        floats(t).with_context(|| format!("{here}: weight '{x}'"))?,
                    )))
                }
            }
        };
        let need = |k: usize, what: &str| -> Result<(Vec<i64>, Vec<f32>)> {
            weight(k)?.ok_or_else(|| anyhow!("{here}: missing {what}"))
        };

        let mut new_layer: Option<(Layer, Vec<Vec<f32>>)> = None;
        match n.op_type.as_str() {
            "Gemm" => {
                attrs.expect_float("alpha", 1.0)?;
                attrs.expect_float("beta", 1.0)?;
                attrs.expect_int("transA", 0)?;
                let trans_b = attrs.int("transB", 0)?;
                let (dims, w) = need(1, "weight B")?;
                let [r, c] = dims.as_slice() else { bail!("{here}: weight B has shape {dims:?}, expected 2-D") };
                let (outputs, inputs, w) = match trans_b {
                    1 => (*r as usize, *c as usize, w),
                    0 => (*c as usize, *r as usize, transpose(&w, *r as usize, *c as usize)),
                    t => bail!("{here}: transB = {t} is not 0 or 1"),
                };
                let b = bias(weight(2)?, outputs, &here)?;
                new_layer = Some((Layer::Dense { inputs, outputs }, vec![w, b]));
            }
            "MatMul" => {
                let (dims, w) = need(1, "weight B")?;
                let [r, c] = dims.as_slice() else { bail!("{here}: weight has shape {dims:?}, expected 2-D [in, out]") };
                let (inputs, outputs) = (*r as usize, *c as usize);
                let w = transpose(&w, inputs, outputs);
                new_layer = Some((Layer::Dense { inputs, outputs }, vec![w, vec![0.0; outputs]]));
            }
            "Add" => {
                let (Some(Layer::Dense { outputs, .. }), true) = (layers.last(), dense_out.as_deref() == Some(cur.as_str())) else {
                    bail!("{here}: Add is only supported as the bias right after Gemm or MatMul");
                };
                let other = 1 - data_pos.unwrap_or(0);
                let (dims, b) = need(other, "bias")?;
                if b.len() != *outputs || dims.last().copied() != Some(*outputs as i64) {
                    bail!("{here}: bias has shape {dims:?}, expected [{outputs}]");
                }
                if let Some(last) = tensors.last_mut() {
                    for (t, v) in last.iter_mut().zip(&b) {
                        *t += v;
                    }
                }
            }
            "Conv" => {
                let (dims, w) = need(1, "weight W")?;
                let &[cout, cin, kh, kw] = dims.as_slice() else { bail!("{here}: weight has shape {dims:?}, expected [out, in, k, k]") };
                if kh != kw {
                    bail!("{here}: kernel {kh}x{kw} is not square");
                }
                attrs.expect_int("group", 1)?;
                attrs.expect_ints_all("dilations", 1)?;
                if let Some(ks) = attrs.ints("kernel_shape")? {
                    if ks != [kh, kw] {
                        bail!("{here}: kernel_shape {ks:?} does not match the weight's {kh}x{kw}");
                    }
                }
                let stride = attrs.uniform("strides", 1)?;
                let padding = attrs.pads()?;
                let b = bias(weight(2)?, cout as usize, &here)?;
                let window = Window { kernel: kh as usize, stride: stride as usize, padding: padding as usize };
                new_layer = Some((Layer::Conv2d { in_channels: cin as usize, out_channels: cout as usize, window }, vec![w, b]));
            }
            "BatchNormalization" => {
                attrs.expect_int("training_mode", 0)?;
                attrs.expect_int("spatial", 1)?;
                let eps = attrs.float("epsilon", 1e-5)?;
                if !(eps.is_finite() && eps > 0.0) {
                    bail!("{here}: epsilon {eps} must be positive");
                }
                let channels = shape.channels_spatial().0;
                let mut ts = Vec::new();
                for (k, what) in [(1, "scale"), (2, "bias B"), (3, "mean"), (4, "var")] {
                    let (_, v) = need(k, what)?;
                    if v.len() != channels {
                        bail!("{here}: {what} has {} values, the input has {channels} channels", v.len());
                    }
                    ts.push(v);
                }
                if ts[3].iter().any(|v| *v < 0.0) {
                    bail!("{here}: a variance is negative");
                }
                new_layer = Some((Layer::Norm { channels, eps }, ts));
            }
            "Relu" => new_layer = Some((Layer::Relu, vec![])),
            "Tanh" => new_layer = Some((Layer::Tanh, vec![])),
            "MaxPool" => {
                let Some(ks) = attrs.ints("kernel_shape")? else { bail!("{here}: kernel_shape is missing") };
                let &[kh, kw] = ks.as_slice() else { bail!("{here}: kernel_shape {ks:?} is not 2-D") };
                if kh != kw || kh <= 0 || kh > MAX_DIM as i64 {
                    bail!("{here}: kernel {kh}x{kw} is not a square of positive size");
                }
                let stride = attrs.uniform("strides", 1)?;
                if attrs.pads()? != 0 {
                    bail!("{here}: padding is not supported by the runtime's max pooling");
                }
                attrs.expect_int("ceil_mode", 0)?;
                attrs.expect_ints_all("dilations", 1)?;
                let window = Window { kernel: kh as usize, stride: stride as usize, padding: 0 };
                new_layer = Some((Layer::MaxPool2d { window }, vec![]));
            }
            "Flatten" => {
                attrs.expect_int("axis", 1)?;
                new_layer = Some((Layer::Flatten, vec![]));
            }
            "Reshape" => {
                attrs.expect_int("allowzero", 0)?;
                let Some(x) = n.input.get(1) else { bail!("{here}: missing shape") };
                let target = ints(constant(&consts, x, &here)?).with_context(|| format!("{here}: shape '{x}'"))?;
                let len = shape.len() as i64;
                let ok = match target.as_slice() {
                    [0, b] => *b == -1 || *b == len,
                    [-1, b] => *b == len,
                    _ => false,
                };
                if !ok {
                    bail!("{here}: reshape to {target:?}; only flattening to [batch, -1] (or [batch, {len}]) is supported");
                }
                new_layer = Some((Layer::Flatten, vec![]));
            }
            "Identity" => {}
            "Softmax" | "LogSoftmax" => {
                bail!("{here}: not supported; export the logits (the runtime's cross-entropy applies the softmax)")
            }
            op => bail!(
                "{here}: operator {op} is not supported (supported: Gemm, MatMul+Add, Conv, BatchNormalization, Relu, Tanh, MaxPool, Flatten, Reshape to [batch, -1], Identity)"
            ),
        }
        if let Some((layer, ts)) = new_layer {
            let next = layer.output_shape(shape).ok_or_else(|| {
                anyhow!(
                    "{here}: does not accept its input of shape {}",
                    shape_str(shape)
                )
            })?;
            for (k, t) in ts.iter().enumerate() {
                let expected = layer.tensor_len(shape, k);
                if t.len() != expected {
                    bail!(
                        "{here}: weight {k} has {} values, the layer needs {expected}",
                        t.len()
                    );
                }
                if let Some(j) = t.iter().position(|v| !v.is_finite()) {
                    bail!("{here}: weight {k} holds a non-finite value at index {j}");
                }
            }
            dense_out = matches!(layer, Layer::Dense { .. }).then(|| out.clone());
            layers.push(layer);
            tensors.extend(ts);
            shape = next;
        } else if n.op_type == "Identity" && dense_out.as_deref() == Some(cur.as_str()) {
            dense_out = Some(out.clone());
        } else if n.op_type != "Add" {
            dense_out = None;
        } else {
            dense_out = Some(out.clone());
        }
        cur = out.clone();
    }
    if cur != output.name {
        bail!(
            "the graph output '{}' is not the end of the chain of layers (which ends at '{cur}')",
            output.name
        );
    }
    if layers.is_empty() {
        bail!("the graph has no layers");
    }
    if layers.len() > anole::blob::MAX_LAYERS {
        bail!(
            "{} layers; the runtime holds at most {}",
            layers.len(),
            anole::blob::MAX_LAYERS
        );
    }
    let arch = Arch {
        input_shape,
        layers,
    };
    arch.shapes()?;
    let params: Vec<f32> = tensors.into_iter().flatten().collect();
    let meta = read_meta(model, &arch)?;
    Ok(Imported { arch, params, meta })
}

fn shape_str(s: Shape) -> String {
    match s {
        Shape::Flat(n) => format!("[batch, {n}]"),
        Shape::Chw(c, h, w) => format!("[batch, {c}, {h}, {w}]"),
    }
}

/// Per-sample dims of the graph input (the batch dimension dropped).
fn input_dims(v: &tract_onnx::pb::ValueInfoProto) -> Result<Vec<u32>> {
    let name = &v.name;
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        bail!("input '{name}' is not a tensor");
    };
    if t.elem_type != DataType::Float as i32 {
        bail!(
            "input '{name}' has element type {}; the runtime takes float",
            elem_name(t.elem_type)
        );
    }
    let Some(shape) = &t.shape else {
        bail!("input '{name}' has no shape; the importer needs [batch, n] or [batch, c, h, w]")
    };
    if !(shape.dim.len() == 2 || shape.dim.len() == 4) {
        bail!(
            "input '{name}' has rank {}; the runtime takes [batch, n] or [batch, c, h, w]",
            shape.dim.len()
        );
    }
    shape.dim[1..]
        .iter()
        .enumerate()
        .map(|(k, d)| match d.value {
            Some(Dim::DimValue(v)) if v > 0 && v <= u32::MAX as i64 => Ok(v as u32),
            _ => Err(anyhow!("input '{name}': dimension {} must be a fixed positive size (only the batch may vary)", k + 1)),
        })
        .collect()
}

fn elem_name(code: i32) -> &'static str {
    DataType::try_from(code)
        .map(|d| d.as_str_name())
        .unwrap_or("unknown")
}

/// Values of a float tensor (f32, f16, bf16 or f64), row-major.
fn floats(t: &TensorProto) -> Result<Vec<f32>> {
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        bail!("data stored in an external file; save the model with its weights embedded");
    }
    let count = t
        .dims
        .iter()
        .try_fold(1i64, |acc, &d| {
            (0..=MAX_DIM as i64)
                .contains(&d)
                .then(|| acc.checked_mul(d))
                .flatten()
        })
        .ok_or_else(|| anyhow!("shape {:?} has a negative or oversized dimension", t.dims))?;
    let raw = &t.raw_data;
    let v: Vec<f32> = match DataType::try_from(t.data_type) {
        Ok(DataType::Float) if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Ok(DataType::Float) => t.float_data.clone(),
        Ok(d @ (DataType::Float16 | DataType::Bfloat16)) => {
            let dt = if d == DataType::Float16 {
                DType::F16
            } else {
                DType::Bf16
            };
            if !raw.is_empty() {
                (0..raw.len() / 2).map(|i| dt.get(raw, i)).collect()
            } else {
                t.int32_data
                    .iter()
                    .map(|&b| dt.get(&(b as u16).to_le_bytes(), 0))
                    .collect()
            }
        }
        Ok(DataType::Double) if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        Ok(DataType::Double) => t.double_data.iter().map(|&x| x as f32).collect(),
        _ => bail!(
            "element type {} is not a float type",
            elem_name(t.data_type)
        ),
    };
    if v.len() as i64 != count {
        bail!(
            "holds {} values, its shape {:?} needs {count}",
            v.len(),
            t.dims
        );
    }
    Ok(v)
}

/// Values of an integer tensor (int64 or int32).
fn ints(t: &TensorProto) -> Result<Vec<i64>> {
    let raw = &t.raw_data;
    match DataType::try_from(t.data_type) {
        Ok(DataType::Int64) if !raw.is_empty() => Ok(raw
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect()),
        Ok(DataType::Int64) => Ok(t.int64_data.clone()),
        Ok(DataType::Int32) if !raw.is_empty() => Ok(raw
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
            .collect()),
        Ok(DataType::Int32) => Ok(t.int32_data.iter().map(|&x| x as i64).collect()),
        _ => bail!(
            "element type {} is not an integer type",
            elem_name(t.data_type)
        ),
    }
}

/// The constant (initializer or `Constant` node) named `x`.
fn constant<'m>(
    consts: &HashMap<&str, &'m TensorProto>,
    x: &str,
    here: &str,
) -> Result<&'m TensorProto> {
    consts
        .get(x)
        .copied()
        .ok_or_else(|| anyhow!("{here}: input '{x}' is not a constant"))
}

/// `[r, c]` row-major into `[c, r]` row-major.
fn transpose(w: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = w[i * c + j];
        }
    }
    out
}

/// A bias of `len` values (zeros when absent).
fn bias(b: Option<(Vec<i64>, Vec<f32>)>, len: usize, here: &str) -> Result<Vec<f32>> {
    match b {
        None => Ok(vec![0.0; len]),
        Some((_, v)) if v.len() == len => Ok(v),
        Some((dims, _)) => bail!("{here}: bias has shape {dims:?}, expected [{len}]"),
    }
}

/// Typed access to a node's attributes, with errors naming the node.
struct Attrs<'a> {
    here: &'a str,
    node: &'a NodeProto,
}

impl Attrs<'_> {
    fn get(&self, name: &str) -> Option<&AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }
    fn int(&self, name: &str, default: i64) -> Result<i64> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.r#type == AttributeType::Int as i32 => Ok(a.i),
            Some(_) => bail!("{}: attribute {name} is not an integer", self.here),
        }
    }
    fn float(&self, name: &str, default: f32) -> Result<f32> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.r#type == AttributeType::Float as i32 => Ok(a.f),
            Some(_) => bail!("{}: attribute {name} is not a float", self.here),
        }
    }
    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == AttributeType::Ints as i32 => Ok(Some(a.ints.clone())),
            Some(_) => bail!("{}: attribute {name} is not a list of integers", self.here),
        }
    }
    fn string(&self, name: &str) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == AttributeType::String as i32 => {
                Ok(Some(String::from_utf8_lossy(&a.s).into_owned()))
            }
            Some(_) => bail!("{}: attribute {name} is not a string", self.here),
        }
    }
    fn expect_int(&self, name: &str, want: i64) -> Result<()> {
        let v = self.int(name, want)?;
        if v != want {
            bail!(
                "{}: {name} = {v} is not supported (the runtime needs {want})",
                self.here
            );
        }
        Ok(())
    }
    fn expect_float(&self, name: &str, want: f32) -> Result<()> {
        let v = self.float(name, want)?;
        if v != want {
            bail!(
                "{}: {name} = {v} is not supported (the runtime needs {want})",
                self.here
            );
        }
        Ok(())
    }
    fn expect_ints_all(&self, name: &str, want: i64) -> Result<()> {
        if let Some(v) = self.ints(name)? {
            if v.iter().any(|x| *x != want) {
                bail!(
                    "{}: {name} {v:?} are not supported (the runtime needs {want})",
                    self.here
                );
            }
        }
        Ok(())
    }
    /// A 2-D attribute whose entries must all be equal (strides); `default` when absent.
    fn uniform(&self, name: &str, default: i64) -> Result<i64> {
        match self.ints(name)? {
            None => Ok(default),
            Some(v) if v.len() == 2 && v[0] == v[1] && v[0] > 0 && v[0] <= MAX_DIM as i64 => {
                Ok(v[0])
            }
            Some(v) => bail!(
                "{}: {name} {v:?} are not supported (the runtime needs two equal positive values)",
                self.here
            ),
        }
    }
    /// Symmetric padding from `pads` / `auto_pad`.
    fn pads(&self) -> Result<i64> {
        match self.string("auto_pad")?.as_deref() {
            None | Some("NOTSET") | Some("") => {}
            Some("VALID") => return Ok(0),
            Some(other) => bail!(
                "{}: auto_pad {other} is not supported; export explicit pads",
                self.here
            ),
        }
        match self.ints("pads")? {
            None => Ok(0),
            Some(v)
                if v.len() == 4
                    && v.iter().all(|p| *p == v[0])
                    && (0..=MAX_DIM as i64).contains(&v[0]) =>
            {
                Ok(v[0])
            }
            Some(v) => bail!(
                "{}: pads {v:?} are not supported (the runtime pads all four sides equally)",
                self.here
            ),
        }
    }
}

/// Settings and provenance from the `anole.*` metadata an anole export writes.
fn read_meta(model: &ModelProto, arch: &Arch) -> Result<Option<BlobMeta>> {
    let props: HashMap<&str, &str> = model
        .metadata_props
        .iter()
        .filter_map(|p| {
            p.key
                .strip_prefix(META_PREFIX)
                .map(|k| (k, p.value.as_str()))
        })
        .collect();
    if props.is_empty() {
        return Ok(None);
    }
    fn get<'p>(props: &HashMap<&str, &'p str>, k: &str) -> Result<&'p str> {
        props
            .get(k)
            .copied()
            .ok_or_else(|| anyhow!("metadata {META_PREFIX}{k} is missing"))
    }
    fn num<T: std::str::FromStr>(props: &HashMap<&str, &str>, k: &str) -> Result<T> {
        let v = get(props, k)?;
        v.parse()
            .map_err(|_| anyhow!("metadata {META_PREFIX}{k}: '{v}' is not a valid number"))
    }
    let loss = match get(&props, "loss")? {
        l if l == loss_name(anole::LossKind::Mse) => 0,
        l if l == loss_name(anole::LossKind::CrossEntropy) => 1,
        l => bail!("metadata {META_PREFIX}loss: unknown loss '{l}'"),
    };
    let optimizer = match get(&props, "optimizer")? {
        o if o == optimizer_name(anole::Optimizer::Sgd) => 0,
        o if o == optimizer_name(anole::Optimizer::AdamB1Zero) => 1,
        o => bail!("metadata {META_PREFIX}optimizer: unknown optimizer '{o}'"),
    };
    let dtype = match get(&props, "dtypes")?.split(',').next().unwrap_or("") {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "bf16" => DType::Bf16,
        d => bail!("metadata {META_PREFIX}dtypes: unknown dtype '{d}'"),
    };
    let mut lr_scale = heapless::Vec::new();
    if let Some(v) = props.get("lr_scale") {
        for x in v.split(',') {
            let s: f32 = x
                .parse()
                .map_err(|_| anyhow!("metadata {META_PREFIX}lr_scale: '{x}' is not a number"))?;
            lr_scale
                .push(s)
                .map_err(|_| anyhow!("metadata {META_PREFIX}lr_scale: too many entries"))?;
        }
    }
    let trainable: u32 = num(&props, "trainable")?;
    if arch.layers.len() < 32 && trainable >> arch.layers.len() != 0 {
        bail!("metadata {META_PREFIX}trainable: mask {trainable:#x} names layers the model does not have");
    }
    Ok(Some(BlobMeta {
        dtype,
        settings: AdaptSettings {
            loss,
            optimizer,
            lr: num(&props, "lr")?,
            steps: num(&props, "steps")?,
            batch: num(&props, "batch")?,
            trainable,
            lr_scale,
        },
        algorithm: get(&props, "algorithm")?.to_string(),
        task: get(&props, "task")?.to_string(),
        seed: num(&props, "seed")?,
        meta_iterations: num(&props, "meta_iterations")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::onnx::onnx_bytes;
    use anole::Blob;
    use rand::SeedableRng;

    fn blob_bytes(arch: &Arch, dtype: DType, loss: u8, seed: u64) -> Vec<u8> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut params = arch.init_params(&mut rng).unwrap();
        // Non-trivial norm statistics.
        for p in params.iter_mut().step_by(7) {
            *p = p.abs() + 0.5;
        }
        let meta = BlobMeta {
            dtype,
            settings: AdaptSettings {
                loss,
                optimizer: 1,
                lr: 0.001,
                steps: 5,
                batch: 7,
                trainable: arch.head_only(),
                lr_scale: Default::default(),
            },
            algorithm: "reptile".into(),
            task: "unit".into(),
            seed,
            meta_iterations: 12,
        };
        encode_blob(arch, &params, &meta).unwrap()
    }

    #[test]
    fn export_then_import_is_the_same_blob() {
        for (arch, dtype, loss) in [
            (Arch::sine(), DType::F32, 0),
            (Arch::omniglot(5, 8), DType::F32, 1),
            (Arch::omniglot(3, 4), DType::F16, 1),
        ] {
            let bytes = blob_bytes(&arch, dtype, loss, 9);
            let blob = Blob::parse(&bytes).unwrap();
            let imp = parse_onnx(&onnx_bytes(&blob).unwrap()).unwrap();
            assert_eq!(imp.arch, arch);
            let back = to_blob(&imp, &ImportOptions::default()).unwrap();
            assert_eq!(back, bytes, "round trip of {arch:?}");
        }
    }

    #[test]
    fn refuses_unsupported_operator_naming_the_node() {
        let bytes = blob_bytes(&Arch::sine(), DType::F32, 0, 1);
        let blob = Blob::parse(&bytes).unwrap();
        let mut m = crate::export::onnx::onnx_model(&blob).unwrap();
        let g = m.graph.as_mut().unwrap();
        g.node[1].op_type = "Sigmoid".into();
        let e = read_model(&m).unwrap_err().to_string();
        assert!(
            e.contains("node 1 'layer1.tanh' (Sigmoid)") && e.contains("not supported"),
            "{e}"
        );
    }
}
