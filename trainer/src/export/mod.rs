//! Exporters and their inverse: ONNX out (any ONNX runtime) beside the anole blob, and ONNX in.

pub mod import;
pub mod onnx;
