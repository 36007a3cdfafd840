//! ONNX import, the inverse of the exporter: turn an ONNX model built from the runtime's layers
//! (written by `anole`, or exported from PyTorch) into an architecture and f32 parameters, and
//! refuse anything else with an error that names the node and operator.
//!
//! Accepted: a chain of nodes from one float input (`[batch, n]`, `[batch, c, l]` or
//! `[batch, c, h, w]`) to one output, made of the operators registered in `ops::OPS` (each with
//! what it accepts; the operator table of docs/cli.md is generated from it) and `Constant`
//! nodes feeding them (and integer computations of constants, folded first: [`fold`]); a
//! `Softmax` or `LogSoftmax` over the classes as the last node is dropped with a note (the
//! runtime's cross-entropy applies it). The chain may read an earlier value again: an `Add` or
//! `Concat` of two computed values becomes an `add` or `concat` layer, a node reading an
//! earlier value starts a `branch` there.
//!
//! Each operator is read by its own function, registered by name in [`ops`]; the graph walk
//! here checks the chain and the layers the readers return.

mod fold;
mod ops;
mod proto;

use crate::export::onnx::{loss_name, optimizer_name, META_PREFIX};
use crate::model::{encode_blob, Arch, BlobMeta, DTypeArg};
use anole::blob::AdaptSettings;
use anole::{DType, Layer, Shape};
use anyhow::{anyhow, bail, Result};
pub use ops::operator_table;
use ops::{Node, Step};
use prost::Message;
use proto::{at, input_dims, shape_str, Attrs, Consts};
use std::collections::HashMap;
use tract_onnx::pb::{ModelProto, NodeProto};

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
    /// What the import changed that the user should know (a final softmax dropped), one line
    /// each, naming the node.
    pub notes: Vec<String>,
    /// The graph ended in a softmax over classes, so without metadata the blob adapts with
    /// cross-entropy.
    pub classifier: bool,
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

/// Overrides of the blob's settings; `None` keeps the file's `anole.*` metadata or, for other
/// producers, the defaults ([`DEFAULT_LR`], [`DEFAULT_STEPS`], [`DEFAULT_BATCH`], MSE (or
/// cross-entropy when a final softmax was dropped), SGD, all layers, f32).
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
            loss: u8::from(imp.classifier),
            optimizer: 0,
            lr: DEFAULT_LR,
            steps: DEFAULT_STEPS,
            batch: DEFAULT_BATCH,
            trainable: imp.arch.all_layers(),
            head_start: 0,
            head_scale: 1.0,
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
    let mut consts: Consts<'_> = graph
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
    // Integer computations of constants (the pads TorchScript's exporter builds) become
    // constants too; the walk skips every node whose output is a constant.
    let folded = fold::fold(&graph.node, |x| {
        consts
            .get(x)
            .filter(|t| proto::ints(t).is_ok())
            .map(|t| (*t).clone())
    })?;
    for (name, t) in &folded {
        consts.insert(name.as_str(), t);
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
    let shape = Shape::from_dims(&input_shape).ok_or_else(|| {
        anyhow!(
            "input '{}': per-sample shape {input_shape:?} must be [n], [c, l] or [c, h, w]",
            input.name
        )
    })?;
    let mut chain = Chain {
        consts: &consts,
        layers: Vec::new(),
        tensors: Vec::new(),
        shape,
        signal: input_shape.len() == 2,
        pad: None,
        rank: input_shape.len() + 1,
        values: HashMap::from([(input.name.clone(), 0)]),
        value_shapes: vec![shape],
        cur: input.name.clone(),
        dense_out: None,
        last: None,
        notes: Vec::new(),
    };
    for (i, n) in graph.node.iter().enumerate() {
        chain.node(i, n)?;
    }
    if let Some((at, _)) = &chain.pad {
        bail!("{at}: nothing after it to fold the padding into (only a Conv or an AveragePool can take it)");
    }
    let Chain {
        layers,
        tensors,
        cur,
        last,
        mut notes,
        ..
    } = chain;
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
    Ok(Imported {
        arch,
        params,
        meta,
        classifier: last.is_some(),
        notes: {
            notes.extend(last.map(|(_, note)| note));
            notes
        },
    })
}

