//! ONNX export of a blob: the same network, with the blob's parameters as f32 initializers,
//! for any ONNX runtime (tract, onnxruntime, netron, ...).
//!
//! Mapping (one node per layer, named after the layer index):
//!
//! | blob layer | ONNX node |
//! |---|---|
//! | `Dense` | `Gemm` (`transB = 1`: W stays `[out, in]`) |
//! | `Conv2d` | `Conv` (`kernel_shape`, `strides`, `pads`) |
//! | `Norm` | `BatchNormalization` with the stored mean and variance (inference mode) |
//! | `Relu`, `Tanh` | `Relu`, `Tanh` |
//! | `MaxPool2d` | `MaxPool` (no padding, floor) |
//! | `Flatten` | `Flatten` (`axis = 1`) |
//! | `Sigmoid` | `Sigmoid` |
//! | `Clip` | `Clip` with `min` and `max` as scalar initializers (an infinite bound left out) |
//! | `PRelu` | `PRelu`, slope `[c, 1, 1]` on images, `[n]` on vectors |
//! | `Conv` | `Conv` (`kernel_shape`, `strides`, `dilations`, `pads`, `group`) |
//! | `Pool` | `MaxPool` or `AveragePool` (`count_include_pad` 0 or 1) |
//!
//! A model whose input is a 1-D signal (`[c, l]` in the blob) is written with rank-3 tensors
//! (`[batch, c, l]`) and one-axis attributes; its images are `[c, 1, l]` inside the runtime.
//!
//! `Norm` with stored statistics is exactly the device's inference scheme: after adapting, the
//! runtime refreshes the stored statistics from the support set and predicts with them, so an
//! adapted blob exported here predicts what the device predicts.
//!
//! Opset 13 (IR version 7): the lowest opset the toolchain targets, so the file loads in the
//! widest range of runtimes (onnxruntime since 1.7, tract, converters for microcontrollers),
//! and every operator used has had its current inference semantics since opset 13 or earlier
//! (later revisions of BatchNormalization, Relu and MaxPool only add training mode or types).

use anole::layers::{PoolMode, Window, Window2};
use anole::{Blob, Extra, Layer, LossKind, Optimizer, Shape};
use anyhow::{bail, Result};
use prost::Message;
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// Default-domain opset the exporter writes.
pub const OPSET: i64 = 13;
/// Opset of a model with a `HardSwish` (which opset 14 added).
pub const OPSET_HARD_SWISH: i64 = 14;
/// IR version that goes with [`OPSET`].
pub const IR_VERSION: i64 = 7;
/// Name of the graph input (`[batch, ...input shape]`).
pub const INPUT: &str = "input";
/// Name of the graph output (`[batch, ...output shape]`).
pub const OUTPUT: &str = "output";
/// Symbolic name of the batch dimension.
pub const BATCH_DIM: &str = "batch";
/// Prefix of the metadata keys that carry the blob's settings and provenance.
pub const META_PREFIX: &str = "anole.";

/// Encode `blob` as an ONNX model (see the module documentation for the mapping).
pub fn onnx_bytes(blob: &Blob<'_>) -> Result<Vec<u8>> {
    Ok(onnx_model(blob)?.encode_to_vec())
}

