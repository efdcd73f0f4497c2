//! # masq-onnx
//!
//! ONNX in both directions, in one place:
//! - [`import`]: ONNX file -> masq IR, in visible phases (decode -> build with a registry of
//!   builders, one file per op family, folding shape arithmetic -> infer shapes -> fold ->
//!   validate). A model with unknown ops fails with one error listing every such node.
//! - [`export`]: masq IR -> ONNX with standard ops only, so onnxruntime and any ONNX tool run it;
//!   a masked activation becomes `Where(mask, Relu(x), g(x))` carrying an [`annotation`] from
//!   which [`import`] rebuilds the exact `MaskedAct` node.
//! - Quantization both ways in the QDQ format ([`qdq`]): `FakeQuant` <-> QuantizeLinear ->
//!   DequantizeLinear, quantized weights <-> integer initializers with a DequantizeLinear.
//!
//! ```
//! let g = masq_ir::zoo::build("mnist_cnn", None, 0).unwrap();
//! let model = masq_onnx::export::encode(&g, 17, "").unwrap();
//! let bytes = prost::Message::encode_to_vec(&model);
//! let back = masq_onnx::import_bytes(&bytes, "mnist.onnx".as_ref()).unwrap();
//! assert_eq!(back.nodes.len(), g.nodes.len());
//! ```
//!
//! Errors are [`masq_ir::IrError`]s naming the file, node and op.

pub mod annotation;
pub(crate) mod builders;
pub(crate) mod ctx;
pub mod export;
pub mod external;
pub(crate) mod fold;
pub mod import;
pub mod proto;
pub mod qdq;
pub mod tensor;

pub use annotation::MaskedActAnnotation;
pub use import::{OPSETS, import_bytes, import_bytes_with, import_file, import_keeping};
