//! `anole import` reads PyTorch-style graphs (MatMul + Add, Reshape to [batch, -1], Identity,
//! Constant nodes, BatchNormalization with `training_mode = 0`, Conv without bias, opset 17)
//! and computes what tract computes on the same file; unsupported graphs are refused with the
//! node named; export then import gives back the same parameters.

use anole::{Blob, DType};
use anole_tests::{blob_bytes, max_abs_diff, rng, runtime_predict, uniform, TractModel};
use anole_trainer::export::import::{parse_onnx, read_model, to_blob, ImportOptions};
use anole_trainer::export::onnx::onnx_bytes;
use anole_trainer::model::Arch;
use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{dimension::Value, Dimension};
use tract_onnx::pb::*;

fn tensor(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        float_data: v.to_vec(),
        ..Default::default()
    }
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn node(
    name: &str,
    op: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: name.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

fn value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(d.map_or(Value::DimParam("N".into()), Value::DimValue)),
            ..Default::default()
        })
        .collect();
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

/// `graph` as `torch.onnx.export` wraps it (IR 8, opset 17).
fn pytorch_model(graph: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        producer_name: "pytorch".into(),
        graph: Some(graph),
        ..Default::default()
    }
}

/// What `torch.onnx.export` writes for conv(2→3, 3×3, pad 1, no bias) → BatchNorm2d → ReLU →
/// MaxPool2d(2) → x.reshape(x.shape[0], -1) → Linear(48, 10) (MatMul + Add) → Tanh →
/// Linear(10, 4) as Gemm(transB = 1), on [N, 2, 8, 8].
fn pytorch_style() -> ModelProto {
    let mut r = rng(40);
    let conv_w = uniform(&mut r, 3 * 2 * 9, -0.4, 0.4);
    let (gamma, beta) = (uniform(&mut r, 3, 0.5, 1.5), uniform(&mut r, 3, -0.2, 0.2));
    let (mean, var) = (uniform(&mut r, 3, -0.3, 0.3), uniform(&mut r, 3, 0.2, 2.0));
    let (w1, b1) = (
        uniform(&mut r, 48 * 10, -0.3, 0.3),
        uniform(&mut r, 10, -0.1, 0.1),
    );
    let (w2, b2) = (
        uniform(&mut r, 4 * 10, -0.3, 0.3),
        uniform(&mut r, 4, -0.1, 0.1),
    );
    let shape = TensorProto {
        name: "shape".into(),
        dims: vec![2],
        data_type: DataType::Int64 as i32,
        int64_data: vec![0, -1],
        ..Default::default()
    };
    let constant = NodeProto {
        name: "/Constant".into(),
        op_type: "Constant".into(),
        output: vec!["shape".into()],
        attribute: vec![AttributeProto {
            name: "value".into(),
            r#type: AttributeType::Tensor as i32,
            t: Some(shape),
            ..Default::default()
        }],
        ..Default::default()
    };
    let graph = GraphProto {
        name: "main_graph".into(),
        node: vec![
            node(
                "/conv/Conv",
                "Conv",
                &["x", "conv.weight"],
                "c",
                vec![
                    ints_attr("kernel_shape", &[3, 3]),
                    ints_attr("pads", &[1, 1, 1, 1]),
                    ints_attr("strides", &[1, 1]),
                    ints_attr("dilations", &[1, 1]),
                    int_attr("group", 1),
                ],
            ),
            node(
                "/bn/BatchNormalization",
                "BatchNormalization",
                &[
                    "c",
                    "bn.weight",
                    "bn.bias",
                    "bn.running_mean",
                    "bn.running_var",
                ],
                "n",
                vec![
                    int_attr("training_mode", 0),
                    AttributeProto {
                        name: "epsilon".into(),
                        r#type: AttributeType::Float as i32,
                        f: 1e-5,
                        ..Default::default()
                    },
                ],
            ),
            node("/relu/Relu", "Relu", &["n"], "a", vec![]),
            node(
                "/pool/MaxPool",
                "MaxPool",
                &["a"],
                "p",
                vec![
                    ints_attr("kernel_shape", &[2, 2]),
                    ints_attr("strides", &[2, 2]),
                    ints_attr("pads", &[0, 0, 0, 0]),
                    int_attr("ceil_mode", 0),
                ],
            ),
            constant,
            node("/Reshape", "Reshape", &["p", "shape"], "f", vec![]),
            node("/Identity", "Identity", &["f"], "f2", vec![]),
            node(
                "/fc1/MatMul",
                "MatMul",
                &["f2", "fc1.weight_t"],
                "m",
                vec![],
            ),
            node("/fc1/Add", "Add", &["fc1.bias", "m"], "h", vec![]),
            node("/Tanh", "Tanh", &["h"], "t", vec![]),
            node(
                "/fc2/Gemm",
                "Gemm",
                &["t", "fc2.weight", "fc2.bias"],
                "logits",
                vec![int_attr("transB", 1)],
            ),
        ],
        initializer: vec![
            tensor("conv.weight", &[3, 2, 3, 3], &conv_w),
            tensor("bn.weight", &[3], &gamma),
            tensor("bn.bias", &[3], &beta),
            tensor("bn.running_mean", &[3], &mean),
            tensor("bn.running_var", &[3], &var),
            tensor("fc1.weight_t", &[48, 10], &w1),
            tensor("fc1.bias", &[10], &b1),
            tensor("fc2.weight", &[4, 10], &w2),
            tensor("fc2.bias", &[4], &b2),
        ],
        input: vec![value("x", &[None, Some(2), Some(8), Some(8)])],
        output: vec![value("logits", &[None, Some(4)])],
        ..Default::default()
    };
    pytorch_model(graph)
}

