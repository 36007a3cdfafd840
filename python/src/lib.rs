//! `anole._anole`: the extension module of the `anole` Python package. Blobs are the runtime's
//! `SharedBlob`, learners its `OwnedLearner` (the engine a device runs, so every number is the
//! device's), ONNX, inspection, signing and training the trainer library's own functions.
//! The Python package (`python/anole/`) re-exports these classes and defines the exception
//! classes they raise (`anole/_errors.py`).
//!
//! Arrays come in as C-contiguous numpy arrays and are copied before the GIL is released, so
//! another Python thread cannot change them while the engine reads them. Every failure is a
//! Python exception carrying the runtime's or trainer's message: nothing here panics on input.

use anole::{Mode, Options, OwnedLearner, SharedBlob, SliceSamples};
use anole_trainer::export::import::{self, AdaptArg, ImportOptions, LossArg};
use anole_trainer::model::{Arch, DTypeArg};
use clap::ValueEnum;
use numpy::{
    PyArray1, PyArray2, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use std::path::PathBuf;

/// The exception classes of `anole._errors`, by name.
fn error_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let m = MODULE.get_or_try_init(py, || py.import("anole._errors").map(Bound::unbind))?;
    m.bind(py).getattr(name)
}

/// A Python exception of class `class` (in `anole._errors`) with `message`, and the runtime's
/// error variant as its `kind` attribute (`None` for errors of the bindings or the trainer).
fn raise(py: Python<'_>, class: &str, message: String, kind: Option<&str>) -> PyErr {
    match error_class(py, class).and_then(|c| c.call1((message, kind))) {
        Ok(e) => PyErr::from_value(e),
        Err(e) => e,
    }
}

/// An error of the bindings' own checks (arrays, arguments).
fn err(class: &str, message: impl Into<String>) -> PyErr {
    Python::attach(|py| raise(py, class, message.into(), None))
}

/// The exception class of a runtime error.
fn class_of(e: &anole::Error) -> &'static str {
    use anole::Error as E;
    match e {
        E::Unsigned { .. }
        | E::EnvelopeVersion { .. }
        | E::EnvelopeLength { .. }
        | E::EnvelopeMalformed { .. }
        | E::UnknownKey { .. }
        | E::BadSignature
        | E::BadPublicKey => "SignatureError",
        E::SampleLength { .. }
        | E::ParamCount { .. }
        | E::OptimizerStateLen { .. }
        | E::BatchTooLarge { .. }
        | E::ArchitectureMismatch => "ShapeError",
        E::NonFiniteSample { .. } | E::BadOptimizerState { .. } => "NonFiniteError",
        E::NonFiniteLoss { .. } | E::NonFiniteParameter { .. } => "DivergedError",
        E::BadLabel { .. } | E::NoSamples | E::MissingClass { .. } => "SampleError",
        E::BadSettings { .. }
        | E::BadTrainableMask { .. }
        | E::NotAHead
        | E::NotOptimizerState
        | E::ArenaTooSmall { .. }
        | E::BufferTooSmall { .. } => "SettingsError",
        _ => "BlobError",
    }
}

/// A runtime error as a Python exception: `context` (what was being done), then the runtime's
/// message.
fn rt(context: &str, e: anole::Error) -> PyErr {
    Python::attach(|py| raise(py, class_of(&e), format!("{context}: {e}"), Some(&kind(&e))))
}