/// Build the ONNX model of `blob` as protobuf structures.
pub fn onnx_model(blob: &Blob<'_>) -> Result<ModelProto> {
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    let mut current = INPUT.to_string();
    // The name of every value so far: the model's input, then each layer's output.
    let mut names = vec![INPUT.to_string()];
    let mut tensor = 0usize;
    let last = blob.layers.len() - 1;
    let signal = blob.is_signal();
    for (i, layer) in blob.layers.iter().copied().enumerate() {
        let input_shape = blob.shapes[i];
        let out = if i == last {
            OUTPUT.to_string()
        } else {
            format!("layer{i}.out")
        };
        // This layer's tensors as f32 initializers, decoded from the blob's dtype.
        let mut params = Vec::new();
        for k in 0..layer.tensor_count() {
            let mut v = vec![0.0f32; layer.tensor_len(input_shape, k)];
            blob.read_tensor(tensor, &mut v);
            params.push(v);
            tensor += 1;
        }
        let mut take = |k: usize, suffix: &str, dims: Vec<i64>| -> String {
            let name = format!("layer{i}.{suffix}");
            inits.push(f32_tensor(&name, dims, &params[k]));
            name
        };
        let node = match layer {
            // A branch writes no node: the next one reads the earlier value (the last layer
            // needs a node to give the graph output its name).
            Layer::Extra(Extra::Branch { from }) if i != last => {
                current = names[from as usize].clone();
                names.push(current.clone());
                continue;
            }
            Layer::Extra(Extra::Branch { from }) => node(
                i,
                "Identity",
                vec![names[from as usize].clone()],
                &out,
                vec![],
            ),
            Layer::Extra(Extra::Add { from }) => {
                let inputs = vec![current, names[from as usize].clone()];
                node(i, "Add", inputs, &out, vec![])
            }
            Layer::Extra(Extra::Concat { from, from_first }) => {
                let value = names[from as usize].clone();
                let inputs = if from_first {
                    vec![value, current]
                } else {
                    vec![current, value]
                };
                node(i, "Concat", inputs, &out, vec![int_attr("axis", 1)])
            }
            Layer::Dense { inputs, outputs } => {
                let w = take(0, "weight", vec![outputs as i64, inputs as i64]);
                let b = take(1, "bias", vec![outputs as i64]);
                node(
                    i,
                    "Gemm",
                    vec![current, w, b],
                    &out,
                    vec![int_attr("transB", 1)],
                )
            }
            Layer::Conv2d {
                in_channels,
                out_channels,
                window,
            } => {
                let w2 = Axes::square(window).one_row(signal, i)?;
                let mut dims = vec![out_channels as i64, in_channels as i64];
                dims.extend(axes(w2.kernel, signal));
                let w = take(0, "weight", dims);
                let b = take(1, "bias", vec![out_channels as i64]);
                node(
                    i,
                    "Conv",
                    vec![current, w, b],
                    &out,
                    conv_attrs(w2, 1, signal),
                )
            }
            Layer::Extra(Extra::Conv {
                in_channels,
                out_channels,
                groups,
                window,
            }) => {
                let window = Axes::of(window).one_row(signal, i)?;
                let mut dims = vec![out_channels as i64, (in_channels / groups) as i64];
                dims.extend(axes(window.kernel, signal));
                let w = take(0, "weight", dims);
                let b = take(1, "bias", vec![out_channels as i64]);
                let attrs = conv_attrs(window, groups as i64, signal);
                node(i, "Conv", vec![current, w, b], &out, attrs)
            }
            Layer::Extra(Extra::Pool { window, mode }) => {
                let mut attrs = pool_attrs(Axes::of(window).one_row(signal, i)?, signal);
                let op = match mode {
                    PoolMode::Max => "MaxPool",
                    PoolMode::Average | PoolMode::AverageIncludePad => {
                        let include = mode == PoolMode::AverageIncludePad;
                        attrs.push(int_attr("count_include_pad", include as i64));
                        "AveragePool"
                    }
                };
                node(i, op, vec![current], &out, attrs)
            }
            Layer::Norm { channels, eps } => {
                let c = vec![channels as i64];
                let g = take(0, "weight", c.clone());
                let b = take(1, "bias", c.clone());
                let m = take(2, "running_mean", c.clone());
                let v = take(3, "running_var", c);
                node(
                    i,
                    "BatchNormalization",
                    vec![current, g, b, m, v],
                    &out,
                    vec![float_attr("epsilon", eps)],
                )
            }
            Layer::Relu => node(i, "Relu", vec![current], &out, vec![]),
            Layer::Tanh => node(i, "Tanh", vec![current], &out, vec![]),
            Layer::MaxPool2d { window } | Layer::Extra(Extra::MaxPool2d { window }) => {
                let attrs = pool_attrs(Axes::square(window).one_row(signal, i)?, signal);
                node(i, "MaxPool", vec![current], &out, attrs)
            }
            Layer::Extra(Extra::AvgPool2d {
                window,
                include_pad,
            }) => {
                let mut attrs = pool_attrs(Axes::square(window).one_row(signal, i)?, signal);
                attrs.push(int_attr("count_include_pad", include_pad as i64));
                node(i, "AveragePool", vec![current], &out, attrs)
            }
            Layer::Extra(Extra::GlobalAvgPool) => {
                node(i, "GlobalAveragePool", vec![current], &out, vec![])
            }
            Layer::Extra(Extra::LeakyRelu { alpha }) => node(
                i,
                "LeakyRelu",
                vec![current],
                &out,
                vec![float_attr("alpha", alpha)],
            ),
            Layer::Extra(Extra::HardSigmoid { alpha, beta }) => node(
                i,
                "HardSigmoid",
                vec![current],
                &out,
                vec![float_attr("alpha", alpha), float_attr("beta", beta)],
            ),
            Layer::Extra(Extra::HardSwish) => node(i, "HardSwish", vec![current], &out, vec![]),
            Layer::Flatten => node(i, "Flatten", vec![current], &out, vec![int_attr("axis", 1)]),
            Layer::Extra(Extra::Sigmoid) => node(i, "Sigmoid", vec![current], &out, vec![]),
            Layer::Extra(Extra::Clip { min, max }) => {
                let mut inputs = vec![current];
                for (v, name, unbounded) in
                    [(min, "min", f32::NEG_INFINITY), (max, "max", f32::INFINITY)]
                {
                    if v != unbounded {
                        let name = format!("layer{i}.{name}");
                        inits.push(f32_tensor(&name, vec![], &[v]));
                        inputs.push(name);
                    } else {
                        inputs.push(String::new());
                    }
                }
                while inputs.last().is_some_and(|x| x.is_empty()) {
                    inputs.pop();
                }
                node(i, "Clip", inputs, &out, vec![])
            }
            Layer::Extra(Extra::PRelu { channels }) => {
                let c = channels as i64;
                let dims = match input_shape {
                    Shape::Chw(..) if signal => vec![c, 1],
                    Shape::Chw(..) => vec![c, 1, 1],
                    Shape::Flat(_) => vec![c],
                };
                let a = take(0, "slope", dims);
                node(i, "PRelu", vec![current, a], &out, vec![])
            }
        };
        nodes.push(node);
        names.push(out.clone());
        current = out;
    }

    let graph = GraphProto {
        name: "anole".into(),
        node: nodes,
        initializer: inits,
        input: vec![value_info(INPUT, blob.input_shape(), signal)],
        output: vec![value_info(OUTPUT, blob.output_shape(), signal)],
        doc_string: describe(blob),
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            // HardSwish came in opset 14; other models keep [`OPSET`].
            version: if blob
                .layers
                .iter()
                .any(|l| matches!(l, Layer::Extra(Extra::HardSwish)))
            {
                OPSET_HARD_SWISH
            } else {
                OPSET
            },
        }],
        producer_name: "anole".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: "ai.anole".into(),
        model_version: 1,
        doc_string: describe(blob),
        graph: Some(graph),
        metadata_props: metadata(blob),
        ..Default::default()
    })
}

