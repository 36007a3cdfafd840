//! The model a user's task family starts from: `--arch` (layers in a short syntax, initialised
//! as every family's are) or `--init FILE` (the weights of an ONNX file `anole import` accepts,
//! or of a blob). Shared by the `csv` and `images` families.
//!
//! `--arch` syntax: layers separated by commas, each `NAME` or `NAME:ARG:ARG…`; the input width
//! comes from the data:
//!
//! | layer | meaning |
//! |---|---|
//! | `dense:N` | fully connected layer with N outputs |
//! | `tanh`, `relu` | activations |
//! | `conv:C` or `conv:C:K:S:P` | 2-D convolution with C output channels, kernel K, stride S, padding P (default 3:2:1) |
//! | `norm` | per-channel normalisation (ε = 0.001) |
//! | `maxpool:K` or `maxpool:K:S` | max pooling, kernel K, stride S (default K) |
//! | `flatten` | channels × height × width to a flat vector |

use crate::export::import;
use crate::files::sha256_hex;
use crate::model::{self, Arch};
use anole::layers::Window;
use anole::{Layer, LossKind, OwnedLearner, Shape};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

/// ε of the `norm` layer (the Omniglot CNN's).
const NORM_EPS: f32 = 1e-3;
/// Held-out share of a family's tasks or classes without `--eval-data`.
pub const HOLDOUT: f64 = 0.2;

/// The options of a family of the user's own data (`csv`, `images`): where the held-out tasks
/// come from, and the model meta-training starts from.
#[derive(clap::Args, Debug)]
pub struct OwnArgs {
    /// Held-out tasks (classes, for images) for the card's evaluation, laid out as --data
    /// [default: a seeded --holdout share of --data].
    #[arg(long)]
    pub eval_data: Option<PathBuf>,
    /// Share of the --data tasks (classes, for images) held out for the evaluation, drawn with
    /// --seed [0.2].
    #[arg(long)]
    pub holdout: Option<f64>,
    /// The network, in the short syntax below (the input shape comes from the data).
    #[arg(long, conflicts_with = "init")]
    pub arch: Option<String>,
    /// Meta-train from these weights: an ONNX file (.onnx, as `anole import` accepts) or a blob.
    #[arg(long)]
    pub init: Option<PathBuf>,
}

impl OwnArgs {
    /// Errors on flags that exclude each other.
    pub fn check(&self) -> Result<()> {
        if self.eval_data.is_some() && self.holdout.is_some() {
            bail!("--eval-data and --holdout both choose what is held out: give one");
        }
        Ok(())
    }

    /// The held-out share.
    pub fn holdout(&self) -> f64 {
        self.holdout.unwrap_or(HOLDOUT)
    }

    /// The flags, as the run's command line spells them: `--eval-data` or `--holdout`, then
    /// `--init` or `--arch` if given.
    pub fn flags(&self) -> String {
        let mut s = match &self.eval_data {
            Some(e) => format!(" --eval-data {}", e.display()),
            None => format!(" --holdout {}", self.holdout()),
        };
        match (&self.init, &self.arch) {
            (Some(i), _) => s.push_str(&format!(" --init {}", i.display())),
            (None, Some(a)) => s.push_str(&format!(" --arch {a}")),
            (None, None) => {}
        }
        s
    }

    /// Where the held-out tasks come from, for the card.
    pub fn held_out_from(&self, seed: u64) -> String {
        match &self.eval_data {
            Some(e) => e.display().to_string(),
            None => format!("--holdout {} of --data (seed {seed})", self.holdout()),
        }
    }

    /// How errors name the starting model.
    pub fn model_name(&self) -> String {
        match &self.init {
            Some(p) => format!("{}: the model", p.display()),
            None => "--arch: the network".to_string(),
        }
    }
}