/// The name of a runtime error's variant (`NonFiniteSample`), from its `Debug` form.
fn kind(e: &anole::Error) -> String {
    let debug = format!("{e:?}");
    debug
        .split([' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A trainer error (ONNX import, training, key files) as a Python exception of `class`, with
/// the whole chain of causes.
fn tr(class: &str, e: anyhow::Error) -> PyErr {
    // A runtime error at the root keeps its own class.
    if let Some(r) = e.root_cause().downcast_ref::<anole::Error>() {
        return Python::attach(|py| raise(py, class_of(r), format!("{e:#}"), Some(&kind(r))));
    }
    err(class, format!("{e:#}"))
}

/// One argument array, checked and copied: float32 (or, for class labels, an integer dtype),
/// C-contiguous, its rows `row` values long, each row either flat or shaped `shape`.
struct Rows {
    values: Vec<f32>,
    n: usize,
}

fn rows(
    name: &str,
    a: &Bound<'_, PyAny>,
    row: usize,
    shape: &[usize],
    labels: bool,
) -> PyResult<Rows> {
    let py = a.py();
    let Ok(arr) = a.cast::<PyUntypedArray>() else {
        return Err(err(
            "DTypeError",
            format!(
                "{name}: expected a numpy array of float32, found {}",
                a.get_type().name()?
            ),
        ));
    };
    let dtype = arr.dtype();
    let dims = arr.shape().to_vec();
    let values: Vec<f32> = if dtype.is_equiv_to(&numpy::dtype::<f32>(py)) {
        contiguous(name, arr)?;
        let a = arr.cast::<PyArrayDyn<f32>>()?.readonly();
        a.as_slice()
            .map_err(|e| err("LayoutError", format!("{name}: {e}")))?
            .to_vec()
    } else if labels && dtype.is_equiv_to(&numpy::dtype::<i64>(py)) {
        int_labels::<i64>(name, arr)?
    } else if labels && dtype.is_equiv_to(&numpy::dtype::<i32>(py)) {
        int_labels::<i32>(name, arr)?
    } else {
        return Err(err(
            "DTypeError",
            format!(
                "{name}: expected dtype float32{}, found {} (convert with .astype(numpy.float32))",
                if labels { " or an integer dtype" } else { "" },
                dtype.str()?
            ),
        ));
    };
    // (n, row), (n, *shape), or (n,) when a row is one value.
    let n = dims.first().copied().unwrap_or(0);
    let ok = !dims.is_empty()
        && (dims[1..] == [row] || dims[1..] == *shape || (row == 1 && dims.len() == 1));
    if !ok {
        let want = if shape.len() > 1 {
            format!("(n, {row}) or (n, {})", dims_str(shape))
        } else if row == 1 {
            format!("(n,) or (n, {row})")
        } else {
            format!("(n, {row})")
        };
        return Err(err(
            "ShapeError",
            format!("{name}: expected shape {want}, found ({})", dims_str(&dims)),
        ));
    }
    Ok(Rows { values, n })
}

fn dims_str(d: &[usize]) -> String {
    d.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn contiguous(name: &str, arr: &Bound<'_, PyUntypedArray>) -> PyResult<()> {
    if arr.is_c_contiguous() {
        Ok(())
    } else {
        Err(err(
            "LayoutError",
            format!("{name}: the array is not C-contiguous (pass numpy.ascontiguousarray({name}))"),
        ))
    }
}

/// Integer class labels as the f32 class indices the runtime takes.
fn int_labels<T: numpy::Element + Copy + Into<i64>>(
    name: &str,
    arr: &Bound<'_, PyUntypedArray>,
) -> PyResult<Vec<f32>> {
    contiguous(name, arr)?;
    let a = arr.cast::<PyArrayDyn<T>>()?.readonly();
    let s = a
        .as_slice()
        .map_err(|e| err("LayoutError", format!("{name}: {e}")))?;
    s.iter()
        .enumerate()
        .map(|(i, &v)| {
            let v: i64 = v.into();
            if (0..=i64::from(u16::MAX)).contains(&v) {
                Ok(v as f32)
            } else {
                Err(err(
                    "SampleError",
                    format!("{name}: label {v} of sample {i} is not a class index"),
                ))
            }
        })
        .collect()
}

/// Rows of `x` that must all be finite (predict, classify: the runtime checks samples only
/// when it learns from them).
fn finite(name: &str, r: &Rows, row: usize) -> PyResult<()> {
    match r.values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(rt(name, anole::Error::NonFiniteSample { sample: i / row })),
        None => Ok(()),
    }
}

/// A parsed anole blob: an initialization (or an adapted model, or an optimizer state) with its
/// architecture, settings and provenance. Immutable; learners made from it share its bytes.
#[pyclass(module = "anole", name = "Blob", frozen)]
#[derive(Clone)]
struct Blob {
    shared: SharedBlob,
    /// Where it came from, for messages and `inspect()["file"]`.
    origin: String,
}

impl Blob {
    fn parse(bytes: Vec<u8>, origin: String) -> PyResult<Blob> {
        let shared = SharedBlob::parse(bytes).map_err(|e| rt(&origin, e))?;
        Ok(Blob { shared, origin })
    }

    fn inspect_value(&self, batch: Option<usize>) -> PyResult<serde_json::Value> {
        let b = self.shared.blob();
        anole_trainer::cmd::inspect::json(&self.origin, batch, b, self.shared.bytes().len())
            .map_err(|e| tr("SettingsError", e))
    }
}

/// A JSON value as the Python object `json.loads` makes of it.
fn to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    let text = v.to_string();
    py.import("json")?.call_method1("loads", (text,))
}

fn path_or_bytes(a: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<u8>, String)> {
    if let Ok(b) = a.cast::<PyBytes>() {
        return Ok((
            b.as_bytes().to_vec(),
            format!("{what} ({} bytes)", b.len()?),
        ));
    }
    if let Ok(b) = a.extract::<Vec<u8>>() {
        if !a.is_instance_of::<pyo3::types::PyString>() {
            let origin = format!("{what} ({} bytes)", b.len());
            return Ok((b, origin));
        }
    }
    let path: PathBuf = a.extract().map_err(|_| {
        err(
            "DTypeError",
            format!("{what}: expected bytes or a path (str or os.PathLike)"),
        )
    })?;
    let bytes = std::fs::read(&path)
        .map_err(|e| err("BlobError", format!("cannot read {}: {e}", path.display())))?;
    Ok((bytes, path.display().to_string()))
}

#[pymethods]
impl Blob {
    /// Read and parse a blob file (`init.postcard`). With `public_key` (32 bytes), the file
    /// must be a signed envelope of that key (`anole sign`), as a device checks it.
    #[staticmethod]
    #[pyo3(signature = (path, public_key=None))]
    fn load(path: PathBuf, public_key: Option<&[u8]>) -> PyResult<Blob> {
        let bytes = std::fs::read(&path)
            .map_err(|e| err("BlobError", format!("cannot read {}: {e}", path.display())))?;
        let origin = path.display().to_string();
        match public_key {
            Some(k) => verify_bytes(&bytes, k, origin),
            None => Blob::parse(bytes, origin),
        }
    }

    /// Parse blob bytes (what `Learner.export()` or `to_bytes()` return).
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Blob> {
        Blob::parse(data.to_vec(), format!("blob ({} bytes)", data.len()))
    }

    /// The 64-bit fingerprint of the blob's bytes (CRC-64/XZ) that names a fleet round's model
    /// in an update delta's header.
    #[getter]
    fn fingerprint(&self) -> u64 {
        anole::delta::fingerprint(self.shared.bytes())
    }

    /// The blob's bytes, as on flash.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.shared.bytes())
    }

    /// The model as ONNX (`anole adapt --onnx` writes the same bytes), returned as bytes.
    fn to_onnx<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = self.shared.blob();
        let onnx = anole_trainer::export::onnx::onnx_bytes(b).map_err(|e| tr("OnnxError", e))?;
        Ok(PyBytes::new(py, &onnx))
    }

    /// What `anole inspect --json` prints: layers and shapes, dtypes, parameter count, flash
    /// bytes, settings, provenance and arena sizes per mode and batch (also at `batch`).
    #[pyo3(signature = (batch=None))]
    fn inspect<'py>(&self, py: Python<'py>, batch: Option<usize>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inspect_value(batch)?)
    }

    /// The input of one sample: a tuple (`(1,)` for sine, `(1, 28, 28)` for Omniglot).
    #[getter]
    fn input_shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            self.shared
                .blob()
                .user_dims(self.shared.blob().input_shape())
                .to_vec(),
        )
    }

    /// The output of one sample, a tuple.
    #[getter]
    fn output_shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            self.shared
                .blob()
                .user_dims(self.shared.blob().output_shape())
                .to_vec(),
        )
    }

    /// Values of one sample's target: the output length (regression) or 1 (a class index).
    #[getter]
    fn target_len(&self) -> usize {
        self.shared.blob().target_len()
    }

    /// Number of parameters.
    #[getter]
    fn param_count(&self) -> usize {
        self.shared.blob().param_count()
    }

    /// Bytes of the blob (what it takes in flash).
    #[getter]
    fn flash_bytes(&self) -> usize {
        self.shared.bytes().len()
    }

    /// The layers as in `inspect()["layers"]`: index, layer, input, output, params, dtype,
    /// adapts, macs.
    #[getter]
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inspect_value(None)?["layers"])
    }

    /// Storage dtypes of the tensors (`f32`, `f16`, `bf16`).
    #[getter]
    fn dtypes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inspect_value(None)?["dtypes"])
    }

    /// The adaptation settings the blob recommends: loss, optimizer, lr, steps, batch,
    /// trainable layers, per-layer learning-rate scales, head start ("meta", or "prototypes":
    /// `Learner.adapt` starts the head from the support set's class prototypes) and head scale
    /// (the factor on the logits of a head started from prototypes).
    #[getter]
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inspect_value(None)?["settings"])
    }

    /// Where the blob came from: algorithm, task, seed, meta-iterations.
    #[getter]
    fn provenance<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inspect_value(None)?["provenance"])
    }

    /// f32 values of the arena a learner needs at `batch` (default: the blob's) in `mode`
    /// ("buffered" or "device"), adapting the blob's trainable layers, or none with
    /// `adapt=False` (predicting only).
    #[pyo3(signature = (batch=None, mode="buffered", adapt=true))]
    fn arena_len(&self, batch: Option<usize>, mode: &str, adapt: bool) -> PyResult<usize> {
        let b = self.shared.blob();
        let batch = batch.unwrap_or(b.settings().batch as usize);
        let trainable = if adapt { b.settings().trainable } else { 0 };
        anole::Plan::with_mode(b, batch, trainable, parse_mode(mode)?)
            .map(|p| p.arena_len())
            .map_err(|e| rt(&self.origin, e))
    }

    fn __len__(&self) -> usize {
        self.shared.bytes().len()
    }

    fn __eq__(&self, other: &Blob) -> bool {
        self.shared.bytes() == other.shared.bytes()
    }

    fn __repr__(&self) -> String {
        let b = self.shared.blob();
        let p = b.provenance();
        format!(
            "<anole.Blob {}: {} layers, {} parameters, {} bytes, task {}, {}>",
            self.origin,
            b.layers.len(),
            b.param_count(),
            self.shared.bytes().len(),
            p.task,
            p.algorithm
        )
    }
}

