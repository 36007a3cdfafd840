//! The operators the importer reads, one function each, registered by name in [`OPS`] (as
//! tract's ONNX front-end registers its ops). A reader gets the node (its attributes, constant
//! inputs and the shape it reads) and says what it becomes: a runtime layer with its tensors, a
//! bias added to the dense layer before it, or nothing. The graph walk ([`super::read_model`])
//! checks what every node shares (a single chain, constant weights) and the layer each reader
//! returns (shapes, tensor sizes, finite values). Adding an operator: its reader and its row.

use super::proto::{constant, floats, ints, Attrs, Consts};
use anole::layers::{PoolMode, Window, Window2};
use anole::{Extra, Layer, Shape};
use anyhow::{anyhow, bail, Context, Result};
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::NodeProto;

/// What a node becomes.
pub(super) enum Step {
    /// A runtime layer with its tensors (in blob order).
    Layer(Layer, Vec<Vec<f32>>),
    /// A bias added to the dense layer that produced the node's input.
    Bias(Vec<f32>),
    /// Nothing: the node passes its input on.
    Pass,
    /// Nothing, and the node must be the graph's last: a softmax over the classes, which the
    /// runtime's cross-entropy applies (the note says so to the user).
    Last(String),
    /// Nothing: the node passes its input on at inference (dropout); the note says so.
    Dropped(String),
    /// Zero padding of an image (before and after, per axis `[height, width]`), folded into
    /// the padding of the convolution or average pooling that must come next.
    Pad(Padding),
    /// Nothing: the same values seen with another rank (a 1-D signal `[batch, c, l]` as
    /// `[batch, c, 1, l]` and back).
    View(usize),
    /// Layers without tensors, one after the other.
    Layers(Vec<Layer>),
}

/// Zero padding before and after, per axis (`[height, width]`; a 1-D signal pads its width).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Padding {
    pub begin: [i64; 2],
    pub end: [i64; 2],
}

/// A node as its reader sees it.
pub(super) struct Node<'a> {
    /// Where the node sits, for errors: `node 3 'conv1' (Conv)`.
    pub here: &'a str,
    pub proto: &'a NodeProto,
    pub attrs: Attrs<'a>,
    pub consts: &'a Consts<'a>,
    /// Per-sample shape of the activation the node reads.
    pub shape: Shape,
    /// Which input is that activation; the others are constants.
    pub data_pos: usize,
    /// When the node reads the output of a dense layer (possibly through `Identity` or a bias
    /// `Add`): that layer's outputs.
    pub dense_outputs: Option<usize>,
    /// The model reads a 1-D signal (`[batch, c, l]`): its images are `[c, 1, l]` and every
    /// spatial attribute has one value per side.
    pub signal: bool,
    /// The padding of a `Pad` node right before this one, to fold into this node's.
    pub pad: Option<Padding>,
    /// Rank of the activation as the graph sees it, batch included: 2 for vectors, 4 for
    /// images, 3 for a 1-D signal (4 when the graph views it as `[batch, c, 1, l]`).
    pub rank: usize,
}

impl Node<'_> {
    /// Dims and values of constant input `k`, if the node has it.
    fn weight(&self, k: usize) -> Result<Option<(Vec<i64>, Vec<f32>)>> {
        match self.proto.input.get(k).filter(|x| !x.is_empty()) {
            None => Ok(None),
            Some(x) => {
                let t = constant(self.consts, x, self.here)?;
                let values = floats(t).with_context(|| format!("{}: weight '{x}'", self.here))?;
                Ok(Some((t.dims.clone(), values)))
            }
        }
    }

    /// Constant input `k`, which the operator needs (`what` names it in the error).
    fn need(&self, k: usize, what: &str) -> Result<(Vec<i64>, Vec<f32>)> {
        self.weight(k)?
            .ok_or_else(|| anyhow!("{}: missing {what}", self.here))
    }
}

