//! Constant folding of the small integer computations exporters write to make an operator's
//! constant input: PyTorch's TorchScript exporter builds the `pads` of `nn.ZeroPad2d` and
//! `F.pad` from a `ConstantOfShape`, `Concat`, `Reshape`, `Slice`, `Transpose` and `Cast`
//! of constants. A node of these kinds whose inputs are all integer constants is evaluated here
//! and its output becomes a constant like an initializer; the graph walk then skips it.

use super::proto::{at, ints};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{NodeProto, TensorProto};

/// The operators folded.
pub(super) const FOLDED: &[&str] = &[
    "ConstantOfShape",
    "Concat",
    "Reshape",
    "Slice",
    "Transpose",
    "Cast",
    "Unsqueeze",
    "Squeeze",
];

/// An integer tensor: dims and row-major values.
#[derive(Clone, Debug, PartialEq)]
struct Ints {
    dims: Vec<i64>,
    values: Vec<i64>,
}

impl Ints {
    fn of(t: &TensorProto) -> Result<Ints> {
        Ok(Ints {
            dims: t.dims.clone(),
            values: ints(t)?,
        })
    }

    fn proto(self, name: &str) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: self.dims,
            data_type: DataType::Int64 as i32,
            int64_data: self.values,
            ..Default::default()
        }
    }

    /// Row-major strides of the dims.
    fn strides(&self) -> Vec<usize> {
        let mut s = vec![1usize; self.dims.len()];
        for k in (0..self.dims.len().saturating_sub(1)).rev() {
            s[k] = s[k + 1] * self.dims[k + 1] as usize;
        }
        s
    }
}

/// The integer constants computed by foldable nodes of `nodes`, by output name: each node whose
/// kind is in [`FOLDED`] and whose inputs are integer constants (initializers, `Constant`
/// nodes, or outputs folded before it). `ints_of` finds the graph's own integer constants.
pub(super) fn fold(
    nodes: &[NodeProto],
    ints_of: impl Fn(&str) -> Option<TensorProto>,
) -> Result<HashMap<String, TensorProto>> {
    let mut folded: HashMap<String, TensorProto> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if !FOLDED.contains(&n.op_type.as_str()) || n.output.len() != 1 {
            continue;
        }
        let inputs: Option<Vec<Option<Ints>>> = n
            .input
            .iter()
            .map(|x| {
                if x.is_empty() {
                    return Some(None);
                }
                let t = folded.get(x).cloned().or_else(|| ints_of(x))?;
                Ints::of(&t).ok().map(Some)
            })
            .collect();
        let Some(inputs) = inputs else { continue };
        let here = at(i, n);
        let out = eval(n, &inputs).with_context(|| format!("{here}: folding a constant"))?;
        folded.insert(n.output[0].clone(), out.proto(&n.output[0]));
    }
    Ok(folded)
}

fn attr_int(n: &NodeProto, name: &str) -> Option<i64> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

/// An axis, negative from the end, within `rank`.
fn axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        bail!("axis out of range for rank {rank}")
    }
}