fn parse_mode(mode: &str) -> PyResult<Mode> {
    match mode {
        "buffered" => Ok(Mode::Buffered),
        "device" => Ok(Mode::Device),
        m => Err(err(
            "SettingsError",
            format!("mode {m:?}: expected \"buffered\" or \"device\""),
        )),
    }
}

fn verify_bytes(bytes: &[u8], key: &[u8], origin: String) -> PyResult<Blob> {
    let key: [u8; 32] = key.try_into().map_err(|_| {
        err(
            "SignatureError",
            format!("public key: expected 32 bytes, found {}", key.len()),
        )
    })?;
    let inner = anole::sign::verify(bytes, &key).map_err(|e| rt(&origin, e))?;
    Blob::parse(inner.to_vec(), origin)
}

/// A learner: the runtime's engine with its own arena over a shared blob, exactly what a device
/// runs (`mode="device"`: the microcontroller's arena layout, SGD fused into the backward
/// pass). Not shared between threads at once: one learner per simulated device.
#[pyclass(module = "anole", name = "Learner")]
#[derive(Clone)]
struct Learner {
    inner: OwnedLearner,
    blob: Blob,
    mode: Mode,
}

/// What `Learner.adapt` did.
#[pyclass(module = "anole", name = "AdaptReport", frozen, get_all)]
struct AdaptReport {
    /// Steps taken.
    steps: u32,
    /// Minibatch loss at the first step, before any update.
    first_loss: f32,
    /// Minibatch loss at the last step, before its update.
    last_loss: f32,
}