/// An operator the importer reads.
pub(super) struct Op {
    /// ONNX operator type.
    pub name: &'static str,
    /// How the list of supported operators names it (`None`: not listed on its own).
    pub listed: Option<&'static str>,
    /// What it becomes in the blob, for the operator table of the docs.
    pub becomes: &'static str,
    /// The attributes and inputs it accepts, for the operator table of the docs.
    pub accepts: &'static str,
    /// The number of inputs it must have, when fixed.
    pub arity: Option<usize>,
    /// The activation may be any of its inputs (the others are constants), not only the first.
    pub commutative: bool,
    /// Its reader.
    pub read: fn(&Node<'_>) -> Result<Step>,
}

/// An operator whose activation is its first input: its ONNX name, its name in the list of
/// supported operators, what it becomes and what it accepts (the docs' table), its reader.
const fn op(
    name: &'static str,
    listed: &'static str,
    (becomes, accepts): (&'static str, &'static str),
    read: fn(&Node<'_>) -> Result<Step>,
) -> Op {
    Op {
        name,
        listed: Some(listed),
        becomes,
        accepts,
        arity: None,
        commutative: false,
        read,
    }
}

/// Every operator read, in the order the list of supported operators gives them.
pub(super) const OPS: &[Op] = &[
    op(
        "Gemm",
        "Gemm",
        ("Dense", "`alpha` = `beta` = 1, `transA` = 0, `transB` 0 or 1; constant weight, optional constant bias"),
        gemm,
    ),
    op(
        "MatMul",
        "MatMul+Add",
        ("Dense (with the `Add` after it as its bias)", "a constant 2-D weight; the activation first"),
        matmul,
    ),
    Op {
        name: "Add",
        listed: None,
        becomes: "the bias of the Dense before it; or Add (a residual connection), with Branch where a path starts again from an earlier value",
        accepts: "right after `Gemm` or `MatMul`, a constant of one value per output, either input; or two values of one shape computed in the graph, neither changed in place since (a node reading an earlier value starts a branch)",
        arity: Some(2),
        commutative: true,
        read: add,
    },
    Op {
        name: "Concat",
        listed: Some("Concat"),
        becomes: "Concat (with Branch where a path starts again from an earlier value)",
        accepts: "two values computed in the graph, joined along the channels (`axis` 1), neither changed in place since",
        arity: Some(2),
        commutative: true,
        read: concat_constant,
    },
    op(
        "Conv",
        "Conv",
        ("Conv2d (square kernel, one group, no dilation, equal strides and pads), else Conv", "1-D or 2-D; a constant `[out, in / group, k…]` weight, optional bias; any `group` dividing both channel counts (depthwise: `group` = channels), `strides` and `dilations` (up to 255) and `pads` (up to 255) per axis and side, kernels up to 65,535, `auto_pad` `NOTSET`, `VALID`, `SAME_UPPER` or `SAME_LOWER`"),
        conv,
    ),
    op(
        "BatchNormalization",
        "BatchNormalization",
        ("Norm (scale, shift and the running statistics)", "inference (`training_mode` 0), `spatial` 1, positive `epsilon`, non-negative variances"),
        batch_norm,
    ),
    op("Relu", "Relu", ("Relu", "—"), |_| Ok(Step::Layer(Layer::Relu, vec![]))),
    op("Tanh", "Tanh", ("Tanh", "—"), |_| Ok(Step::Layer(Layer::Tanh, vec![]))),
    op("Sigmoid", "Sigmoid", ("Sigmoid", "—"), |_| {
        Ok(Step::Layer(Layer::Extra(Extra::Sigmoid), vec![]))
    }),
    op(
        "Clip",
        "Clip",
        ("Clip (ReLU6, Hardtanh)", "bounds as constant inputs, or before opset 11 as `min`/`max` attributes; a missing bound is infinite"),
        clip,
    ),
    op(
        "PRelu",
        "PRelu",
        ("PRelu", "a constant slope per channel, or one slope for all"),
        prelu,
    ),
    op(
        "LeakyRelu",
        "LeakyRelu",
        ("LeakyRelu", "a positive `alpha` (default 0.01)"),
        leaky_relu,
    ),
    op(
        "HardSigmoid",
        "HardSigmoid",
        ("HardSigmoid", "finite `alpha` (0.2) and `beta` (0.5)"),
        hard_sigmoid,
    ),
    op("HardSwish", "HardSwish", ("HardSwish", "—"), |_| {
        Ok(Step::Layer(Layer::Extra(Extra::HardSwish), vec![]))
    }),
    op(
        "MaxPool",
        "MaxPool",
        ("MaxPool2d (square, equal strides and pads), else Pool", "1-D or 2-D `kernel_shape`; `strides` and `pads` per axis and side, each pad below the kernel (`auto_pad` as `Conv`); `ceil_mode` 0, `dilations` 1, `storage_order` 0, no `Indices` output"),
        max_pool,
    ),
    op(
        "AveragePool",
        "AveragePool",
        ("AvgPool2d (square), GlobalAvgPool (a window of the whole input), else Pool", "as `MaxPool`, and `count_include_pad` 0 or 1"),
        average_pool,
    ),
    op(
        "GlobalAveragePool",
        "GlobalAveragePool",
        ("GlobalAvgPool", "an image input"),
        global_average_pool,
    ),
    op(
        "Pad",
        "Pad (folded)",
        ("the padding of the `Conv` or `AveragePool` right after it", "`mode` `constant` with value 0; `pads` (an input from opset 11, an attribute before; optional `axes`) on the spatial axes only, none negative; an `AveragePool` after it counts the padding (`count_include_pad` 1, or its own pads 0)"),
        pad,
    ),
    op("Flatten", "Flatten", ("Flatten", "`axis` 1"), flatten),
    op(
        "Reshape",
        "Reshape to [batch, -1]",
        ("Flatten", "a constant shape `[batch or 0, -1 or n]` (`allowzero` 1 only without a 0)"),
        reshape,
    ),
    op(
        "ReduceMean",
        "ReduceMean (global average)",
        ("GlobalAvgPool (and Flatten when `keepdims` is 0)", "over exactly the spatial axes of an image (`axes` an attribute, or an input from opset 18)"),
        reduce_mean,
    ),
    op(
        "Unsqueeze",
        "Unsqueeze",
        ("nothing: a 1-D signal seen as an image one row high", "`axes` [2] of a `[batch, c, l]` signal (an attribute, or an input from opset 13)"),
        unsqueeze,
    ),
    op(
        "Squeeze",
        "Squeeze",
        ("nothing (back to the signal), or Flatten", "the height axis of a signal seen as `[batch, c, 1, l]`, or every spatial axis of an image of 1×1"),
        squeeze,
    ),
    op("Identity", "Identity", ("nothing", "—"), |_| Ok(Step::Pass)),
    op(
        "Dropout",
        "Dropout (dropped)",
        ("nothing (a note)", "inference: a constant false `training_mode` or none; no mask output"),
        dropout,
    ),
    op(
        "Softmax",
        "Softmax (last node)",
        ("nothing (a note): the blob outputs the logits", "the graph's last node, over the classes"),
        final_softmax,
    ),
    op(
        "LogSoftmax",
        "LogSoftmax (last node)",
        ("nothing (a note): the blob outputs the logits", "the graph's last node, over the classes"),
        final_softmax,
    ),
];

/// The operator named `name`.
pub(super) fn find(name: &str) -> Option<&'static Op> {
    OPS.iter().find(|o| o.name == name)
}

/// The operator table of the docs (markdown): every operator read, what it becomes and what it
/// accepts, plus `Constant` (whose value feeds the others).
pub fn operator_table() -> String {
    let mut t = String::from("| ONNX operator | becomes | accepts |\n|---|---|---|\n");
    for o in OPS {
        t.push_str(&format!(
            "| `{}` | {} | {} |\n",
            o.name, o.becomes, o.accepts
        ));
    }
    t.push_str("| `Constant` | a constant input of the nodes above | a `value` tensor |\n");
    t
}

/// The supported operators, as the error for another one lists them.
pub(super) fn supported() -> String {
    OPS.iter()
        .filter_map(|o| o.listed)
        .collect::<Vec<_>>()
        .join(", ")
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

/// `Gemm` (`alpha = beta = 1`, `transA = 0`, `transB` 0 or 1): a dense layer.
fn gemm(n: &Node<'_>) -> Result<Step> {
    let (here, attrs) = (n.here, &n.attrs);
    attrs.expect_float("alpha", 1.0)?;
    attrs.expect_float("beta", 1.0)?;
    attrs.expect_int("transA", 0)?;
    let trans_b = attrs.int("transB", 0)?;
    let (dims, w) = n.need(1, "weight B")?;
    let [r, c] = dims.as_slice() else {
        bail!("{here}: weight B has shape {dims:?}, expected 2-D")
    };
    let (outputs, inputs, w) = match trans_b {
        1 => (*r as usize, *c as usize, w),
        0 => (
            *c as usize,
            *r as usize,
            transpose(&w, *r as usize, *c as usize),
        ),
        t => bail!("{here}: transB = {t} is not 0 or 1"),
    };
    let b = bias(n.weight(2)?, outputs, here)?;
    Ok(Step::Layer(Layer::Dense { inputs, outputs }, vec![w, b]))
}

/// `MatMul` by a constant `[in, out]`: a dense layer without bias (an `Add` after it gives one).
fn matmul(n: &Node<'_>) -> Result<Step> {
    let (dims, w) = n.need(1, "weight B")?;
    let [r, c] = dims.as_slice() else {
        bail!(
            "{}: weight has shape {dims:?}, expected 2-D [in, out]",
            n.here
        )
    };
    let (inputs, outputs) = (*r as usize, *c as usize);
    let w = transpose(&w, inputs, outputs);
    Ok(Step::Layer(
        Layer::Dense { inputs, outputs },
        vec![w, vec![0.0; outputs]],
    ))
}

/// `Add` of a constant to a dense layer's output: its bias.
fn add(n: &Node<'_>) -> Result<Step> {
    let here = n.here;
    let Some(outputs) = n.dense_outputs else {
        bail!("{here}: Add is only supported as the bias right after Gemm or MatMul");
    };
    let (dims, b) = n.need(1 - n.data_pos, "bias")?;
    if b.len() != outputs || dims.last().copied() != Some(outputs as i64) {
        bail!("{here}: bias has shape {dims:?}, expected [{outputs}]");
    }
    Ok(Step::Bias(b))
}

/// `Concat` of the chain's value and a constant: not supported (two computed values are read
/// by the graph walk).
fn concat_constant(n: &Node<'_>) -> Result<Step> {
    bail!(
        "{}: Concat with a constant tensor is not supported (only two values computed in the graph)",
        n.here
    )
}

/// `Conv`, 1-D or 2-D: the first kinds' square convolution when it is one (2-D, one group, a
/// square kernel, no dilation, equal strides and one padding on every side), else the general
/// convolution.
fn conv(n: &Node<'_>) -> Result<Step> {
    let (here, attrs) = (n.here, &n.attrs);
    let (dims, w) = n.need(1, "weight W")?;
    let rank = spatial_rank(n);
    if dims.len() != 2 + rank || dims.iter().any(|d| *d <= 0) {
        let want = if rank == 1 {
            "[out, in, k]"
        } else {
            "[out, in, kh, kw]"
        };
        bail!("{here}: weight has shape {dims:?}, expected {want} for this model's input");
    }
    let (cout, cin_group, kernel) = (dims[0], dims[1], &dims[2..]);
    if let Some(ks) = attrs.ints("kernel_shape")? {
        if ks != kernel {
            bail!("{here}: kernel_shape {ks:?} does not match the weight's {kernel:?}");
        }
    }
    let group = attrs.int("group", 1)?;
    if group <= 0 || cout % group != 0 {
        bail!("{here}: group {group} does not divide the {cout} output channels");
    }
    let cin = cin_group
        .checked_mul(group)
        .filter(|c| *c as usize == n.shape.channels_spatial().0)
        .ok_or_else(|| {
            anyhow!(
                "{here}: weight of {cin_group} input channels per group × group {group} does not match the input of shape {}",
                super::proto::shape_str(n.shape)
            )
        })?;
    let window = window(n, kernel, true)?;
    let b = bias(n.weight(2)?, cout as usize, here)?;
    let layer = match square(n, window) {
        Some(window) if group == 1 => Layer::Conv2d {
            in_channels: cin as usize,
            out_channels: cout as usize,
            window,
        },
        _ => {
            let small = |v: i64, what: &str| {
                u16::try_from(v).map_err(|_| {
                    anyhow!("{here}: {what} {v} is above 65535, the most a grouped, dilated or non-square convolution takes")
                })
            };
            Layer::Extra(Extra::Conv {
                in_channels: small(cin, "input channels")?,
                out_channels: small(cout, "output channels")?,
                groups: small(group, "group")?,
                window,
            })
        }
    };
    Ok(Step::Layer(layer, vec![w, b]))
}

/// Spatial axes of the activation as the graph sees it: 1 for a 1-D signal, else 2.
fn spatial_rank(n: &Node<'_>) -> usize {
    if n.rank == 3 {
        1
    } else {
        2
    }
}

/// The window of a convolution or pooling node with kernel `kernel` (one size per spatial
/// axis): `strides`, `dilations` (only where `dilation` allows), `pads` or `auto_pad`, and the
/// padding of a `Pad` folded into it; a 1-D signal's window is one row high.
fn window(n: &Node<'_>, kernel: &[i64], dilation: bool) -> Result<Window2> {
    let (here, attrs) = (n.here, &n.attrs);
    let rank = spatial_rank(n);
    if kernel.len() != rank {
        bail!("{here}: kernel {kernel:?} is not {rank}-D like the model's input");
    }
    let per_axis = |name: &str, len: usize, default: i64| -> Result<Vec<i64>> {
        match attrs.ints(name)? {
            None => Ok(vec![default; len]),
            Some(v) if v.len() == len => Ok(v),
            Some(v) => bail!("{here}: {name} {v:?} should have {len} values"),
        }
    };
    let strides = per_axis("strides", rank, 1)?;
    let dilations = per_axis("dilations", rank, 1)?;
    if !dilation && dilations.iter().any(|d| *d != 1) {
        bail!("{here}: dilations {dilations:?} are not supported (the runtime needs 1)");
    }
    let mut pads = per_axis("pads", 2 * rank, 0)?;
    let (h, w) = match n.shape {
        Shape::Chw(_, h, w) => (h as i64, w as i64),
        Shape::Flat(_) => bail!(
            "{here}: needs an image input, not {}",
            super::proto::shape_str(n.shape)
        ),
    };
    let sizes: Vec<i64> = if rank == 1 { vec![w] } else { vec![h, w] };
    match attrs.string("auto_pad")?.as_deref() {
        None | Some("NOTSET") | Some("") => {}
        Some("VALID") => pads.fill(0),
        Some(mode @ ("SAME_UPPER" | "SAME_LOWER")) => {
            // Output ceil(size / stride); the padding that needs, the odd one after (UPPER)
            // or before (LOWER).
            for a in 0..rank {
                let (s, d, k) = (strides[a].max(1), dilations[a], kernel[a]);
                let out = (sizes[a] + s - 1) / s;
                let total = ((out - 1) * s + (k - 1) * d + 1 - sizes[a]).max(0);
                let (small, large) = (total / 2, total - total / 2);
                (pads[a], pads[a + rank]) = if mode == "SAME_UPPER" {
                    (small, large)
                } else {
                    (large, small)
                };
            }
        }
        Some(other) => bail!("{here}: auto_pad {other} is not supported"),
    }
    if let Some(p) = n.pad {
        for a in 0..rank {
            let axis = a + 2 - rank;
            pads[a] += p.begin[axis];
            pads[a + rank] += p.end[axis];
        }
    }
    // Each value into the window's fields: kernel sides from 1 to 65535, strides and
    // dilations from 1 to 255, pads from 0 to 255; a signal's height is one row.
    let field = |name: &str, v: &[i64], min: i64, max: i64| -> Result<[i64; 2]> {
        if let Some(x) = v.iter().find(|x| !(min..=max).contains(*x)) {
            bail!("{here}: {name} {v:?}: {x} is outside {min} to {max}");
        }
        Ok(if rank == 1 { [min, v[0]] } else { [v[0], v[1]] })
    };
    let small = |name: &str, v: &[i64], min: i64| -> Result<[u8; 2]> {
        Ok(field(name, v, min, u8::MAX as i64)?.map(|x| x as u8))
    };
    let window = Window2 {
        kernel: field("kernel", kernel, 1, u16::MAX as i64)?.map(|x| x as u16),
        stride: small("strides", &strides, 1)?,
        dilation: small("dilations", &dilations, 1)?,
        pad_begin: small("pads", &pads[..rank], 0)?,
        pad_end: small("pads", &pads[rank..], 0)?,
    };
    if window.out_hw(h as usize, w as usize).is_none() {
        bail!(
            "{here}: the window (kernel {kernel:?}, dilations {dilations:?}, pads {pads:?}) does not fit the input of shape {}",
            super::proto::shape_str(n.shape)
        );
    }
    Ok(window)
}

/// The first kinds' square window, when `w` is one in a 2-D model: equal kernel sides and
/// strides, no dilation, the same padding on all four sides.
fn square(n: &Node<'_>, w: Window2) -> Option<Window> {
    (!n.signal
        && w.kernel[0] == w.kernel[1]
        && w.stride[0] == w.stride[1]
        && w.dilation == [1, 1]
        && w.pad_begin[0] == w.pad_begin[1]
        && w.pad_begin == w.pad_end)
        .then_some(Window {
            kernel: w.kernel[0] as usize,
            stride: w.stride[0] as usize,
            padding: w.pad_begin[0] as usize,
        })
}

/// `BatchNormalization` in inference mode: a norm layer with its stored statistics.
fn batch_norm(n: &Node<'_>) -> Result<Step> {
    let (here, attrs) = (n.here, &n.attrs);
    attrs.expect_int("training_mode", 0)?;
    attrs.expect_int("spatial", 1)?;
    let eps = attrs.float("epsilon", 1e-5)?;
    if !(eps.is_finite() && eps > 0.0) {
        bail!("{here}: epsilon {eps} must be positive");
    }
    let channels = n.shape.channels_spatial().0;
    let mut ts = Vec::new();
    for (k, what) in [(1, "scale"), (2, "bias B"), (3, "mean"), (4, "var")] {
        let (_, v) = n.need(k, what)?;
        if v.len() != channels {
            bail!(
                "{here}: {what} has {} values, the input has {channels} channels",
                v.len()
            );
        }
        ts.push(v);
    }
    if ts[3].iter().any(|v| *v < 0.0) {
        bail!("{here}: a variance is negative");
    }
    Ok(Step::Layer(Layer::Norm { channels, eps }, ts))
}

/// The window of a pooling node: `kernel_shape` (1-D or 2-D), strides and pads (see
/// [`window`]), each pad below the kernel, no dilation, floor mode.
fn pool_window(n: &Node<'_>) -> Result<Window2> {
    let (here, attrs) = (n.here, &n.attrs);
    let Some(ks) = attrs.ints("kernel_shape")? else {
        bail!("{here}: kernel_shape is missing")
    };
    attrs.expect_int("ceil_mode", 0)?;
    let w = window(n, &ks, false)?;
    for a in 0..2 {
        if u16::from(w.pad_begin[a]) >= w.kernel[a] || u16::from(w.pad_end[a]) >= w.kernel[a] {
            bail!(
                "{here}: padding {:?} / {:?} is not below the kernel {:?} on every side",
                w.pad_begin,
                w.pad_end,
                w.kernel
            );
        }
    }
    Ok(w)
}

/// `MaxPool` (see [`pool_window`]; padding never wins); only the first output (no indices).
fn max_pool(n: &Node<'_>) -> Result<Step> {
    if n.proto.output.get(1).is_some_and(|x| !x.is_empty()) {
        bail!("{}: the Indices output is not supported", n.here);
    }
    if n.pad.is_some() {
        bail!(
            "{}: a Pad before a MaxPool cannot be folded (its zeros could be the maximum)",
            n.here
        );
    }
    n.attrs.expect_int("storage_order", 0)?;
    let window = pool_window(n)?;
    let layer = match square(n, window) {
        Some(window) if window.padding == 0 => Layer::MaxPool2d { window },
        Some(window) => Layer::Extra(Extra::MaxPool2d { window }),
        None => Layer::Extra(Extra::Pool {
            window,
            mode: PoolMode::Max,
        }),
    };
    Ok(Step::Layer(layer, vec![]))
}

/// `AveragePool` (see [`pool_window`]), `count_include_pad` 0 or 1; a window of the whole
/// input without padding is global average pooling.
fn average_pool(n: &Node<'_>) -> Result<Step> {
    let here = n.here;
    let mut include_pad = match n.attrs.int("count_include_pad", 0)? {
        0 => false,
        1 => true,
        v => bail!("{here}: count_include_pad = {v} is not 0 or 1"),
    };
    let own_pads = n
        .attrs
        .ints("pads")?
        .is_some_and(|p| p.iter().any(|v| *v != 0))
        || n.attrs
            .string("auto_pad")?
            .is_some_and(|m| m.starts_with("SAME"));
    if n.pad.is_some() {
        // The zeros of a Pad are inputs: the divisor counts them.
        if own_pads && !include_pad {
            bail!("{here}: a Pad before an AveragePool that leaves its own padding out of the divisor cannot be folded");
        }
        include_pad = true;
    }
    let window = pool_window(n)?;
    let Shape::Chw(_, h, w) = n.shape else {
        unreachable!("pool_window checked the image input")
    };
    let whole = window.kernel == [h as u16, w as u16]
        && window.pad_begin == [0, 0]
        && window.pad_end == [0, 0];
    let layer = if whole {
        Layer::Extra(Extra::GlobalAvgPool)
    } else if let Some(window) = square(n, window) {
        Layer::Extra(Extra::AvgPool2d {
            window,
            include_pad,
        })
    } else {
        let mode = if include_pad {
            PoolMode::AverageIncludePad
        } else {
            PoolMode::Average
        };
        Layer::Extra(Extra::Pool { window, mode })
    };
    Ok(Step::Layer(layer, vec![]))
}

/// The `axes` of a node: input 1 (newer opsets) or the attribute (older), each within the
/// activation's rank; `None` when it has neither.
fn axes(n: &Node<'_>) -> Result<Option<Vec<usize>>> {
    let here = n.here;
    let given = match n.proto.input.get(1).filter(|x| !x.is_empty()) {
        Some(x) => Some(
            ints(constant(n.consts, x, here)?).with_context(|| format!("{here}: axes '{x}'"))?,
        ),
        None => n.attrs.ints("axes")?,
    };
    let rank = n.rank as i64;
    given
        .map(|v| {
            let mut a =
                v.iter()
                    .map(|&x| {
                        let y = if x < 0 { x + rank } else { x };
                        (0..rank).contains(&y).then_some(y as usize).ok_or_else(|| {
                            anyhow!("{here}: axis {x} is outside a rank-{rank} input")
                        })
                    })
                    .collect::<Result<Vec<usize>>>()?;
            a.sort_unstable();
            Ok(a)
        })
        .transpose()
}

/// `ReduceMean` over exactly the spatial axes of an image: global average pooling (then
/// flatten, when the axes are dropped).
fn reduce_mean(n: &Node<'_>) -> Result<Step> {
    let here = n.here;
    let spatial: Vec<usize> = (2..n.rank).collect();
    let axes = axes(n)?;
    if !matches!(n.shape, Shape::Chw(..)) || axes.as_deref() != Some(spatial.as_slice()) {
        bail!(
            "{here}: a mean over axes {axes:?} of an input of shape {} is not supported (only over all spatial axes {spatial:?} of an image)",
            super::proto::shape_str(n.shape)
        );
    }
    Ok(match n.attrs.int("keepdims", 1)? {
        0 => Step::Layers(vec![Layer::Extra(Extra::GlobalAvgPool), Layer::Flatten]),
        _ => Step::Layer(Layer::Extra(Extra::GlobalAvgPool), vec![]),
    })
}

/// `Unsqueeze` of a 1-D signal to an image one row high (axis 2): the runtime's view already.
fn unsqueeze(n: &Node<'_>) -> Result<Step> {
    let here = n.here;
    let given = match n.proto.input.get(1).filter(|x| !x.is_empty()) {
        Some(x) => Some(ints(constant(n.consts, x, here)?)?),
        None => n.attrs.ints("axes")?,
    };
    let axes: Option<Vec<i64>> =
        given.map(|v| v.iter().map(|&a| if a < 0 { a + 4 } else { a }).collect());
    if n.rank == 3 && axes.as_deref() == Some(&[2]) {
        return Ok(Step::View(4));
    }
    bail!("{here}: Unsqueeze of axes {axes:?} is only supported on a 1-D signal's height axis ([batch, c, l] to [batch, c, 1, l])");
}

/// `Squeeze` back from a signal seen as `[batch, c, 1, l]`, or of an image of 1×1 to a
/// vector (a flatten).
fn squeeze(n: &Node<'_>) -> Result<Step> {
    let here = n.here;
    let Shape::Chw(c, h, w) = n.shape else {
        bail!(
            "{here}: squeezing an input of shape {} is not supported",
            super::proto::shape_str(n.shape)
        );
    };
    let axes = axes(n)?;
    let spatial: Vec<usize> = (2..n.rank).collect();
    // What a missing `axes` squeezes: every axis of size 1 (the batch excepted).
    let ones: Vec<usize> = {
        let dims: Vec<usize> = if n.rank == 3 {
            vec![c, w]
        } else {
            vec![c, h, w]
        };
        dims.iter()
            .enumerate()
            .filter(|(_, d)| **d == 1)
            .map(|(k, _)| k + 1)
            .collect()
    };
    let axes = axes.unwrap_or(ones);
    if n.rank == 4 && n.signal && h == 1 && axes == [2] {
        return Ok(Step::View(3));
    }
    if axes == spatial && h == 1 && w == 1 {
        return Ok(Step::Layer(Layer::Flatten, vec![]));
    }
    bail!("{here}: Squeeze of axes {axes:?} of an input of shape {} is not supported (only a signal's height axis, or every spatial axis of a 1×1 image)", super::proto::shape_str(n.shape));
}

/// `Pad` with zeros on the spatial axes: folded into the next node (see [`Step::Pad`]).
fn pad(n: &Node<'_>) -> Result<Step> {
    let (here, attrs) = (n.here, &n.attrs);
    match attrs.string("mode")?.as_deref() {
        None | Some("constant") => {}
        Some(m) => bail!("{here}: mode {m} is not supported (only constant zeros)"),
    }
    let rank = n.rank;
    if !matches!(n.shape, Shape::Chw(..)) {
        bail!(
            "{here}: padding an input of shape {} is not supported (only images)",
            super::proto::shape_str(n.shape)
        );
    }
    // Opset 11 on: pads, constant value and axes are inputs; before: attributes.
    let int_input = |k: usize| -> Result<Option<Vec<i64>>> {
        match n.proto.input.get(k).filter(|x| !x.is_empty()) {
            None => Ok(None),
            Some(x) => Ok(Some(
                ints(constant(n.consts, x, here)?)
                    .with_context(|| format!("{here}: input '{x}'"))?,
            )),
        }
    };
    let pads = match int_input(1)? {
        Some(p) => p,
        None => attrs
            .ints("pads")?
            .ok_or_else(|| anyhow!("{here}: pads are missing"))?,
    };
    let value = match n.weight(2)? {
        Some((_, v)) if v.len() == 1 => v[0],
        Some((dims, _)) => bail!("{here}: constant_value of shape {dims:?} is not one value"),
        None => attrs.float("value", 0.0)?,
    };
    if value != 0.0 {
        bail!("{here}: padding with {value} is not supported (only zeros)");
    }
    let axes: Vec<i64> = match int_input(3)? {
        Some(a) => a
            .iter()
            .map(|&x| if x < 0 { x + rank as i64 } else { x })
            .collect(),
        None => (0..rank as i64).collect(),
    };
    if pads.len() != 2 * axes.len() || axes.iter().any(|a| !(0..rank as i64).contains(a)) {
        bail!("{here}: pads {pads:?} do not match the axes {axes:?} of a rank-{rank} input");
    }
    let mut p = Padding::default();
    for (j, &axis) in axes.iter().enumerate() {
        let (b, e) = (pads[j], pads[j + axes.len()]);
        if b < 0 || e < 0 {
            bail!("{here}: negative pads {pads:?} (cropping) are not supported");
        }
        if axis < 2 {
            if b != 0 || e != 0 {
                bail!("{here}: pads {pads:?} pad the batch or channel axis; only the spatial axes can be padded");
            }
            continue;
        }
        let a = axis as usize + 2 - rank; // 0 height, 1 width (a signal's axis 2 is its width)
        p.begin[a] += b;
        p.end[a] += e;
    }
    Ok(Step::Pad(p))
}

/// `GlobalAveragePool` over an image: `[c, h, w]` to `[c, 1, 1]`.
fn global_average_pool(n: &Node<'_>) -> Result<Step> {
    let Shape::Chw(..) = n.shape else {
        bail!(
            "{}: global average pooling needs an image input, not {}",
            n.here,
            super::proto::shape_str(n.shape)
        );
    };
    Ok(Step::Layer(Layer::Extra(Extra::GlobalAvgPool), vec![]))
}

/// `LeakyRelu` with a positive `alpha` (default 0.01).
fn leaky_relu(n: &Node<'_>) -> Result<Step> {
    let alpha = n.attrs.float("alpha", 0.01)?;
    if !(alpha.is_finite() && alpha > 0.0) {
        bail!(
            "{}: alpha {alpha} is not supported (needs a positive slope)",
            n.here
        );
    }
    Ok(Step::Layer(
        Layer::Extra(Extra::LeakyRelu { alpha }),
        vec![],
    ))
}

/// `HardSigmoid` (`alpha` default 0.2, `beta` 0.5).
fn hard_sigmoid(n: &Node<'_>) -> Result<Step> {
    let alpha = n.attrs.float("alpha", 0.2)?;
    let beta = n.attrs.float("beta", 0.5)?;
    if !(alpha.is_finite() && beta.is_finite()) {
        bail!("{}: alpha {alpha} and beta {beta} must be finite", n.here);
    }
    Ok(Step::Layer(
        Layer::Extra(Extra::HardSigmoid { alpha, beta }),
        vec![],
    ))
}

/// `Dropout` at inference: dropped (it passes its input on), with a note; a constant
/// `training_mode` must be false and the mask output unused.
fn dropout(n: &Node<'_>) -> Result<Step> {
    let here = n.here;
    if let Some(x) = n.proto.input.get(2).filter(|x| !x.is_empty()) {
        let t = constant(n.consts, x, here)?;
        let on = if t.data_type == DataType::Bool as i32 {
            t.raw_data.iter().any(|b| *b != 0) || t.int32_data.iter().any(|v| *v != 0)
        } else {
            ints(t)
                .with_context(|| format!("{here}: training_mode '{x}'"))?
                .iter()
                .any(|v| *v != 0)
        };
        if on {
            bail!("{here}: training_mode is true; export the model in inference mode");
        }
    }
    if n.proto.output.get(1).is_some_and(|x| !x.is_empty()) {
        bail!("{here}: the mask output is not supported");
    }
    Ok(Step::Dropped(format!(
        "{here}: dropped; dropout passes its input on at inference"
    )))
}

/// `Flatten` with `axis = 1`.
fn flatten(n: &Node<'_>) -> Result<Step> {
    n.attrs.expect_int("axis", 1)?;
    Ok(Step::Layer(Layer::Flatten, vec![]))
}

/// `Reshape` to `[batch, -1]` (or `[batch, n]`): a flatten.
fn reshape(n: &Node<'_>) -> Result<Step> {
    let here = n.here;
    let Some(x) = n.proto.input.get(1) else {
        bail!("{here}: missing shape")
    };
    let target =
        ints(constant(n.consts, x, here)?).with_context(|| format!("{here}: shape '{x}'"))?;
    // With `allowzero` 1 a 0 is a dimension of size 0, not "the input's": only a shape
    // without zeros means the same either way.
    if target.contains(&0) {
        n.attrs.expect_int("allowzero", 0)?;
    }
    let len = n.shape.len() as i64;
    let ok = match target.as_slice() {
        [0, b] => *b == -1 || *b == len,
        [-1, b] => *b == len,
        _ => false,
    };
    if !ok {
        bail!("{here}: reshape to {target:?}; only flattening to [batch, -1] (or [batch, {len}]) is supported");
    }
    Ok(Step::Layer(Layer::Flatten, vec![]))
}

/// `Clip` to `[min, max]`: the bounds from the constant inputs (opset 11 and later) or the
/// attributes (older opsets); a missing bound is infinite.
fn clip(n: &Node<'_>) -> Result<Step> {
    let here = n.here;
    let mut bounds = [
        n.attrs.float("min", f32::NEG_INFINITY)?,
        n.attrs.float("max", f32::INFINITY)?,
    ];
    for (k, (b, what)) in bounds.iter_mut().zip(["min", "max"]).enumerate() {
        if let Some((dims, v)) = n.weight(k + 1)? {
            let [v] = v.as_slice() else {
                bail!("{here}: {what} has shape {dims:?}, expected a scalar");
            };
            *b = *v;
        }
    }
    let [min, max] = bounds;
    if min.is_nan() || max.is_nan() || min >= max || min == f32::INFINITY {
        bail!("{here}: clip to [{min}, {max}] is not supported (needs min < max)");
    }
    Ok(Step::Layer(Layer::Extra(Extra::Clip { min, max }), vec![]))
}

/// `PRelu` with one slope per channel (`[c, 1, 1]` on images, `[n]` on vectors, leading ones
/// allowed) or one slope for all (repeated per channel).
fn prelu(n: &Node<'_>) -> Result<Step> {
    let here = n.here;
    let (dims, v) = n.need(1, "slope")?;
    let channels = n.shape.channels_spatial().0;
    let trimmed: Vec<i64> = dims.iter().copied().skip_while(|d| *d == 1).collect();
    let per_channel: &[i64] = match n.shape {
        Shape::Chw(c, ..) if n.rank == 3 => &[c as i64, 1],
        Shape::Chw(c, ..) => &[c as i64, 1, 1],
        Shape::Flat(c) => &[c as i64],
    };
    let slopes = if v.len() == 1 {
        vec![v[0]; channels]
    } else if trimmed == per_channel {
        v
    } else {
        bail!(
            "{here}: slope of shape {dims:?} is not one value per channel ({per_channel:?}) for an input of shape {}",
            super::proto::shape_str(n.shape)
        );
    };
    Ok(Step::Layer(
        Layer::Extra(Extra::PRelu { channels }),
        vec![slopes],
    ))
}

/// `Softmax` / `LogSoftmax` over the classes as the graph's last node: dropped, since the
/// runtime's cross-entropy applies it (prediction returns logits, whose order is the same).
fn final_softmax(n: &Node<'_>) -> Result<Step> {
    let here = n.here;
    let Shape::Flat(_) = n.shape else {
        bail!(
            "{here}: a softmax over an input of shape {} is not supported (only over the classes of a vector)",
            super::proto::shape_str(n.shape)
        );
    };
    let axis = n.attrs.int("axis", -1)?;
    if axis != 1 && axis != -1 {
        bail!("{here}: axis = {axis} is not supported (the classes are axis 1)");
    }
    Ok(Step::Last(format!(
        "{here}: dropped; the blob outputs the logits (the runtime's cross-entropy applies the softmax; the predicted class is the same)"
    )))
}