#[test]
fn pytorch_style_graph_imports_and_matches_tract() {
    let model = pytorch_style();
    let bytes = model.encode_to_vec();
    let imp = parse_onnx(&bytes).unwrap();
    assert!(imp.meta.is_none());
    let names: Vec<&str> = imp.arch.layers.iter().map(|l| l.name()).collect();
    assert_eq!(
        names,
        [
            "conv2d",
            "norm",
            "relu",
            "maxpool2d",
            "flatten",
            "dense",
            "tanh",
            "dense"
        ]
    );
    let opts = ImportOptions {
        loss: Some(anole_trainer::export::import::LossArg::Xent),
        ..Default::default()
    };
    let blob = to_blob(&imp, &opts).unwrap();
    let tract = TractModel::load(&bytes).unwrap();
    let mut r = rng(41);
    for n in [1, 5] {
        let x = uniform(&mut r, n * 128, -1.0, 1.0);
        let d = max_abs_diff(
            &tract.run(&[n, 2, 8, 8], &x).unwrap(),
            &runtime_predict(&blob, &x),
        );
        assert!(
            d <= 1e-5,
            "batch {n}: imported model differs from tract by {d}"
        );
    }
}

/// A change that makes the PyTorch-style graph unsupported.
type Edit = Box<dyn Fn(&mut GraphProto)>;

#[test]
fn unsupported_graphs_are_refused_naming_the_node() {
    let cases: Vec<(&str, Edit)> = vec![
        ("node 2 '/relu/Relu' (Erf): operator Erf is not supported", Box::new(|g| g.node[2].op_type = "Erf".into())),
        ("node 0 '/conv/Conv' (Conv): group 2 does not divide the 3 output channels", Box::new(|g| g.node[0].attribute[4].i = 2)),
        ("node 0 '/conv/Conv' (Conv): pads [1, 1, 0] should have 4 values", Box::new(|g| g.node[0].attribute[1].ints = vec![1, 1, 0])),
        ("node 1 '/bn/BatchNormalization' (BatchNormalization): training_mode = 1 is not supported", Box::new(|g| g.node[1].attribute[0].i = 1)),
        ("node 3 '/pool/MaxPool' (MaxPool): padding [2, 2] / [2, 2] is not below the kernel [2, 2] on every side", Box::new(|g| g.node[3].attribute[2].ints = vec![2, 2, 2, 2])),
        ("node 8 '/fc1/Add' (Add): reads 'm2', which is not a value of the chain of layers", Box::new(|g| {
            g.node[8].input = vec!["m".into(), "m2".into()];
        })),
        ("node 10 '/fc2/Gemm' (Gemm): reads 'h' again, but layer 6 (tanh) changed it in place", Box::new(|g| g.node[10].input[0] = "h".into())),
        ("node 10 '/fc2/Gemm' (Gemm): does not read the previous layer's output 't' or an earlier value", Box::new(|g| g.node[10].input[0] = "nowhere".into())),
        ("node 5 '/Reshape' (Reshape): reshape to [0, 3, -1]", Box::new(|g| {
            if let Some(t) = g.node[4].attribute[0].t.as_mut() {
                t.dims = vec![3];
                t.int64_data = vec![0, 3, -1];
            }
        })),
        ("node 2 '/relu/Relu' (Softmax): a softmax over an input of shape [batch, 3, 8, 8] is not supported", Box::new(|g| {
            g.node[2].op_type = "Softmax".into();
        })),
    ];
    let hostile: Vec<(&str, Edit)> = vec![
        (
            "node 0 '/conv/Conv' (Conv): pads [1099511627776",
            Box::new(|g| g.node[0].attribute[1].ints = vec![1 << 40; 4]),
        ),
        (
            "node 0 '/conv/Conv' (Conv): strides [-1, -1]: -1 is outside 1 to 255",
            Box::new(|g| g.node[0].attribute[2].ints = vec![-1, -1]),
        ),
        (
            "weight 'fc2.weight': shape [-4, -10] has a negative or oversized dimension",
            Box::new(|g| g.initializer[7].dims = vec![-4, -10]),
        ),
        (
            "weight 'conv.weight': holds 54 values, its shape [3, 2, 3, 4] needs 72",
            Box::new(|g| g.initializer[0].dims = vec![3, 2, 3, 4]),
        ),
        (
            "node 8 '/fc1/Add' (Add): Add with 3 inputs",
            Box::new(|g| g.node[8].input.push("fc1.bias".into())),
        ),
        (
            "node 5 '/Reshape' (Reshape): input '' is not a constant",
            Box::new(|g| g.node[5].input[1] = String::new()),
        ),
    ];
    for (want, edit) in cases.into_iter().chain(hostile) {
        let mut m = pytorch_style();
        edit(m.graph.as_mut().unwrap());
        let e = format!("{:#}", parse_onnx(&m.encode_to_vec()).unwrap_err());
        assert!(e.contains(want), "expected {want:?}, got {e:?}");
    }
    assert!(
        format!("{:#}", parse_onnx(b"not a protobuf at all").unwrap_err())
            .contains("not an ONNX model")
    );
}