fn eval(n: &NodeProto, x: &[Option<Ints>]) -> Result<Ints> {
    let input = |k: usize| -> Result<&Ints> {
        x.get(k)
            .and_then(|v| v.as_ref())
            .ok_or_else(|| anyhow!("input {k} is missing"))
    };
    const MAX: i64 = 1 << 20;
    Ok(match n.op_type.as_str() {
        "ConstantOfShape" => {
            let dims = input(0)?.values.clone();
            let len = dims.iter().try_fold(1i64, |a, &d| {
                (0..=MAX).contains(&d).then(|| a * d).filter(|p| *p <= MAX)
            });
            let len = len.ok_or_else(|| anyhow!("shape {dims:?} is negative or too large"))?;
            let value = match n.attribute.iter().find(|a| a.name == "value") {
                None => 0,
                Some(a) => {
                    let t =
                        a.t.as_ref()
                            .ok_or_else(|| anyhow!("value is not a tensor"))?;
                    ints(t)?.first().copied().unwrap_or(0)
                }
            };
            Ints {
                dims,
                values: vec![value; len as usize],
            }
        }
        "Concat" => {
            let mut values = Vec::new();
            for v in x.iter().flatten() {
                if v.dims.len() != 1 {
                    bail!("only 1-D integer tensors are concatenated");
                }
                values.extend(&v.values);
            }
            Ints {
                dims: vec![values.len() as i64],
                values,
            }
        }
        "Reshape" => {
            let data = input(0)?;
            let mut dims = input(1)?.values.clone();
            for (k, d) in dims.iter_mut().enumerate() {
                if *d == 0 {
                    *d = *data
                        .dims
                        .get(k)
                        .ok_or_else(|| anyhow!("shape 0 past the rank"))?;
                }
            }
            let known: i64 = dims.iter().filter(|d| **d != -1).product();
            if let Some(d) = dims.iter_mut().find(|d| **d == -1) {
                *d = if known > 0 {
                    data.values.len() as i64 / known
                } else {
                    0
                };
            }
            if dims.iter().product::<i64>() != data.values.len() as i64 {
                bail!("shape {dims:?} does not hold {} values", data.values.len());
            }
            Ints {
                dims,
                values: data.values.clone(),
            }
        }
        "Transpose" => {
            let data = input(0)?;
            let rank = data.dims.len();
            let perm = attr_ints(n, "perm").unwrap_or_else(|| (0..rank as i64).rev().collect());
            let perm: Vec<usize> = perm.iter().map(|&p| axis(p, rank)).collect::<Result<_>>()?;
            let dims: Vec<i64> = perm.iter().map(|&p| data.dims[p]).collect();
            let out = Ints {
                dims: dims.clone(),
                values: Vec::new(),
            };
            let (src, dst) = (data.strides(), out.strides());
            let mut values = vec![0; data.values.len()];
            for (j, v) in values.iter_mut().enumerate() {
                let from: usize = perm
                    .iter()
                    .enumerate()
                    .map(|(k, &p)| (j / dst[k]) % dims[k] as usize * src[p])
                    .sum();
                *v = data.values[from];
            }
            Ints { dims, values }
        }
        "Slice" => {
            let data = input(0)?;
            let rank = data.dims.len();
            let (starts, ends) = (&input(1)?.values, &input(2)?.values);
            let axes: Vec<i64> = match x.get(3).and_then(|v| v.as_ref()) {
                Some(a) => a.values.clone(),
                None => (0..starts.len() as i64).collect(),
            };
            let steps: Vec<i64> = match x.get(4).and_then(|v| v.as_ref()) {
                Some(s) => s.values.clone(),
                None => vec![1; starts.len()],
            };
            // Per axis: the indices kept, clamped as ONNX clamps them.
            let mut keep: Vec<Vec<i64>> = data.dims.iter().map(|&d| (0..d).collect()).collect();
            for (k, &a) in axes.iter().enumerate() {
                let a = axis(a, rank)?;
                let (d, step) = (data.dims[a], steps[k]);
                if step == 0 {
                    bail!("slice step 0");
                }
                let clamp = |v: i64, lo: i64, hi: i64| {
                    let v = if v < 0 { v + d } else { v };
                    v.clamp(lo, hi)
                };
                let (mut s, e) = if step > 0 {
                    (clamp(starts[k], 0, d), clamp(ends[k], 0, d))
                } else {
                    (clamp(starts[k], 0, d - 1), clamp(ends[k], -1, d - 1))
                };
                let mut idx = Vec::new();
                while (step > 0 && s < e) || (step < 0 && s > e) {
                    idx.push(s);
                    s += step;
                }
                keep[a] = idx;
            }
            let dims: Vec<i64> = keep.iter().map(|k| k.len() as i64).collect();
            let src = data.strides();
            let total: usize = dims.iter().product::<i64>() as usize;
            let mut values = Vec::with_capacity(total);
            let mut pos = vec![0usize; rank];
            for _ in 0..total {
                let from: usize = (0..rank).map(|k| keep[k][pos[k]] as usize * src[k]).sum();
                values.push(data.values[from]);
                for k in (0..rank).rev() {
                    pos[k] += 1;
                    if pos[k] < keep[k].len() {
                        break;
                    }
                    pos[k] = 0;
                }
            }
            Ints { dims, values }
        }
        "Cast" => {
            let to = attr_int(n, "to").unwrap_or(0);
            if to != DataType::Int64 as i64 && to != DataType::Int32 as i64 {
                bail!("cast of an integer constant to type {to}");
            }
            input(0)?.clone()
        }
        "Unsqueeze" | "Squeeze" => {
            let data = input(0)?;
            let axes: Vec<i64> = match x.get(1).and_then(|v| v.as_ref()) {
                Some(a) => a.values.clone(),
                None => attr_ints(n, "axes").unwrap_or_default(),
            };
            let mut dims = data.dims.clone();
            if n.op_type == "Unsqueeze" {
                let rank = dims.len() + axes.len();
                let mut axes: Vec<usize> =
                    axes.iter().map(|&a| axis(a, rank)).collect::<Result<_>>()?;
                axes.sort();
                for a in axes {
                    dims.insert(a, 1);
                }
            } else if axes.is_empty() {
                dims.retain(|d| *d != 1);
            } else {
                let rank = dims.len();
                let mut axes: Vec<usize> =
                    axes.iter().map(|&a| axis(a, rank)).collect::<Result<_>>()?;
                axes.sort();
                for a in axes.into_iter().rev() {
                    if dims[a] != 1 {
                        bail!("squeezing axis {a} of size {}", dims[a]);
                    }
                    dims.remove(a);
                }
            }
            Ints {
                dims,
                values: data.values.clone(),
            }
        }
        op => bail!("{op} is not folded"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(dims: &[i64], values: &[i64]) -> Option<Ints> {
        Some(Ints {
            dims: dims.to_vec(),
            values: values.to_vec(),
        })
    }

    fn node(op: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_pads_of_zero_pad_2d_as_torchscript_writes_them() {
        // F.pad(x, (1, 1, 4, 5)) on a 4-D input: [1, 1, 4, 5] and four zeros, as [4, 2]
        // reversed along axis 0, transposed, flattened: [0, 0, 4, 1, 0, 0, 5, 1].
        let given = ints(&[4], &[1, 1, 4, 5]).unwrap();
        let zeros = eval(&node("ConstantOfShape"), &[ints(&[1], &[4])]).unwrap();
        let cat = eval(&node("Concat"), &[Some(given), Some(zeros)]).unwrap();
        let pairs = eval(&node("Reshape"), &[Some(cat), ints(&[2], &[-1, 2])]).unwrap();
        let rev = eval(
            &node("Slice"),
            &[
                Some(pairs),
                ints(&[1], &[-1]),
                ints(&[1], &[i64::MIN]),
                ints(&[1], &[0]),
                ints(&[1], &[-1]),
            ],
        )
        .unwrap();
        assert_eq!(rev.values, [0, 0, 0, 0, 4, 5, 1, 1]);
        let t = eval(&node("Transpose"), &[Some(rev)]).unwrap();
        let flat = eval(&node("Reshape"), &[Some(t), ints(&[1], &[-1])]).unwrap();
        assert_eq!(flat.values, [0, 0, 4, 1, 0, 0, 5, 1]);
    }
}