#[pymethods]
impl AdaptReport {
    fn __repr__(&self) -> String {
        format!(
            "AdaptReport(steps={}, first_loss={}, last_loss={})",
            self.steps, self.first_loss, self.last_loss
        )
    }
}

/// A trainable-layer mask from `None` (the blob's), "all", "head", an int bit mask, or a
/// sequence of layer indices.
fn trainable_mask(b: &anole::Blob<'_>, t: Option<&Bound<'_, PyAny>>) -> PyResult<anole::LayerMask> {
    let Some(t) = t else {
        return Ok(b.settings().trainable);
    };
    if let Ok(s) = t.extract::<String>() {
        return match s.as_str() {
            "all" => Ok(Arch::of(b).all_layers()),
            "head" => Ok(Arch::of(b).head_only()),
            _ => Err(err(
                "SettingsError",
                format!("trainable {s:?}: expected \"all\", \"head\", a mask or layer indices"),
            )),
        };
    }
    if let Ok(m) = t.extract::<anole::LayerMask>() {
        return Ok(m);
    }
    if let Ok(layers) = t.extract::<Vec<usize>>() {
        let mut mask: anole::LayerMask = 0;
        for l in layers {
            if l >= b.layers.len() {
                return Err(err(
                    "SettingsError",
                    format!(
                        "trainable: layer {l} does not exist (the model has {} layers)",
                        b.layers.len()
                    ),
                ));
            }
            mask |= 1 << l;
        }
        return Ok(mask);
    }
    Err(err(
        "SettingsError",
        "trainable: expected None, \"all\", \"head\", an int bit mask or a list of layer indices",
    ))
}

impl Learner {
    fn x(&self, a: &Bound<'_, PyAny>, name: &str) -> PyResult<Rows> {
        let b = self.inner.blob();
        rows(name, a, b.input_len(), &b.user_dims(b.input_shape()), false)
    }

    /// Support samples: `x` and `y` of the same number of rows.
    fn xy(&self, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<(Rows, Rows)> {
        let b = self.inner.blob();
        let xs = self.x(x, "x")?;
        let labels = b.loss == anole::LossKind::CrossEntropy;
        let shape = if labels {
            vec![1]
        } else {
            b.user_dims(b.output_shape()).to_vec()
        };
        let ys = rows("y", y, b.target_len(), &shape, labels)?;
        if xs.n != ys.n {
            return Err(err(
                "ShapeError",
                format!("x has {} rows but y has {}", xs.n, ys.n),
            ));
        }
        Ok((xs, ys))
    }

    fn input_len(&self) -> usize {
        self.inner.blob().input_len()
    }

    fn target_len(&self) -> usize {
        self.inner.blob().target_len()
    }
}

#[pymethods]
impl Learner {
    /// Load `blob` into a fresh arena. `batch`, `lr` and `trainable` default to the blob's
    /// settings; `trainable` is "all", "head" (the last layer with parameters), an int bit
    /// mask (bit i: layer i adapts) or a list of layer indices. `mode="device"` lays the arena
    /// out as a microcontroller does (same results for SGD, a smaller arena).
    #[new]
    #[pyo3(signature = (blob, batch=None, lr=None, trainable=None, mode="buffered"))]
    fn new(
        blob: &Bound<'_, Blob>,
        batch: Option<usize>,
        lr: Option<f32>,
        trainable: Option<&Bound<'_, PyAny>>,
        mode: &str,
    ) -> PyResult<Learner> {
        let blob = blob.get().clone();
        let b = blob.shared.blob();
        let mut opts = Options::from_blob(b);
        if let Some(batch) = batch {
            opts.batch = batch;
        }
        if let Some(lr) = lr {
            opts.lr = lr;
        }
        opts.trainable = trainable_mask(b, trainable)?;
        let mode = parse_mode(mode)?;
        let inner =
            OwnedLearner::with_mode(&blob.shared, opts, mode).map_err(|e| rt(&blob.origin, e))?;
        Ok(Learner { inner, blob, mode })
    }

    /// The blob this learner was made from (not its adapted parameters: see `export()`).
    #[getter]
    fn blob(&self) -> Blob {
        self.blob.clone()
    }

    /// Most samples per step (one SGD minibatch).
    #[getter]
    fn batch(&self) -> usize {
        self.inner.options().batch
    }

    /// Learning rate of `adapt` (and of `step` without its own).
    #[getter]
    fn lr(&self) -> f32 {
        self.inner.options().lr
    }

    #[setter]
    fn set_lr(&mut self, lr: f32) -> PyResult<()> {
        self.inner.set_lr(lr).map_err(|e| rt("lr", e))
    }

    /// The adapting layers as a bit mask (bit i: layer i).
    #[getter]
    fn trainable(&self) -> anole::LayerMask {
        self.inner.options().trainable
    }

    /// "buffered" or "device".
    #[getter]
    fn mode(&self) -> &'static str {
        match self.mode {
            Mode::Buffered => "buffered",
            Mode::Device => "device",
        }
    }

    /// f32 values of this learner's arena.
    #[getter]
    fn arena_len(&self) -> usize {
        self.inner.plan().arena_len()
    }