#[test]
fn export_then_import_gives_identical_parameters() {
    for (arch, dtype, loss) in [
        (Arch::sine(), DType::F32, 0),
        (Arch::omniglot(5, 64), DType::F32, 1),
        (Arch::omniglot(20, 32), DType::F16, 1),
        (anole_tests::pooling_arch(), DType::F32, 1),
    ] {
        let bytes = blob_bytes(&arch, dtype, loss, 0.001, 5, 50);
        let blob = Blob::parse(&bytes).unwrap();
        let imp = read_model(
            &tract_onnx::pb::ModelProto::decode(onnx_bytes(&blob).unwrap().as_slice()).unwrap(),
        )
        .unwrap();
        let mut want = vec![0.0; blob.param_count()];
        let mut off = 0;
        for t in 0..blob.wire.tensors.len() {
            let len = blob.wire.tensors[t].data.len() / blob.dtypes[t].size();
            blob.read_tensor(t, &mut want[off..off + len]);
            off += len;
        }
        assert_eq!(imp.arch, arch);
        assert_eq!(imp.params, want);
        assert_eq!(to_blob(&imp, &ImportOptions::default()).unwrap(), bytes);
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

/// What `torch.onnx.export` (opset 17) writes for conv(2→3, 3×3, pad 1) → PReLU(3) → ReLU6 →
/// flatten → Linear(108, 4) → Sigmoid → Linear(4, 3) → Softmax, on [N, 2, 6, 6].
fn activations_graph() -> ModelProto {
    let mut r = rng(60);
    let scalar = |name: &str, v: f32| tensor(name, &[], &[v]);
    let graph = GraphProto {
        name: "main_graph".into(),
        node: vec![
            node(
                "/conv/Conv",
                "Conv",
                &["x", "conv.weight", "conv.bias"],
                "c",
                vec![
                    ints_attr("dilations", &[1, 1]),
                    int_attr("group", 1),
                    ints_attr("kernel_shape", &[3, 3]),
                    ints_attr("pads", &[1, 1, 1, 1]),
                    ints_attr("strides", &[1, 1]),
                ],
            ),
            node("/act/PRelu", "PRelu", &["c", "act.weight"], "p", vec![]),
            node("/relu6/Clip", "Clip", &["p", "zero", "six"], "q", vec![]),
            node(
                "/Flatten",
                "Flatten",
                &["q"],
                "f",
                vec![int_attr("axis", 1)],
            ),
            node(
                "/fc1/Gemm",
                "Gemm",
                &["f", "fc1.weight", "fc1.bias"],
                "h",
                vec![
                    float_attr("alpha", 1.0),
                    float_attr("beta", 1.0),
                    int_attr("transB", 1),
                ],
            ),
            node("/sig/Sigmoid", "Sigmoid", &["h"], "s", vec![]),
            node(
                "/fc2/Gemm",
                "Gemm",
                &["s", "fc2.weight", "fc2.bias"],
                "logits",
                vec![int_attr("transB", 1)],
            ),
            node(
                "/softmax/Softmax",
                "Softmax",
                &["logits"],
                "probs",
                vec![int_attr("axis", 1)],
            ),
        ],
        initializer: vec![
            tensor(
                "conv.weight",
                &[3, 2, 3, 3],
                &uniform(&mut r, 54, -0.5, 0.5),
            ),
            tensor("conv.bias", &[3], &uniform(&mut r, 3, -0.2, 0.2)),
            tensor("act.weight", &[3, 1, 1], &[0.25, -0.1, 0.6]),
            scalar("zero", 0.0),
            scalar("six", 6.0),
            tensor("fc1.weight", &[4, 108], &uniform(&mut r, 432, -0.3, 0.3)),
            tensor("fc1.bias", &[4], &uniform(&mut r, 4, -0.1, 0.1)),
            tensor("fc2.weight", &[3, 4], &uniform(&mut r, 12, -1.0, 1.0)),
            tensor("fc2.bias", &[3], &uniform(&mut r, 3, -0.1, 0.1)),
        ],
        input: vec![value("x", &[None, Some(2), Some(6), Some(6)])],
        output: vec![value("probs", &[None, Some(3)])],
        ..Default::default()
    };
    pytorch_model(graph)
}

#[test]
fn prelu_relu6_sigmoid_and_final_softmax_import_and_match_tract() {
    let bytes = activations_graph().encode_to_vec();
    let imp = parse_onnx(&bytes).unwrap();
    let names: Vec<&str> = imp.arch.layers.iter().map(|l| l.name()).collect();
    assert_eq!(
        names,
        ["conv2d", "prelu", "clip", "flatten", "dense", "sigmoid", "dense"]
    );
    assert_eq!(
        imp.arch.layers[2],
        anole::Layer::Extra(anole::Extra::Clip { min: 0.0, max: 6.0 })
    );
    // The softmax is dropped with a note, and the blob adapts with cross-entropy.
    assert!(imp.classifier);
    assert_eq!(imp.notes.len(), 1);
    assert!(
        imp.notes[0].starts_with("node 7 '/softmax/Softmax' (Softmax): dropped"),
        "{:?}",
        imp.notes
    );
    let blob = to_blob(&imp, &ImportOptions::default()).unwrap();
    assert_eq!(
        Blob::parse(&blob).unwrap().loss,
        anole::LossKind::CrossEntropy
    );
    let tract = TractModel::load(&bytes).unwrap();
    let mut r = rng(61);
    for n in [1, 4] {
        let x = uniform(&mut r, n * 72, -2.0, 2.0);
        let logits = runtime_predict(&blob, &x);
        let probs: Vec<f32> = logits
            .chunks(3)
            .flat_map(|row| {
                let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
                let s: f32 = e.iter().sum();
                e.into_iter().map(move |v| v / s)
            })
            .collect();
        let d = max_abs_diff(&tract.run(&[n, 2, 6, 6], &x).unwrap(), &probs);
        assert!(
            d <= 1e-5,
            "batch {n}: softmax of the logits differs from tract by {d}"
        );
    }
}

#[test]
fn clip_bounds_from_attributes_before_opset_11_and_a_shared_prelu_slope() {
    let mut m = activations_graph();
    m.opset_import[0].version = 9;
    let g = m.graph.as_mut().unwrap();
    g.node[2].input.truncate(1);
    g.node[2].attribute = vec![float_attr("min", -1.0), float_attr("max", 1.0)];
    g.initializer[2] = tensor("act.weight", &[1], &[0.3]);
    let imp = read_model(&m).unwrap();
    assert_eq!(
        imp.arch.layers[2],
        anole::Layer::Extra(anole::Extra::Clip {
            min: -1.0,
            max: 1.0
        })
    );
    assert_eq!(imp.params[57..60], [0.3, 0.3, 0.3]);
}

#[test]
fn bad_activations_are_refused_naming_the_node() {
    let cases: Vec<(&str, Edit)> = vec![
        ("node 2 '/relu6/Clip' (Clip): clip to [6, 6] is not supported", Box::new(|g| g.initializer[3] = tensor("zero", &[], &[6.0]))),
        ("node 2 '/relu6/Clip' (Clip): min has shape [2], expected a scalar", Box::new(|g| g.initializer[3] = tensor("zero", &[2], &[0.0, 1.0]))),
        ("node 1 '/act/PRelu' (PRelu): slope of shape [3] is not one value per channel ([3, 1, 1])", Box::new(|g| g.initializer[2].dims = vec![3])),
        ("node 1 '/act/PRelu' (PRelu): missing slope", Box::new(|g| g.node[1].input.truncate(1))),
        ("node 8 (Relu): follows node 7 '/softmax/Softmax' (Softmax), which is only supported as the graph's last node", Box::new(|g| {
            g.node.push(node("", "Relu", &["probs"], "r", vec![]));
            g.output[0].name = "r".into();
        })),
        ("node 3 '/Flatten' (Softmax): a softmax over an input of shape [batch, 3, 6, 6] is not supported", Box::new(|g| g.node[3].op_type = "Softmax".into())),
        ("node 7 '/softmax/Softmax' (Softmax): axis = 0 is not supported", Box::new(|g| g.node[7].attribute[0].i = 0)),
    ];
    for (want, edit) in cases {
        let mut m = activations_graph();
        edit(m.graph.as_mut().unwrap());
        let e = format!("{:#}", parse_onnx(&m.encode_to_vec()).unwrap_err());
        assert!(e.contains(want), "expected {want:?}, got {e:?}");
    }
}

#[test]
fn dropout_is_dropped_with_a_note() {
    let mut m = pytorch_style();
    m.graph.as_mut().unwrap().node[2].op_type = "Dropout".into();
    let imp = parse_onnx(&m.encode_to_vec()).unwrap();
    assert!(
        imp.notes
            .iter()
            .any(|n| n.contains("(Dropout): dropped; dropout passes its input on")),
        "{:?}",
        imp.notes
    );
    let plain = parse_onnx(&pytorch_style().encode_to_vec()).unwrap();
    assert_eq!(imp.arch.layers.len() + 1, plain.arch.layers.len());
    // A dropout in training mode is refused.
    let g = m.graph.as_mut().unwrap();
    g.initializer.push(TensorProto {
        name: "train".into(),
        dims: vec![],
        data_type: DataType::Bool as i32,
        int32_data: vec![1],
        ..Default::default()
    });
    g.node[2].input = vec![g.node[2].input[0].clone(), String::new(), "train".into()];
    let e = format!("{:#}", parse_onnx(&m.encode_to_vec()).unwrap_err());
    assert!(e.contains("training_mode is true"), "{e}");
}

fn int_tensor(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![v.len() as i64],
        data_type: DataType::Int64 as i32,
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

fn string_attr(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// A 1-D CNN as on accelerometers, on [N, 3, 32]: Pad (2 before, 1 after) folded into a
/// strided Conv1d(3→8, k5, s2), BatchNorm1d, ReLU, a depthwise Conv1d (group 8, k3, dilation
/// 2, pads 2/2), a grouped pointwise Conv1d (8→4, group 2), MaxPool1d(k3, s2, pads 0/1),
/// AveragePool1d(k2, s2, pad 1 before), GlobalAveragePool, Flatten, Gemm(4→3).
fn one_d_graph() -> ModelProto {
    let mut r = rng(70);
    let graph = GraphProto {
        name: "main_graph".into(),
        node: vec![
            node("/pad/Pad", "Pad", &["x", "pads"], "p", vec![]),
            node(
                "/conv1/Conv",
                "Conv",
                &["p", "c1.w", "c1.b"],
                "c1",
                vec![
                    ints_attr("kernel_shape", &[5]),
                    ints_attr("strides", &[2]),
                    ints_attr("pads", &[0, 0]),
                ],
            ),
            node(
                "/bn/BatchNormalization",
                "BatchNormalization",
                &["c1", "bn.g", "bn.b", "bn.m", "bn.v"],
                "n",
                vec![],
            ),
            node("/relu/Relu", "Relu", &["n"], "r", vec![]),
            node(
                "/dw/Conv",
                "Conv",
                &["r", "dw.w", "dw.b"],
                "d",
                vec![
                    int_attr("group", 8),
                    ints_attr("dilations", &[2]),
                    ints_attr("pads", &[2, 2]),
                ],
            ),
            node(
                "/pw/Conv",
                "Conv",
                &["d", "pw.w"],
                "q",
                vec![int_attr("group", 2)],
            ),
            node(
                "/max/MaxPool",
                "MaxPool",
                &["q"],
                "m",
                vec![
                    ints_attr("kernel_shape", &[3]),
                    ints_attr("strides", &[2]),
                    ints_attr("pads", &[0, 1]),
                ],
            ),
            node(
                "/avg/AveragePool",
                "AveragePool",
                &["m"],
                "a",
                vec![
                    ints_attr("kernel_shape", &[2]),
                    ints_attr("strides", &[2]),
                    ints_attr("pads", &[1, 0]),
                ],
            ),
            node(
                "/gap/GlobalAveragePool",
                "GlobalAveragePool",
                &["a"],
                "g",
                vec![],
            ),
            node(
                "/Flatten",
                "Flatten",
                &["g"],
                "f",
                vec![int_attr("axis", 1)],
            ),
            node(
                "/fc/Gemm",
                "Gemm",
                &["f", "fc.w", "fc.b"],
                "y",
                vec![int_attr("transB", 1)],
            ),
        ],
        initializer: vec![
            int_tensor("pads", &[0, 0, 2, 0, 0, 1]),
            tensor("c1.w", &[8, 3, 5], &uniform(&mut r, 120, -0.4, 0.4)),
            tensor("c1.b", &[8], &uniform(&mut r, 8, -0.2, 0.2)),
            tensor("bn.g", &[8], &uniform(&mut r, 8, 0.5, 1.5)),
            tensor("bn.b", &[8], &uniform(&mut r, 8, -0.2, 0.2)),
            tensor("bn.m", &[8], &uniform(&mut r, 8, -0.3, 0.3)),
            tensor("bn.v", &[8], &uniform(&mut r, 8, 0.2, 2.0)),
            tensor("dw.w", &[8, 1, 3], &uniform(&mut r, 24, -0.6, 0.6)),
            tensor("dw.b", &[8], &uniform(&mut r, 8, -0.2, 0.2)),
            tensor("pw.w", &[4, 4, 1], &uniform(&mut r, 16, -0.6, 0.6)),
            tensor("fc.w", &[3, 4], &uniform(&mut r, 12, -1.0, 1.0)),
            tensor("fc.b", &[3], &uniform(&mut r, 3, -0.1, 0.1)),
        ],
        input: vec![value("x", &[None, Some(3), Some(32)])],
        output: vec![value("y", &[None, Some(3)])],
        ..Default::default()
    };
    pytorch_model(graph)
}

/// DS-CNN's shape on [N, 1, 49, 10] (keyword spotting's MFCCs), written as tf2onnx writes
/// Keras' `padding="same"`: Conv(1→8, 10×4, stride 2, `auto_pad` SAME_UPPER), ReLU, a
/// depthwise 3×3 (SAME_UPPER), Clip(0, 6), a pointwise 1×1 (8→6), AveragePool over the whole
/// 25×5 map, Flatten, Gemm(6→4).
fn ds_cnn_graph() -> ModelProto {
    let mut r = rng(71);
    let same = || string_attr("auto_pad", "SAME_UPPER");
    let graph = GraphProto {
        name: "main_graph".into(),
        node: vec![
            node(
                "/conv1/Conv",
                "Conv",
                &["x", "c1.w", "c1.b"],
                "c1",
                vec![ints_attr("strides", &[2, 2]), same()],
            ),
            node("/relu/Relu", "Relu", &["c1"], "r", vec![]),
            node(
                "/dw/Conv",
                "Conv",
                &["r", "dw.w", "dw.b"],
                "d",
                vec![int_attr("group", 8), same()],
            ),
            node("/relu6/Clip", "Clip", &["d", "zero", "six"], "q", vec![]),
            node("/pw/Conv", "Conv", &["q", "pw.w", "pw.b"], "p", vec![]),
            node(
                "/avg/AveragePool",
                "AveragePool",
                &["p"],
                "a",
                vec![ints_attr("kernel_shape", &[25, 5])],
            ),
            node(
                "/Flatten",
                "Flatten",
                &["a"],
                "f",
                vec![int_attr("axis", 1)],
            ),
            node(
                "/fc/Gemm",
                "Gemm",
                &["f", "fc.w", "fc.b"],
                "y",
                vec![int_attr("transB", 1)],
            ),
        ],
        initializer: vec![
            tensor("c1.w", &[8, 1, 10, 4], &uniform(&mut r, 320, -0.3, 0.3)),
            tensor("c1.b", &[8], &uniform(&mut r, 8, -0.2, 0.2)),
            tensor("dw.w", &[8, 1, 3, 3], &uniform(&mut r, 72, -0.5, 0.5)),
            tensor("dw.b", &[8], &uniform(&mut r, 8, -0.2, 0.2)),
            tensor("zero", &[], &[0.0]),
            tensor("six", &[], &[6.0]),
            tensor("pw.w", &[6, 8, 1, 1], &uniform(&mut r, 48, -0.5, 0.5)),
            tensor("pw.b", &[6], &uniform(&mut r, 6, -0.2, 0.2)),
            tensor("fc.w", &[4, 6], &uniform(&mut r, 24, -1.0, 1.0)),
            tensor("fc.b", &[4], &uniform(&mut r, 4, -0.1, 0.1)),
        ],
        input: vec![value("x", &[None, Some(1), Some(49), Some(10)])],
        output: vec![value("y", &[None, Some(4)])],
        ..Default::default()
    };
    pytorch_model(graph)
}

/// Import `model`, check its layer kinds, compare its predictions with tract's at batch 1
/// and 4, and check that export then import gives the same blob.
fn imports_like_tract(model: &ModelProto, kinds: &[&str], sample: &[usize]) {
    let bytes = model.encode_to_vec();
    let imp = parse_onnx(&bytes).unwrap_or_else(|e| panic!("{e:#}"));
    let names: Vec<&str> = imp.arch.layers.iter().map(|l| l.name()).collect();
    assert_eq!(names, kinds);
    let blob = to_blob(&imp, &ImportOptions::default()).unwrap();
    let tract = TractModel::load(&bytes).unwrap();
    let per: usize = sample.iter().product();
    let mut r = rng(72);
    for n in [1, 4] {
        let x = uniform(&mut r, n * per, -1.0, 1.0);
        let mut shape = vec![n];
        shape.extend(sample);
        let d = max_abs_diff(&tract.run(&shape, &x).unwrap(), &runtime_predict(&blob, &x));
        assert!(
            d <= 1e-5,
            "batch {n}: imported model differs from tract by {d}"
        );
    }
    let parsed = Blob::parse(&blob).unwrap();
    let again = read_model(&ModelProto::decode(onnx_bytes(&parsed).unwrap().as_slice()).unwrap())
        .unwrap_or_else(|e| panic!("re-import of the export: {e:#}"));
    assert_eq!(again.arch, imp.arch);
    assert_eq!(to_blob(&again, &ImportOptions::default()).unwrap(), blob);
}

#[test]
fn one_d_cnn_with_pad_depthwise_dilated_and_grouped_convolutions_matches_tract() {
    imports_like_tract(
        &one_d_graph(),
        &[
            "conv",
            "norm",
            "relu",
            "conv",
            "conv",
            "pool",
            "pool",
            "globalavgpool",
            "flatten",
            "dense",
        ],
        &[3, 32],
    );
}

#[test]
fn ds_cnn_style_same_padding_depthwise_and_whole_map_pooling_matches_tract() {
    imports_like_tract(
        &ds_cnn_graph(),
        &[
            "conv",
            "relu",
            "conv",
            "clip",
            "conv2d",
            "globalavgpool",
            "flatten",
            "dense",
        ],
        &[1, 49, 10],
    );
}

#[test]
fn pads_and_windows_that_cannot_be_read_are_refused_naming_the_node() {
    let cases: Vec<(&str, Edit)> = vec![
        (
            "node 0 '/pad/Pad' (Pad): padding with 1 is not supported (only zeros)",
            Box::new(|g| {
                g.node[0].input.push("one".into());
                g.initializer.push(tensor("one", &[], &[1.0]));
            }),
        ),
        (
            "node 0 '/pad/Pad' (Pad): pads [0, 1, 2, 0, 0, 1] pad the batch or channel axis",
            Box::new(|g| g.initializer[0].int64_data = vec![0, 1, 2, 0, 0, 1]),
        ),
        (
            "node 0 '/pad/Pad' (Pad): negative pads [0, 0, -2, 0, 0, 1] (cropping) are not supported",
            Box::new(|g| g.initializer[0].int64_data = vec![0, 0, -2, 0, 0, 1]),
        ),
        (
            "node 0 '/pad/Pad' (Pad): mode reflect is not supported",
            Box::new(|g| g.node[0].attribute.push(string_attr("mode", "reflect"))),
        ),
        (
            "node 0 '/pad/Pad' (Pad): only a Conv or an AveragePool right after a Pad can take its padding, not node 1 '/conv1/Conv' (Relu)",
            Box::new(|g| g.node[1].op_type = "Relu".into()),
        ),
        (
            "node 4 '/dw/Conv' (Conv): group 3 does not divide the 8 output channels",
            Box::new(|g| g.node[4].attribute[0].i = 3),
        ),
        (
            "node 4 '/dw/Conv' (Conv): weight of 1 input channels per group × group 4 does not match the input of shape [batch, 8, 1, 16]",
            Box::new(|g| g.node[4].attribute[0].i = 4),
        ),
        (
            "node 6 '/max/MaxPool' (MaxPool): dilations [2] are not supported",
            Box::new(|g| g.node[6].attribute.push(ints_attr("dilations", &[2]))),
        ),
        (
            "node 6 '/max/MaxPool' (MaxPool): ceil_mode = 1 is not supported",
            Box::new(|g| g.node[6].attribute.push(int_attr("ceil_mode", 1))),
        ),
        (
            "node 6 '/max/MaxPool' (MaxPool): kernel [3, 3] is not 1-D like the model's input",
            Box::new(|g| g.node[6].attribute[0].ints = vec![3, 3]),
        ),
        (
            "node 1 '/conv1/Conv' (Conv): weight has shape [8, 3, 5, 1], expected [out, in, k]",
            Box::new(|g| g.initializer[1].dims = vec![8, 3, 5, 1]),
        ),
        (
            "node 4 '/dw/Conv' (Conv): dilations [300]: 300 is outside 1 to 255",
            Box::new(|g| g.node[4].attribute[1].ints = vec![300]),
        ),
        (
            "node 4 '/dw/Conv' (Conv): the window (kernel [3], dilations [20], pads [2, 2]) does not fit the input of shape [batch, 8, 1, 16]",
            Box::new(|g| g.node[4].attribute[1].ints = vec![20]),
        ),
    ];
    for (want, edit) in cases {
        let mut m = one_d_graph();
        edit(m.graph.as_mut().unwrap());
        let e = format!("{:#}", parse_onnx(&m.encode_to_vec()).unwrap_err());
        assert!(e.contains(want), "expected {want:?}, got {e:?}");
    }
    // A Pad as the last node, and before a max pooling (its zeros could win).
    let mut m = one_d_graph();
    let g = m.graph.as_mut().unwrap();
    g.node
        .push(node("/pad2/Pad", "Pad", &["y", "pads"], "z", vec![]));
    g.output[0].name = "z".into();
    let e = format!("{:#}", parse_onnx(&m.encode_to_vec()).unwrap_err());
    assert!(
        e.contains(
            "node 11 '/pad2/Pad' (Pad): padding an input of shape [batch, 3] is not supported"
        ),
        "{e}"
    );
    let mut m = ds_cnn_graph();
    let g = m.graph.as_mut().unwrap();
    g.node[5].op_type = "MaxPool".into();
    g.node
        .insert(5, node("/pad/Pad", "Pad", &["p", "pads"], "p2", vec![]));
    g.node[6].input[0] = "p2".into();
    g.initializer
        .push(int_tensor("pads", &[0, 0, 0, 0, 0, 0, 0, 0]));
    let e = format!("{:#}", parse_onnx(&m.encode_to_vec()).unwrap_err());
    assert!(
        e.contains("node 6 '/avg/AveragePool' (MaxPool): a Pad before a MaxPool cannot be folded"),
        "{e}"
    );
}

/// Two ResNet blocks as PyTorch's default exporter writes them (batch norm folded into the
/// convolutions), on [N, 2, 8, 8]: Conv(2→4) Relu; block 1 with an identity shortcut
/// (Conv Relu Conv, Add of the block's input, Relu); block 2 with a projection shortcut
/// (Conv stride 2 Relu Conv on the main path, a strided 1×1 Conv of the block's input written
/// before it, Add, Relu); GlobalAveragePool, Flatten, Gemm(4→3).
fn residual_graph() -> ModelProto {
    let mut r = rng(73);
    let conv = |name: &str, x: &str, y: &str, stride: i64, pad: i64| {
        node(
            name,
            "Conv",
            &[x, &format!("{name}.w"), &format!("{name}.b")],
            y,
            vec![
                ints_attr("strides", &[stride, stride]),
                ints_attr("pads", &[pad; 4]),
            ],
        )
    };
    let mut init = Vec::new();
    for (name, cout, cin, k) in [
        ("stem", 4, 2, 3),
        ("b1c1", 4, 4, 3),
        ("b1c2", 4, 4, 3),
        ("b2sc", 4, 4, 1),
        ("b2c1", 4, 4, 3),
        ("b2c2", 4, 4, 3),
    ] {
        let n = (cout * cin * k * k) as usize;
        init.push(tensor(
            &format!("{name}.w"),
            &[cout, cin, k, k],
            &uniform(&mut r, n, -0.4, 0.4),
        ));
        init.push(tensor(
            &format!("{name}.b"),
            &[cout],
            &uniform(&mut r, cout as usize, -0.1, 0.1),
        ));
    }
    init.push(tensor("fc.w", &[3, 4], &uniform(&mut r, 12, -1.0, 1.0)));
    init.push(tensor("fc.b", &[3], &uniform(&mut r, 3, -0.1, 0.1)));
    let graph = GraphProto {
        name: "main_graph".into(),
        node: vec![
            conv("stem", "x", "s", 1, 1),
            node("r0", "Relu", &["s"], "a0", vec![]),
            conv("b1c1", "a0", "h1", 1, 1),
            node("r1", "Relu", &["h1"], "a1", vec![]),
            conv("b1c2", "a1", "h2", 1, 1),
            node("add1", "Add", &["h2", "a0"], "s1", vec![]),
            node("r2", "Relu", &["s1"], "a2", vec![]),
            conv("b2sc", "a2", "sc", 2, 0),
            conv("b2c1", "a2", "h3", 2, 1),
            node("r3", "Relu", &["h3"], "a3", vec![]),
            conv("b2c2", "a3", "h4", 1, 1),
            node("add2", "Add", &["h4", "sc"], "s2", vec![]),
            node("r4", "Relu", &["s2"], "a4", vec![]),
            node("gap", "GlobalAveragePool", &["a4"], "g", vec![]),
            node("flat", "Flatten", &["g"], "f", vec![int_attr("axis", 1)]),
            node(
                "fc",
                "Gemm",
                &["f", "fc.w", "fc.b"],
                "y",
                vec![int_attr("transB", 1)],
            ),
        ],
        initializer: init,
        input: vec![value("x", &[None, Some(2), Some(8), Some(8)])],
        output: vec![value("y", &[None, Some(3)])],
        ..Default::default()
    };
    pytorch_model(graph)
}

/// The layers `residual_graph` imports to: the stem, block 1 (identity shortcut), the shortcut
/// of block 2 read from the block's input, a branch back to that input, block 2's main path
/// and its addition, then the head.
const RESIDUAL_KINDS: [&str; 17] = [
    "conv2d",
    "relu",
    "conv2d",
    "relu",
    "conv2d",
    "add",
    "relu",
    "conv2d",
    "branch",
    "conv2d",
    "relu",
    "conv2d",
    "add",
    "relu",
    "globalavgpool",
    "flatten",
    "dense",
];

#[test]
fn residual_blocks_with_identity_and_projection_shortcuts_match_tract() {
    imports_like_tract(&residual_graph(), &RESIDUAL_KINDS, &[2, 8, 8]);
}

#[test]
fn values_changed_in_place_cannot_be_read_again() {
    let cases: Vec<(&str, Edit)> = vec![
        // The identity shortcut reads the stem's output before its ReLU, which works in place.
        (
            "node 5 'add1' (Add): reads 's' again, but layer 1 (relu) changed it in place",
            Box::new(|g| g.node[5].input[1] = "s".into()),
        ),
        (
            "node 5 'add1' (Sum): Sum of 2 computed tensors is not supported",
            Box::new(|g| g.node[5].op_type = "Sum".into()),
        ),
        (
            "node 5 'add1' (Concat): Concat along axis 2 is not supported",
            Box::new(|g| {
                g.node[5].op_type = "Concat".into();
                g.node[5].attribute.push(int_attr("axis", 2));
            }),
        ),
    ];
    for (want, edit) in cases {
        let mut m = residual_graph();
        edit(m.graph.as_mut().unwrap());
        let e = format!("{:#}", parse_onnx(&m.encode_to_vec()).unwrap_err());
        assert!(e.contains(want), "expected {want:?}, got {e:?}");
    }
}

#[test]
fn branches_joined_along_the_channels_match_tract() {
    // Block 2's two paths concatenated (the shortcut's channels first) instead of added.
    let mut m = residual_graph();
    let g = m.graph.as_mut().unwrap();
    g.node[11].op_type = "Concat".into();
    g.node[11].input = vec!["sc".into(), "h4".into()];
    g.node[11].attribute.push(int_attr("axis", 1));
    let mut r = rng(74);
    let fc = g.initializer.iter_mut().find(|t| t.name == "fc.w").unwrap();
    *fc = tensor("fc.w", &[3, 8], &uniform(&mut r, 24, -1.0, 1.0));
    let mut kinds = RESIDUAL_KINDS;
    kinds[12] = "concat";
    imports_like_tract(&m, &kinds, &[2, 8, 8]);
}

#[test]
fn a_channels_last_input_is_refused_with_the_tf2onnx_option_that_removes_it() {
    // What tf2onnx writes for a Keras model: NHWC input, a Transpose to NCHW, then the
    // operators.
    let mut m = ds_cnn_graph();
    let g = m.graph.as_mut().unwrap();
    g.input[0] = value("x", &[None, Some(49), Some(10), Some(1)]);
    let transpose = NodeProto {
        name: "transpose".into(),
        op_type: "Transpose".into(),
        input: vec!["x".into()],
        output: vec!["xt".into()],
        attribute: vec![ints_attr("perm", &[0, 3, 1, 2])],
        ..Default::default()
    };
    g.node.insert(0, transpose);
    g.node[1].input[0] = "xt".into();
    let e = format!("{:#}", parse_onnx(&m.encode_to_vec()).unwrap_err());
    assert!(
        e.contains("node 0 'transpose' (Transpose): the model takes channels-last input ([batch, h, w, c]) and transposes it; the runtime reads channels first: re-export with tf2onnx's --inputs-as-nchw x"),
        "{e}"
    );
}
