//! Exporters and their inverse: ONNX out (any ONNX runtime) beside the anole blob, ONNX in, and
//! the kept inner optimizer state as an optimizer-state blob.

pub mod import;
pub mod onnx;
pub mod optimizer_state;