    /// Steps taken since the last reset (Adam's bias correction counts them).
    #[getter]
    fn steps_taken(&self) -> u32 {
        self.inner.steps_taken()
    }

    /// Adapt on support samples `x` (n × input) and `y` (n × output, or n class labels) for
    /// `steps` steps (default: the blob's), exactly as `anole adapt` and the firmware do. A
    /// learner that has taken no step since its parameters were set (created, `reset`,
    /// `params = ...`, `init_prototypes`) first starts its head as the blob says
    /// (`start_head`); later calls continue. Releases the GIL. On divergence raises
    /// `DivergedError`, keeping the last good step.
    #[pyo3(signature = (x, y, steps=None))]
    fn adapt(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        steps: Option<u32>,
    ) -> PyResult<AdaptReport> {
        let (xs, ys) = self.xy(x, y)?;
        let steps = steps.unwrap_or(self.inner.blob().settings().steps);
        let (il, tl) = (self.input_len(), self.target_len());
        let inner = &mut self.inner;
        let r = py
            .detach(|| {
                let s = SliceSamples::new(&xs.values, &ys.values, il, tl)?;
                inner.start_and_adapt(&s, steps)
            })
            .map_err(|e| rt("adapt", e))?;
        Ok(AdaptReport {
            steps: r.steps,
            first_loss: r.first_loss,
            last_loss: r.last_loss,
        })
    }

