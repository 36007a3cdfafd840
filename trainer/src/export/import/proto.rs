//! Reading the protobuf side of an ONNX model: where a node sits (for errors), the graph input's
//! shape, tensor values (float and integer types, raw or typed storage) and typed attributes.

use anole::layers::MAX_DIM;
use anole::{DType, Shape};
use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType,
    tensor_shape_proto::dimension::Value as Dim, type_proto, AttributeProto, NodeProto,
    TensorProto, ValueInfoProto,
};

/// The model's constants (initializers and `Constant` nodes), by name.
pub(super) type Consts<'m> = HashMap<&'m str, &'m TensorProto>;

/// Where a node sits, for error messages: `node 3 'conv1' (Conv)`.
pub(super) fn at(i: usize, n: &NodeProto) -> String {
    if n.name.is_empty() {
        format!("node {i} ({})", n.op_type)
    } else {
        format!("node {i} '{}' ({})", n.name, n.op_type)
    }
}
/// A per-sample shape with its batch, for messages.
pub(super) fn shape_str(s: Shape) -> String {
    match s {
        Shape::Flat(n) => format!("[batch, {n}]"),
        Shape::Chw(c, h, w) => format!("[batch, {c}, {h}, {w}]"),
    }
}

/// Per-sample dims of the graph input (the batch dimension dropped).
pub(super) fn input_dims(v: &ValueInfoProto) -> Result<Vec<u32>> {
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
        bail!("input '{name}' has no shape; the importer needs [batch, n], [batch, c, l] or [batch, c, h, w]")
    };
    if !(2..=4).contains(&shape.dim.len()) {
        bail!(
            "input '{name}' has rank {}; the runtime takes [batch, n], [batch, c, l] or [batch, c, h, w]",
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

pub(super) fn elem_name(code: i32) -> &'static str {
    DataType::try_from(code)
        .map(|d| d.as_str_name())
        .unwrap_or("unknown")
}

/// Values of a float tensor (f32, f16, bf16 or f64), row-major.
pub(super) fn floats(t: &TensorProto) -> Result<Vec<f32>> {
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
pub(super) fn ints(t: &TensorProto) -> Result<Vec<i64>> {
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
pub(super) fn constant<'m>(consts: &Consts<'m>, x: &str, here: &str) -> Result<&'m TensorProto> {
    consts
        .get(x)
        .copied()
        .ok_or_else(|| anyhow!("{here}: input '{x}' is not a constant"))
}
/// Typed access to a node's attributes, with errors naming the node.
pub(super) struct Attrs<'a> {
    pub(super) here: &'a str,
    pub(super) node: &'a NodeProto,
}

impl Attrs<'_> {
    pub(super) fn get(&self, name: &str) -> Option<&AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }
    pub(super) fn int(&self, name: &str, default: i64) -> Result<i64> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.r#type == AttributeType::Int as i32 => Ok(a.i),
            Some(_) => bail!("{}: attribute {name} is not an integer", self.here),
        }
    }
    pub(super) fn float(&self, name: &str, default: f32) -> Result<f32> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if a.r#type == AttributeType::Float as i32 => Ok(a.f),
            Some(_) => bail!("{}: attribute {name} is not a float", self.here),
        }
    }
    pub(super) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == AttributeType::Ints as i32 => Ok(Some(a.ints.clone())),
            Some(_) => bail!("{}: attribute {name} is not a list of integers", self.here),
        }
    }
    pub(super) fn string(&self, name: &str) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == AttributeType::String as i32 => {
                Ok(Some(String::from_utf8_lossy(&a.s).into_owned()))
            }
            Some(_) => bail!("{}: attribute {name} is not a string", self.here),
        }
    }
    pub(super) fn expect_int(&self, name: &str, want: i64) -> Result<()> {
        let v = self.int(name, want)?;
        if v != want {
            bail!(
                "{}: {name} = {v} is not supported (the runtime needs {want})",
                self.here
            );
        }
        Ok(())
    }
    pub(super) fn expect_float(&self, name: &str, want: f32) -> Result<()> {
        let v = self.float(name, want)?;
        if v != want {
            bail!(
                "{}: {name} = {v} is not supported (the runtime needs {want})",
                self.here
            );
        }
        Ok(())
    }
}