/// One-paragraph description of the model for `doc_string`.
fn describe(blob: &Blob<'_>) -> String {
    let p = blob.provenance();
    let s = blob.settings();
    format!(
        "anole few-shot initialization for task '{}', algorithm '{}', seed {}, {} meta-iterations. \
         Adapt with {} {} steps at lr {} (batch {}) on the support set, then predict; \
         BatchNormalization uses the stored statistics (after adaptation: those of the support set), \
         which is the device's inference scheme.",
        p.task,
        p.algorithm,
        p.seed,
        p.meta_iterations,
        s.steps,
        optimizer_name(blob.optimizer),
        s.lr,
        s.batch,
    )
}

/// Short name of a loss, as written in metadata and listings.
pub fn loss_name(l: LossKind) -> &'static str {
    match l {
        LossKind::Mse => "mse",
        LossKind::CrossEntropy => "xent",
    }
}

/// Short name of an optimizer, as written in metadata and listings.
pub fn optimizer_name(o: Optimizer) -> &'static str {
    match o {
        Optimizer::Sgd => "sgd",
        Optimizer::AdamB1Zero => "adam-b1-0",
    }
}

/// The blob's settings and provenance as `anole.*` metadata, read back by `anole import`.
fn metadata(blob: &Blob<'_>) -> Vec<StringStringEntryProto> {
    let p = blob.provenance();
    let s = blob.settings();
    let dtypes: Vec<&str> = blob.dtypes.iter().map(|d| d.name()).collect();
    let mut kv = vec![
        ("format_version", blob.wire.version.to_string()),
        ("algorithm", p.algorithm.to_string()),
        ("task", p.task.to_string()),
        ("seed", p.seed.to_string()),
        ("meta_iterations", p.meta_iterations.to_string()),
        ("loss", loss_name(blob.loss).to_string()),
        ("optimizer", optimizer_name(blob.optimizer).to_string()),
        ("lr", s.lr.to_string()),
        ("steps", s.steps.to_string()),
        ("batch", s.batch.to_string()),
        ("trainable", s.trainable.to_string()),
        ("dtypes", dtypes.join(",")),
    ];
    if !s.lr_scale.is_empty() {
        let v: Vec<String> = s.lr_scale.iter().map(|x| x.to_string()).collect();
        kv.push(("lr_scale", v.join(",")));
    }
    // Only when not the default, so the files of older settings keep their bytes.
    if s.head_start != 0 {
        kv.push(("head_start", s.head_start.to_string()));
    }
    if s.head_scale != 1.0 {
        kv.push(("head_scale", s.head_scale.to_string()));
    }
    kv.into_iter()
        .map(|(k, v)| StringStringEntryProto {
            key: format!("{META_PREFIX}{k}"),
            value: v,
        })
        .collect()
}