    /// One optimizer step on one minibatch (at most `batch` rows) at `lr` (default: the
    /// learner's); returns the loss before the update.
    #[pyo3(signature = (x, y, lr=None))]
    fn step(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
        lr: Option<f32>,
    ) -> PyResult<f32> {
        let (xs, ys) = self.xy(x, y)?;
        let lr = lr.unwrap_or(self.inner.options().lr);
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(rt(
                "step",
                anole::Error::BadSettings {
                    what: "learning rate must be finite and >= 0",
                },
            ));
        }
        let inner = &mut self.inner;
        py.detach(|| inner.step(&xs.values, &ys.values, lr))
            .map_err(|e| rt("step", e))
    }

    /// Outputs for `x` (n × input): an (n, outputs) float32 array. Releases the GIL.
    fn predict<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let xs = self.x(x, "x")?;
        finite("x", &xs, self.input_len())?;
        let out_len = self.inner.blob().output_len();
        let mut out = vec![0.0f32; xs.n * out_len];
        let inner = &mut self.inner;
        py.detach(|| inner.predict(&xs.values, &mut out))
            .map_err(|e| rt("predict", e))?;
        let a = PyArray1::from_vec(py, out);
        a.reshape([xs.n, out_len])
    }

    /// Predicted class (argmax of the outputs) of every row of `x`: an int64 array.
    fn classify<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let xs = self.x(x, "x")?;
        let il = self.input_len();
        finite("x", &xs, il)?;
        let inner = &mut self.inner;
        let classes = py
            .detach(|| {
                xs.values
                    .chunks_exact(il)
                    .map(|row| inner.classify(row).map(|c| c as i64))
                    .collect::<anole::Result<Vec<i64>>>()
            })
            .map_err(|e| rt("classify", e))?;
        Ok(PyArray1::from_vec(py, classes))
    }

    /// Mean loss over the samples, with stored normalisation statistics (no update).
    fn loss(
        &mut self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        y: &Bound<'_, PyAny>,
    ) -> PyResult<f32> {
        let (xs, ys) = self.xy(x, y)?;
        let (il, tl) = (self.input_len(), self.target_len());
        let inner = &mut self.inner;
        py.detach(|| {
            let s = SliceSamples::new(&xs.values, &ys.values, il, tl)?;
            inner.loss(&s)
        })
        .map_err(|e| rt("loss", e))
    }

    /// Forward and backward on one minibatch without updating: `(loss, gradient)`, the
    /// gradient in parameter order (zeros for frozen layers). Needs mode "buffered".
    fn gradient<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<(f32, Bound<'py, PyArray1<f32>>)> {
        let (xs, ys) = self.xy(x, y)?;
        let mut g = vec![0.0f32; self.inner.params().len()];
        let inner = &mut self.inner;
        let loss = py
            .detach(|| {
                let l = inner.gradient(&xs.values, &ys.values)?;
                inner.gradient_into(&mut g)?;
                Ok(l)
            })
            .map_err(|e| rt("gradient", e))?;
        Ok((loss, PyArray1::from_vec(py, g)))
    }

    /// The parameters in the arena, in blob tensor order (a copy). Setting them (same length)
    /// clears the optimizer state.
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_slice(py, self.inner.params())
    }

    #[setter(params)]
    fn set_params(&mut self, p: &Bound<'_, PyAny>) -> PyResult<()> {
        let n = self.inner.params().len();
        let r = rows("params", p, 1, &[1], false)?;
        if r.n != n {
            return Err(rt(
                "params",
                anole::Error::ParamCount {
                    expected: n,
                    found: r.n,
                },
            ));
        }
        self.inner.set_params(&r.values).map_err(|e| match e {
            // The caller's values, not a blob's weights.
            anole::Error::NonFiniteWeight { .. } => Python::attach(|py| {
                raise(
                    py,
                    "NonFiniteError",
                    format!("params: {e}"),
                    Some(&kind(&e)),
                )
            }),
            e => rt("params", e),
        })
    }

    /// The optimizer's state: `(steps taken, per-parameter state)` (Adam's second moments;
    /// empty under SGD). Carry it to another learner with `set_optimizer_state`.
    #[getter]
    fn optimizer_state<'py>(&self, py: Python<'py>) -> (u32, Bound<'py, PyArray1<f32>>) {
        let (steps, s) = self.inner.optimizer_state();
        (steps, PyArray1::from_slice(py, s))
    }

    /// Restore a state `optimizer_state` returned (same blob and options).
    fn set_optimizer_state(&mut self, steps: u32, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = rows("state", state, 1, &[1], false)?;
        self.inner
            .set_optimizer_state(steps, &r.values)
            .map_err(|e| rt("optimizer state", e))
    }

    /// Load the optimizer state of an optimizer-state blob (`init.adam.postcard`).
    fn load_optimizer_state(&mut self, state: &Bound<'_, Blob>) -> PyResult<()> {
        let s = state.get();
        self.inner
            .load_optimizer_state_from(s.shared.blob())
            .map_err(|e| rt(&s.origin, e))
    }

    /// The optimizer state as an optimizer-state blob (bytes).
    fn export_optimizer_state<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.export_optimizer_state_vec())
    }

    /// Start the classifier head (the first layer, dense) from class prototypes of feature
    /// vectors `x` and integer `labels`; then `adapt` fine-tunes it.
    fn init_prototypes(&mut self, x: &Bound<'_, PyAny>, labels: &Bound<'_, PyAny>) -> PyResult<()> {
        let (xs, ys) = self.xy(x, labels)?;
        let s = SliceSamples::new(&xs.values, &ys.values, self.input_len(), self.target_len())
            .map_err(|e| rt("init_prototypes", e))?;
        self.inner
            .init_prototypes(&s)
            .map_err(|e| rt("init_prototypes", e))
    }

    /// Where the blob says adaptation starts the head: "meta" (its own parameters) or
    /// "prototypes" (the class prototypes of the support set).
    #[getter]
    fn head_start(&self) -> &'static str {
        self.inner.head_start().name()
    }

    /// The factor on the logits of a head started from class prototypes (row c 2·s·μ_c, bias
    /// −s·‖μ_c‖²): the blob's `settings["head_scale"]` unless set; a finite number > 0. Setting
    /// it changes the next prototype start, not the head already started.
    #[getter]
    fn head_scale(&self) -> f32 {
        self.inner.head_scale()
    }

    #[setter]
    fn set_head_scale(&mut self, scale: f32) -> PyResult<()> {
        self.inner
            .set_head_scale(scale)
            .map_err(|e| rt("head_scale", e))
    }

    /// Start the head as the blob says on support samples `x` and integer `labels`: under
    /// "prototypes" the last layer becomes the nearest-prototype classifier of their features
    /// (optimizer state cleared), under "meta" nothing changes. `adapt` does it itself on a
    /// learner that has taken no step; call it before a loop of `step`s.
    fn start_head(&mut self, x: &Bound<'_, PyAny>, labels: &Bound<'_, PyAny>) -> PyResult<()> {
        let (xs, ys) = self.xy(x, labels)?;
        let s = SliceSamples::new(&xs.values, &ys.values, self.input_len(), self.target_len())
            .map_err(|e| rt("start_head", e))?;
        self.inner.start_head(&s).map_err(|e| rt("start_head", e))
    }

    /// The current (adapted) parameters as blob bytes, with the source blob's architecture,
    /// dtypes, settings and provenance (what `anole adapt --out` writes).
    fn export<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.export_vec())
    }

    /// Values in an update delta: the parameters of the layers this learner adapts.
    #[getter]
    fn delta_coordinates(&self) -> usize {
        anole::delta::coordinates(self.inner.blob(), self.inner.plan())
    }

    /// The update a device sends home: the adapting layers' current minus initial (the blob's)
    /// parameters, as binary16, every coordinate or the `top_k` of largest magnitude, with the
    /// fleet's `round` and the round blob's `fingerprint` in its header. Read it with `Delta`.
    #[pyo3(signature = (round, fingerprint, top_k=None))]
    fn delta<'py>(
        &self,
        py: Python<'py>,
        round: u32,
        fingerprint: u64,
        top_k: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (blob, plan) = (self.inner.blob(), self.inner.plan());
        let n = anole::delta::coordinates(blob, plan);
        let mut out = vec![0u8; anole::delta::encoded_len(n, top_k)];
        let header = anole::delta::Header { round, fingerprint };
        let bytes = anole::delta::write(blob, plan, self.inner.params(), header, top_k, &mut out)
            .map_err(|e| delta_err("delta", e))?;
        Ok(PyBytes::new(py, bytes))
    }

    /// Add `scale * delta` (float32, `delta_coordinates` long, in the order of `Delta.to_dense`)
    /// to the adapting layers' parameters; clears the optimizer state. A server's step
    /// `phi <- phi + eps * mean(delta)`; a non-finite result is refused and changes nothing.
    #[pyo3(signature = (delta, scale=1.0))]
    fn apply_delta(&mut self, delta: &Bound<'_, PyAny>, scale: f32) -> PyResult<()> {
        let d = rows("delta", delta, 1, &[1], false)?;
        let (blob, plan) = (self.inner.blob(), self.inner.plan());
        let mut params = self.inner.params().to_vec();
        anole::delta::apply(blob, plan, &mut params, &d.values, scale)
            .map_err(|e| delta_err("apply_delta", e))?;
        self.inner
            .set_params(&params)
            .map_err(|e| rt("apply_delta", e))
    }

    /// Back to the blob's parameters; clears the optimizer state.
    fn reset(&mut self) {
        self.inner.reset();
    }

    /// An independent copy (same parameters and optimizer state, the same shared blob).
    fn clone(&self) -> Learner {
        Clone::clone(self)
    }

    fn __copy__(&self) -> Learner {
        Clone::clone(self)
    }

    fn __repr__(&self) -> String {
        format!(
            "<anole.Learner of {}: batch {}, lr {}, trainable {:#b}, mode {}, {} steps taken>",
            self.blob.origin,
            self.batch(),
            self.lr(),
            self.trainable(),
            self.mode(),
            self.steps_taken()
        )
    }
}