/// Parse an `--arch` string for inputs of `input_shape`; errors name the layer at fault.
pub fn parse_arch(spec: &str, input_shape: &[u32]) -> Result<Arch> {
    let mut layers = Vec::new();
    let mut shape =
        Shape::from_dims(input_shape).ok_or_else(|| anyhow!("bad input shape {input_shape:?}"))?;
    for (i, item) in spec.split(',').enumerate() {
        let item = item.trim();
        let at = || format!("--arch: layer {} ('{item}')", i + 1);
        let mut parts = item.split(':');
        let name = parts.next().unwrap_or_default();
        let args: Vec<usize> = parts
            .map(|a| {
                a.trim()
                    .parse::<usize>()
                    .map_err(|_| anyhow!("{}: '{a}' is not a whole number", at()))
            })
            .collect::<Result<_>>()?;
        let arity = |allowed: &[usize]| -> Result<()> {
            if allowed.contains(&args.len()) {
                Ok(())
            } else {
                bail!(
                    "{}: takes {} argument(s) after the name",
                    at(),
                    allowed
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                )
            }
        };
        let channels = shape.channels_spatial().0;
        let layer = match name {
            "dense" => {
                arity(&[1])?;
                let inputs = match shape {
                    Shape::Flat(n) => n,
                    _ => bail!("{}: a dense layer needs a flat input (add 'flatten')", at()),
                };
                Layer::Dense {
                    inputs,
                    outputs: args[0],
                }
            }
            "tanh" => {
                arity(&[0])?;
                Layer::Tanh
            }
            "relu" => {
                arity(&[0])?;
                Layer::Relu
            }
            "flatten" => {
                arity(&[0])?;
                Layer::Flatten
            }
            "norm" => {
                arity(&[0])?;
                Layer::Norm {
                    channels,
                    eps: NORM_EPS,
                }
            }
            "conv" => {
                arity(&[1, 4])?;
                let window = match args[..] {
                    [_, kernel, stride, padding] => Window {
                        kernel,
                        stride,
                        padding,
                    },
                    _ => Window {
                        kernel: 3,
                        stride: 2,
                        padding: 1,
                    },
                };
                Layer::Conv2d {
                    in_channels: channels,
                    out_channels: args[0],
                    window,
                }
            }
            "maxpool" => {
                arity(&[1, 2])?;
                Layer::MaxPool2d {
                    window: Window {
                        kernel: args[0],
                        stride: args.get(1).copied().unwrap_or(args[0]),
                        padding: 0,
                    },
                }
            }
            "" => bail!("{}: empty layer", at()),
            other => bail!(
                "{}: unknown layer '{other}' (dense:N, tanh, relu, conv:C[:K:S:P], norm, maxpool:K[:S], flatten)",
                at()
            ),
        };
        // Every size but a convolution's padding.
        let sizes = if name == "conv" && args.len() == 4 {
            &args[..3]
        } else {
            &args[..]
        };
        if sizes.contains(&0) {
            bail!("{}: sizes must be at least 1", at());
        }
        shape = layer
            .output_shape(shape)
            .ok_or_else(|| anyhow!("{}: does not accept an input of shape {shape:?}", at()))?;
        layers.push(layer);
    }
    if !layers.iter().any(|l| l.tensor_count() > 0) {
        bail!("--arch: no layer with parameters");
    }
    let arch = Arch {
        input_shape: input_shape.to_vec(),
        layers,
    };
    arch.shapes()?;
    Ok(arch)
}

/// A model read with `--init`: its architecture, f32 parameters and loss (if the file says).
#[derive(Clone, Debug)]
pub struct Init {
    /// The file.
    pub path: PathBuf,
    /// Architecture.
    pub arch: Arch,
    /// Parameters in blob order.
    pub params: Vec<f32>,
    /// The loss a blob (or an ONNX file with anole metadata) records.
    pub loss: Option<LossKind>,
    /// `FILE (sha256 …)`: the card's record of where a run started.
    pub description: String,
}

impl Init {
    /// Read an ONNX file (`.onnx`, as `anole import` accepts) or a blob; errors name the file.
    pub fn read(path: &Path) -> Result<Init> {
        let p = path.display();
        let bytes = crate::files::read(path)?;
        let description = format!("{p} (sha256 {})", sha256_hex(&bytes));
        let onnx = path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("onnx"));
        if onnx {
            let imported = import::parse_onnx(&bytes).with_context(|| format!("{p}"))?;
            let loss = imported.meta.as_ref().map(|m| match m.settings.loss {
                0 => LossKind::Mse,
                _ => LossKind::CrossEntropy,
            });
            return Ok(Init {
                path: path.to_path_buf(),
                arch: imported.arch,
                params: imported.params,
                loss,
                description,
            });
        }
        let shared = model::shared(bytes).map_err(|e| {
            anyhow!("{p}: neither an ONNX file (.onnx) nor a valid anole blob: {e:#}")
        })?;
        let blob = shared.blob();
        let learner = OwnedLearner::new(&shared).with_context(|| format!("{p}"))?;
        Ok(Init {
            path: path.to_path_buf(),
            arch: Arch::of(blob),
            params: learner.params().to_vec(),
            loss: Some(blob.loss),
            description,
        })
    }

    /// Input width.
    pub fn input_len(&self) -> usize {
        self.arch.input_shape.iter().map(|&d| d as usize).product()
    }
}

/// The parameters a run of `seed` starts from: `init`'s, else `arch`'s initialisation from the
/// seed's own stream (as every family's).
pub fn params(arch: &Arch, init: Option<&[f32]>, seed: u64) -> Result<Vec<f32>> {
    match init {
        Some(p) => Ok(p.to_vec()),
        None => arch.init_params(&mut super::rng(seed, super::Stream::Init, 0)),
    }
}

/// Output width of `arch`.
pub fn output_len(arch: &Arch) -> Result<usize> {
    Ok(arch.shapes()?.last().map(|s| s.len()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_syntax() {
        let a = parse_arch("dense:64,tanh,dense:64,tanh,dense:1", &[1]).unwrap();
        assert_eq!(a, Arch::sine());
        let cnn = "conv:64,norm,relu,conv:64,norm,relu,conv:64,norm,relu,conv:64,norm,relu,flatten,dense:5";
        assert_eq!(
            parse_arch(cnn, &[1, 28, 28]).unwrap(),
            Arch::omniglot(5, 64)
        );
        let pooled = parse_arch("conv:4:3:1:1,relu,maxpool:2,flatten,dense:2", &[1, 8, 8]).unwrap();
        assert_eq!(output_len(&pooled).unwrap(), 2);
        for (bad, msg) in [
            ("dense:4,,dense:1", "layer 2 (''): empty layer"),
            ("dense:x", "'x' is not a whole number"),
            ("tanh:3", "layer 1 ('tanh:3'): takes 0 argument(s)"),
            ("tanh", "no layer with parameters"),
            (
                "conv:4",
                "layer 1 ('conv:4'): does not accept an input of shape",
            ),
        ] {
            let e = parse_arch(bad, &[2]).unwrap_err().to_string();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }
}