fn node(
    i: usize,
    op: &str,
    input: Vec<String>,
    out: &str,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: format!("layer{i}.{}", op.to_lowercase()),
        op_type: op.into(),
        input,
        output: vec![out.into()],
        attribute,
        ..Default::default()
    }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn ints_attr(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints,
        ..Default::default()
    }
}

fn float_attr(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

/// An f32 initializer, little-endian in `raw_data`.
fn f32_tensor(name: &str, dims: Vec<i64>, values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims,
        data_type: DataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// `[batch, ...shape]` f32 value info with a symbolic batch dimension.
fn value_info(name: &str, shape: Shape, signal: bool) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value, Dimension};
    let per_sample: Vec<usize> = match shape {
        Shape::Flat(n) => vec![n],
        Shape::Chw(c, _, l) if signal => vec![c, l],
        Shape::Chw(c, h, w) => vec![c, h, w],
    };
    let mut dim = vec![Dimension {
        value: Some(Value::DimParam(BATCH_DIM.into())),
        ..Default::default()
    }];
    dim.extend(per_sample.iter().map(|&d| Dimension {
        value: Some(Value::DimValue(d as i64)),
        ..Default::default()
    }));
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A window's attributes, per axis (height, width).
#[derive(Clone, Copy)]
struct Axes {
    kernel: [i64; 2],
    stride: [i64; 2],
    dilation: [i64; 2],
    pad_begin: [i64; 2],
    pad_end: [i64; 2],
}

impl Axes {
    /// A square window of the first kinds.
    fn square(w: Window) -> Axes {
        let (k, s, p) = (w.kernel as i64, w.stride as i64, w.padding as i64);
        Axes {
            kernel: [k, k],
            stride: [s, s],
            dilation: [1, 1],
            pad_begin: [p, p],
            pad_end: [p, p],
        }
    }

    /// A window of its own per axis.
    fn of(w: Window2) -> Axes {
        let wide = |v: [u8; 2]| v.map(i64::from);
        Axes {
            kernel: w.kernel.map(i64::from),
            stride: wide(w.stride),
            dilation: wide(w.dilation),
            pad_begin: wide(w.pad_begin),
            pad_end: wide(w.pad_end),
        }
    }

    /// In a 1-D model (images one row high) a window must be one row, kernel 1 and no
    /// padding, which ONNX's 1-D operators can say.
    fn one_row(self, signal: bool, layer: usize) -> Result<Axes> {
        if signal && (self.kernel[0] != 1 || self.pad_begin[0] != 0 || self.pad_end[0] != 0) {
            bail!(
                "layer {layer}: a window of {} rows (padding {} and {}) on a 1-D signal has no 1-D ONNX operator",
                self.kernel[0],
                self.pad_begin[0],
                self.pad_end[0]
            );
        }
        Ok(self)
    }
}

/// The values of a per-axis field: both axes, or the width alone in a 1-D model.
fn axes(v: [i64; 2], signal: bool) -> Vec<i64> {
    if signal {
        vec![v[1]]
    } else {
        v.to_vec()
    }
}

/// `kernel_shape`, `strides` and `pads` (all begins, then all ends) of a window.
fn pool_attrs(w: Axes, signal: bool) -> Vec<AttributeProto> {
    let mut pads = axes(w.pad_begin, signal);
    pads.extend(axes(w.pad_end, signal));
    vec![
        ints_attr("kernel_shape", axes(w.kernel, signal)),
        ints_attr("strides", axes(w.stride, signal)),
        ints_attr("pads", pads),
    ]
}

/// A convolution's attributes: the window's, `dilations` and `group`.
fn conv_attrs(w: Axes, group: i64, signal: bool) -> Vec<AttributeProto> {
    let mut attrs = pool_attrs(w, signal);
    attrs.push(ints_attr("dilations", axes(w.dilation, signal)));
    attrs.push(int_attr("group", group));
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{encode_blob, Arch, BlobMeta};
    use anole::blob::AdaptSettings;
    use anole::DType;
    use rand::SeedableRng;

    fn blob_bytes(arch: &Arch, dtype: DType, loss: u8) -> Vec<u8> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let params = arch.init_params(&mut rng).unwrap();
        let meta = BlobMeta {
            dtype,
            settings: AdaptSettings {
                loss,
                optimizer: 0,
                lr: 0.02,
                steps: 32,
                batch: 10,
                trainable: arch.all_layers(),
                head_start: 0,
                head_scale: 1.0,
                lr_scale: Default::default(),
            },
            algorithm: "random".into(),
            task: "test".into(),
            seed: 3,
            meta_iterations: 0,
        };
        encode_blob(arch, &params, &meta).unwrap()
    }

    #[test]
    fn graph_has_one_node_per_layer_and_all_parameters() {
        let bytes = blob_bytes(&Arch::omniglot(5, 8), DType::F16, 1);
        let blob = Blob::parse(&bytes).unwrap();
        let m = ModelProto::decode(onnx_bytes(&blob).unwrap().as_slice()).unwrap();
        let g = m.graph.unwrap();
        assert_eq!(g.node.len(), blob.layers.len());
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(&ops[..4], ["Conv", "BatchNormalization", "Relu", "Conv"]);
        assert_eq!(ops[ops.len() - 2..], ["Flatten", "Gemm"]);
        let floats: usize = g.initializer.iter().map(|t| t.raw_data.len() / 4).sum();
        assert_eq!(floats, blob.param_count());
        assert_eq!(g.node.last().unwrap().output, vec![OUTPUT.to_string()]);
        assert_eq!(m.opset_import[0].version, OPSET);
        assert!(m
            .metadata_props
            .iter()
            .any(|p| p.key == "anole.dtypes" && p.value.starts_with("f16")));
    }
}