/// A delta error as a Python exception: `DeltaError` for the format, `NonFiniteError`,
/// `ShapeError`, `SettingsError` or `BufferError` for what it says, the runtime's class for a
/// runtime error.
fn delta_err(context: &str, e: anole::delta::DeltaError) -> PyErr {
    use anole::delta::DeltaError as D;
    let class = match e {
        D::Runtime(r) => return rt(context, r),
        D::NonFinite { .. } => "NonFiniteError",
        D::Coordinates { .. } => "ShapeError",
        D::ZeroTopK | D::BufferTooSmall { .. } | D::TooLarge => "SettingsError",
        _ => "DeltaError",
    };
    let debug = format!("{e:?}");
    let kind = debug
        .split([' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string();
    Python::attach(|py| raise(py, class, format!("{context}: {e}"), Some(&kind)))
}

/// An update delta read back and checked (`Learner.delta` writes one): the round and model
/// fingerprint it answers, and its binary16 values.
#[pyclass(module = "anole", name = "Delta", frozen)]
struct Delta {
    bytes: Vec<u8>,
    header: anole::delta::Header,
    coordinates: usize,
    entries: usize,
    sparse: bool,
}

#[pymethods]
impl Delta {
    /// Read delta bytes, checking magic, version, lengths, CRC, indices and finiteness.
    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Delta> {
        let d = anole::delta::Delta::parse(data).map_err(|e| delta_err("delta", e))?;
        Ok(Delta {
            header: d.header,
            coordinates: d.coordinates,
            entries: d.entries(),
            sparse: d.is_sparse(),
            bytes: data.to_vec(),
        })
    }

    /// The fleet round it answers.
    #[getter]
    fn round(&self) -> u32 {
        self.header.round
    }

    /// Fingerprint of the blob it was adapted from (`Blob.fingerprint`).
    #[getter]
    fn fingerprint(&self) -> u64 {
        self.header.fingerprint
    }

    /// Values of the dense delta (the adapting layers' parameter count).
    #[getter]
    fn coordinates(&self) -> usize {
        self.coordinates
    }

    /// Values stored (`coordinates` unless top-k sparse).
    #[getter]
    fn entries(&self) -> usize {
        self.entries
    }

    /// Whether only the top-k coordinates are stored.
    #[getter]
    fn sparse(&self) -> bool {
        self.sparse
    }

    /// The delta as float32, `coordinates` long (zeros where a sparse delta stores none).
    fn to_dense<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let mut out = vec![0.0; self.coordinates];
        anole::delta::Delta::parse(&self.bytes)
            .and_then(|d| d.to_dense(&mut out))
            .map_err(|e| delta_err("delta", e))?;
        Ok(PyArray1::from_vec(py, out))
    }

    /// The delta's bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.bytes)
    }

    /// Bytes of the delta (what a device sends).
    fn __len__(&self) -> usize {
        self.bytes.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "<anole.Delta round {}, model {:#018x}: {} of {} coordinates, {} bytes>",
            self.header.round,
            self.header.fingerprint,
            self.entries,
            self.coordinates,
            self.bytes.len()
        )
    }
}

/// Bytes of an update delta of `coordinates` values: dense, or keeping the `top_k` largest
/// (the dense size when that is not larger).
#[pyfunction]
#[pyo3(signature = (coordinates, top_k=None))]
fn delta_size(coordinates: usize, top_k: Option<usize>) -> usize {
    anole::delta::encoded_len(coordinates, top_k)
}

/// Convert an ONNX model (a path or bytes) into a blob. Settings override the file's `anole.*`
/// metadata: lr, steps, batch, loss ("mse", "xent"), adapt ("all", "head"), dtype ("f32",
/// "f16", "bf16").
#[pyfunction]
#[pyo3(signature = (model, *, lr=None, steps=None, batch=None, loss=None, adapt=None, dtype=None))]
#[allow(clippy::too_many_arguments)]
fn import_onnx(
    py: Python<'_>,
    model: &Bound<'_, PyAny>,
    lr: Option<f32>,
    steps: Option<u32>,
    batch: Option<u32>,
    loss: Option<&str>,
    adapt: Option<&str>,
    dtype: Option<&str>,
) -> PyResult<Blob> {
    fn choice<T: ValueEnum>(name: &str, v: Option<&str>) -> PyResult<Option<T>> {
        v.map(|s| {
            T::from_str(s, true).map_err(|_| {
                let names: Vec<String> = T::value_variants()
                    .iter()
                    .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
                    .collect();
                err(
                    "SettingsError",
                    format!("{name}={s:?}: expected one of {}", names.join(", ")),
                )
            })
        })
        .transpose()
    }
    let (bytes, origin) = path_or_bytes(model, "ONNX model")?;
    let opts = ImportOptions {
        lr,
        steps,
        batch,
        loss: choice::<LossArg>("loss", loss)?,
        adapt: choice::<AdaptArg>("adapt", adapt)?,
        dtype: choice::<DTypeArg>("dtype", dtype)?,
    };
    let blob = py
        .detach(|| {
            let imported = import::parse_onnx(&bytes)?;
            import::to_blob(&imported, &opts)
        })
        .map_err(|e| tr("OnnxError", e.context(origin.clone())))?;
    Blob::parse(blob, format!("{origin} (imported)"))
}