/// The layers read so far from a single chain of nodes.
struct Chain<'m> {
    consts: &'m Consts<'m>,
    layers: Vec<Layer>,
    tensors: Vec<Vec<f32>>,
    /// Per-sample shape of the chain's current value.
    shape: Shape,
    /// The model reads a 1-D signal `[c, l]` (its images are `[c, 1, l]`).
    signal: bool,
    /// A `Pad` node read but not yet folded into the node after it: where it is, its padding.
    pad: Option<(String, ops::Padding)>,
    /// Rank of the current value as the graph sees it, batch included (see `Node::rank`).
    rank: usize,
    /// The value index (the input of that layer; 0 the model's input) of every graph value
    /// the chain has made, by name.
    values: HashMap<String, usize>,
    /// The shape of every value, by index.
    value_shapes: Vec<Shape>,
    /// Name of the chain's current value.
    cur: String,
    /// Output name of the last node that made a dense layer, or passed its output on (an `Add`
    /// reading it is its bias).
    dense_out: Option<String>,
    /// A node that must be the graph's last (a dropped softmax), once read: where it is, and
    /// the note for the user.
    last: Option<(String, String)>,
    /// Notes for the user on nodes dropped along the way.
    notes: Vec<String>,
}

impl Chain<'_> {
    /// Read node `i`: check that it continues the chain with constant weights, read it with its
    /// operator's reader, and check and append what it becomes.
    fn node(&mut self, i: usize, n: &NodeProto) -> Result<()> {
        let here = at(i, n);
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            bail!(
                "{here}: operator domain '{}' is not supported (only standard ONNX operators)",
                n.domain
            );
        }
        if n.op_type == "Constant"
            || n.output
                .first()
                .is_some_and(|o| self.consts.contains_key(o.as_str()))
        {
            return Ok(());
        }
        if let Some((end, _)) = &self.last {
            bail!("{here}: follows {end}, which is only supported as the graph's last node");
        }
        let Some(out) = n.output.first().filter(|o| !o.is_empty()) else {
            bail!("{here}: has no output");
        };
        if n.output.iter().skip(1).any(|o| !o.is_empty()) {
            bail!(
                "{here}: optional outputs (training statistics, indices, masks) are not supported"
            );
        }
        let op = ops::find(&n.op_type);
        if let Some(k) = op.and_then(|o| o.arity).filter(|k| *k != n.input.len()) {
            bail!(
                "{here}: {} with {} inputs; expected {k}",
                n.op_type,
                n.input.len()
            );
        }
        let computed: Vec<&String> = n
            .input
            .iter()
            .filter(|x| !x.is_empty() && !self.consts.contains_key(x.as_str()))
            .collect();
        // A residual connection (the sum of two values computed in the graph) or a join of
        // two along the channels.
        if matches!(n.op_type.as_str(), "Add" | "Concat") && computed.len() == 2 {
            let concat = n.op_type == "Concat";
            if concat {
                let Some(axis) = n.attribute.iter().find(|a| a.name == "axis").map(|a| a.i) else {
                    bail!("{here}: Concat without its axis attribute");
                };
                let rank = self.rank as i64;
                if axis != 1 && axis + rank != 1 {
                    bail!("{here}: Concat along axis {axis} is not supported (only along the channels, axis 1)");
                }
            }
            let (a, b) = (computed[0].clone(), computed[1].clone());
            let other = if a == self.cur {
                b.clone()
            } else if b == self.cur {
                a.clone()
            } else {
                self.branch(&here, &a)?;
                b.clone()
            };
            let from = self.value(&here, &other)? as u16;
            let layer = if concat {
                let from_first = other == a && a != b;
                anole::Extra::Concat { from, from_first }
            } else {
                anole::Extra::Add { from }
            };
            self.push(&here, Layer::Extra(layer), vec![])?;
            self.dense_out = None;
            self.cur = out.clone();
            self.values.insert(out.clone(), self.layers.len());
            return Ok(());
        }
        if computed.len() > 1 && matches!(n.op_type.as_str(), "Sum" | "Concat" | "Mul") {
            bail!(
                "{here}: {} of {} computed tensors is not supported (the runtime adds or concatenates two, and runs a chain of layers otherwise)",
                n.op_type,
                computed.len()
            );
        }
        // A node that reads an earlier value, not the last one: a branch starts there.
        if let [x] = computed.as_slice() {
            if **x != self.cur && self.values.contains_key(x.as_str()) {
                let x = (*x).clone();
                self.branch(&here, &x)?;
            }
        }
        // The activation this node reads; every other input must be a weight.
        let cur = &self.cur;
        let data_pos = if op.is_some_and(|o| o.commutative) {
            n.input.iter().position(|x| x == cur)
        } else {
            Some(0).filter(|_| n.input.first() == Some(cur))
        };
        let Some(data_pos) = data_pos else {
            bail!(
                "{here}: does not read the previous layer's output '{cur}' or an earlier value of the graph"
            );
        };
        for (k, x) in n.input.iter().enumerate() {
            if k != data_pos && !x.is_empty() && !self.consts.contains_key(x.as_str()) {
                bail!("{here}: input '{x}' is computed in the graph; the runtime needs it as a constant weight");
            }
        }
        let Some(op) = op else {
            // tf2onnx turns a Keras model's channels-last input into the channels-first layout
            // of ONNX operators with a Transpose right after the input.
            let perm = n
                .attribute
                .iter()
                .find(|a| a.name == "perm")
                .map(|a| a.ints.as_slice());
            if n.op_type == "Transpose" && self.layers.is_empty() && perm == Some(&[0, 3, 1, 2]) {
                bail!(
                    "{here}: the model takes channels-last input ([batch, h, w, c]) and transposes it; the runtime reads channels first: re-export with tf2onnx's --inputs-as-nchw {cur}"
                );
            }
            bail!(
                "{here}: operator {} is not supported (supported: {})",
                n.op_type,
                ops::supported()
            );
        };
        let dense_outputs = match self.layers.last() {
            Some(Layer::Dense { outputs, .. }) if self.dense_out.as_ref() == Some(cur) => {
                Some(*outputs)
            }
            _ => None,
        };
        let step = (op.read)(&Node {
            here: &here,
            proto: n,
            attrs: Attrs {
                here: &here,
                node: n,
            },
            consts: self.consts,
            shape: self.shape,
            data_pos,
            dense_outputs,
            signal: self.signal,
            pad: self.pad.as_ref().map(|(_, p)| *p),
            rank: self.rank,
        })?;
        if let Some((at, _)) = self.pad.take() {
            if !matches!(n.op_type.as_str(), "Conv" | "AveragePool") {
                bail!("{at}: only a Conv or an AveragePool right after a Pad can take its padding, not {here}");
            }
        }
        self.dense_out = match step {
            Step::Layer(layer, ts) => self.push(&here, layer, ts)?.then(|| out.clone()),
            Step::Bias(b) => {
                if let Some(last) = self.tensors.last_mut() {
                    for (t, v) in last.iter_mut().zip(&b) {
                        *t += v;
                    }
                }
                Some(out.clone())
            }
            Step::Pass => (self.dense_out.as_ref() == Some(cur)).then(|| out.clone()),
            Step::Last(note) => {
                self.last = Some((here.clone(), note));
                None
            }
            Step::Dropped(note) => {
                self.notes.push(note);
                (self.dense_out.as_ref() == Some(cur)).then(|| out.clone())
            }
            Step::Pad(p) => {
                self.pad = Some((here.clone(), p));
                None
            }
            Step::View(rank) => {
                self.rank = rank;
                None
            }
            Step::Layers(layers) => {
                for layer in layers {
                    self.push(&here, layer, vec![])?;
                }
                None
            }
        };
        self.cur = out.clone();
        // The node's output names the chain's value now (a node that passes its input on
        // names the same value; a Pad's output is only the padded input of the next node).
        if self.pad.is_none() {
            self.values.insert(out.clone(), self.layers.len());
        }
        Ok(())
    }

    /// The value index of `name`, which a later node reads again: an error when no node made
    /// it, or a layer changed it in place since.
    fn value(&self, here: &str, name: &str) -> Result<usize> {
        let Some(&k) = self.values.get(name) else {
            bail!("{here}: reads '{name}', which is not a value of the chain of layers");
        };
        if k < self.layers.len() && self.layers[k].in_place() {
            bail!(
                "{here}: reads '{name}' again, but layer {k} ({}) changed it in place; the runtime keeps only values that no layer changes in place",
                self.layers[k].name()
            );
        }
        if k > u16::MAX as usize {
            bail!("{here}: reads a value too far back");
        }
        Ok(k)
    }

    /// Start a branch from the earlier value `name`: the chain goes on from it.
    fn branch(&mut self, here: &str, name: &str) -> Result<()> {
        let from = self.value(here, name)?;
        if self.pad.is_some() {
            bail!("{here}: a branch right after a Pad is not supported");
        }
        self.push(
            here,
            Layer::Extra(anole::Extra::Branch { from: from as u16 }),
            vec![],
        )?;
        self.dense_out = None;
        self.cur = name.to_string();
        Ok(())
    }

    /// Append `layer` with its tensors `ts` after checking that it takes the chain's shape and
    /// that its tensors have the sizes it needs and finite values; true for a dense layer.
    fn push(&mut self, here: &str, layer: Layer, ts: Vec<Vec<f32>>) -> Result<bool> {
        let values = &self.value_shapes;
        let next = layer
            .output_shape_after(self.shape, |k| values.get(k).copied())
            .ok_or_else(|| {
                anyhow!(
                    "{here}: does not accept its input of shape {}",
                    shape_str(self.shape)
                )
            })?;
        for (k, t) in ts.iter().enumerate() {
            let expected = layer.tensor_len(self.shape, k);
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
        let dense = matches!(layer, Layer::Dense { .. });
        self.layers.push(layer);
        self.tensors.extend(ts);
        self.shape = next;
        self.value_shapes.push(next);
        if let Shape::Flat(_) = next {
            self.rank = 2;
        }
        Ok(dense)
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
    let trainable: anole::LayerMask = num(&props, "trainable")?;
    if trainable & !arch.all_layers() != 0 {
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
            head_start: match props.get("head_start") {
                Some(_) => num(&props, "head_start")?,
                None => 0,
            },
            head_scale: match props.get("head_scale") {
                Some(_) => num(&props, "head_scale")?,
                None => 1.0,
            },
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
    use anole::{Blob, Extra};
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
                head_scale: 1.0,
                trainable: arch.head_only(),
                head_start: 0,
                lr_scale: Default::default(),
            },
            algorithm: "reptile".into(),
            task: "unit".into(),
            seed,
            meta_iterations: 12,
        };
        encode_blob(arch, &params, &meta).unwrap()
    }

    /// PReLU on vectors, a clip with one infinite bound, sigmoid.
    fn activations() -> Arch {
        Arch {
            input_shape: vec![3],
            layers: vec![
                Layer::Dense {
                    inputs: 3,
                    outputs: 5,
                },
                Layer::Extra(Extra::PRelu { channels: 5 }),
                Layer::Extra(Extra::Clip {
                    min: f32::NEG_INFINITY,
                    max: 1.0,
                }),
                Layer::Dense {
                    inputs: 5,
                    outputs: 4,
                },
                Layer::Extra(Extra::Sigmoid),
                Layer::Dense {
                    inputs: 4,
                    outputs: 2,
                },
            ],
        }
    }

    #[test]
    fn export_then_import_is_the_same_blob() {
        for (arch, dtype, loss) in [
            (Arch::sine(), DType::F32, 0),
            (Arch::omniglot(5, 8), DType::F32, 1),
            (Arch::omniglot(3, 4), DType::F16, 1),
            (activations(), DType::F32, 1),
            (activations(), DType::Bf16, 0),
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
    fn operator_table_in_the_docs_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md");
        let page = std::fs::read_to_string(&path).unwrap();
        let (begin, end) = ("<!-- operators:begin", "<!-- operators:end -->");
        let b = page
            .find(begin)
            .expect("docs/cli.md: no operators:begin marker");
        let b = b + page[b..].find('\n').unwrap() + 1;
        let e = page
            .find(end)
            .expect("docs/cli.md: no operators:end marker");
        let table = ops::operator_table();
        if std::env::var_os("ANOLE_WRITE_DOCS").is_some() {
            std::fs::write(&path, format!("{}{table}{}", &page[..b], &page[e..])).unwrap();
            return;
        }
        assert_eq!(
            page[b..e],
            table,
            "docs/cli.md's operator table is stale: rerun with ANOLE_WRITE_DOCS=1"
        );
    }

    #[test]
    fn refuses_unsupported_operator_naming_the_node() {
        let bytes = blob_bytes(&Arch::sine(), DType::F32, 0, 1);
        let blob = Blob::parse(&bytes).unwrap();
        let mut m = crate::export::onnx::onnx_model(&blob).unwrap();
        let g = m.graph.as_mut().unwrap();
        g.node[1].op_type = "Erf".into();
        let e = read_model(&m).unwrap_err().to_string();
        assert!(
            e.contains("node 1 'layer1.tanh' (Erf)") && e.contains("not supported"),
            "{e}"
        );
    }
}