/// The 32-byte ed25519 public key of a 32-byte secret key.
#[pyfunction]
fn public_key<'py>(py: Python<'py>, secret: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let key = signing_key(secret)?;
    Ok(PyBytes::new(py, &key.verifying_key().to_bytes()))
}

fn signing_key(secret: &[u8]) -> PyResult<ed25519_dalek::SigningKey> {
    let s: [u8; 32] = secret.try_into().map_err(|_| {
        err(
            "SignatureError",
            format!("secret key: expected 32 bytes, found {}", secret.len()),
        )
    })?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&s))
}

/// Wrap a blob (a `Blob` or its bytes) in an envelope signed with the 32-byte secret key,
/// exactly as `anole sign` does; returns the envelope's bytes.
#[pyfunction]
fn sign<'py>(
    py: Python<'py>,
    blob: &Bound<'py, PyAny>,
    secret_key: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = match blob.cast::<Blob>() {
        Ok(b) => b.get().shared.bytes().to_vec(),
        Err(_) => path_or_bytes(blob, "blob")?.0,
    };
    let key = signing_key(secret_key)?;
    let signed = anole_trainer::signing::sign_blob(&bytes, &key)
        .map_err(|e| tr("SignatureError", e.context("sign")))?;
    Ok(PyBytes::new(py, &signed))
}

/// Check a signed envelope (bytes or a path) against a 32-byte public key, as a device does,
/// and return the blob inside.
#[pyfunction]
fn verify(envelope: &Bound<'_, PyAny>, public_key: &[u8]) -> PyResult<Blob> {
    let (bytes, origin) = path_or_bytes(envelope, "signed blob")?;
    verify_bytes(&bytes, public_key, origin)
}

/// Meta-train on a built-in task family (`family`: "sine", "omniglot", ...) in this process,
/// as `anole train FAMILY --out OUT --key value ...` does; keyword options are the command's
/// flags (`inner_steps=5` is `--inner-steps 5`, `True` a bare flag). Returns the trained
/// `init.postcard`. Releases the GIL.
#[pyfunction]
#[pyo3(signature = (family, out, **options))]
fn train(
    py: Python<'_>,
    family: &str,
    out: PathBuf,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Blob> {
    let mut argv: Vec<String> = vec![
        "anole".into(),
        "train".into(),
        family.into(),
        "--out".into(),
        out.display().to_string(),
    ];
    if let Some(options) = options {
        for (k, v) in options.iter() {
            let flag = format!("--{}", k.extract::<String>()?.replace('_', "-"));
            if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
                if b.is_true() {
                    argv.push(flag);
                }
            } else if let Ok(list) = v.cast::<pyo3::types::PyList>() {
                argv.push(flag);
                for item in list.iter() {
                    argv.push(item.str()?.to_string());
                }
            } else {
                argv.push(flag);
                argv.push(v.str()?.to_string());
            }
        }
    }
    use anole_trainer::cli::{Cli, Command};
    use clap::Parser;
    let cli = Cli::try_parse_from(&argv)
        .map_err(|e| err("TrainError", e.render().to_string().trim().to_string()))?;
    let Command::Train(args) = cli.command else {
        return Err(err("TrainError", "internal: not a train command"));
    };
    py.detach(|| anole_trainer::cmd::train::run(args))
        .map_err(|e| tr("TrainError", e))?;
    Blob::load(out.join("init.postcard"), None)
}

/// Seconds per call of `reset()` then `adapt(x, y, steps)` on `learner`, looped `reps` times in
/// Rust: what the same calls cost without Python, for `python/bench/adapt_overhead.py`.
#[pyfunction]
fn _time_adapt(
    py: Python<'_>,
    learner: &mut Learner,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    steps: u32,
    reps: u32,
) -> PyResult<f64> {
    let (xs, ys) = learner.xy(x, y)?;
    let (il, tl) = (learner.input_len(), learner.target_len());
    let inner = &mut learner.inner;
    py.detach(|| {
        let s = SliceSamples::new(&xs.values, &ys.values, il, tl)?;
        let t = std::time::Instant::now();
        for _ in 0..reps {
            inner.reset();
            inner.adapt(&s, steps)?;
        }
        Ok(t.elapsed().as_secs_f64() / f64::from(reps.max(1)))
    })
    .map_err(|e| rt("adapt", e))
}

/// The extension module.
#[pymodule]
fn _anole(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Blob>()?;
    m.add_class::<Learner>()?;
    m.add_class::<AdaptReport>()?;
    m.add_class::<Delta>()?;
    m.add_function(wrap_pyfunction!(delta_size, m)?)?;
    m.add_function(wrap_pyfunction!(import_onnx, m)?)?;
    m.add_function(wrap_pyfunction!(sign, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(public_key, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(_time_adapt, m)?)?;
    Ok(())
}
