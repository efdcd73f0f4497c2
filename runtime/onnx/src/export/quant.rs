//! Quantization in the writer, in the QDQ format onnxruntime's quantization tools write (and
//! recognise):
//!
//! - a `FakeQuant` node becomes `QuantizeLinear(x, scale, zero_point) -> DequantizeLinear(..., scale,
//!   zero_point)` with a scalar f32 scale and a scalar zero point of the type
//!   [`qdq::export_type`] picks (INT8 or UINT8; INT16 or UINT16 from opset 21). A range narrower
//!   than the type's (6-bit [−32, 31] in INT8) adds a `Clip` to `[(qmin − zp)·scale,
//!   (qmax − zp)·scale]`, exact because both bounds lie on the grid, whose `doc_string` holds the
//!   range ([`crate::annotation::fake_quant_range_doc_string`]; the importer folds only such a Clip
//!   back). The last node of the pattern carries the IR node's name and output.
//! - a weight listed in `Graph::weight_quant` becomes the integer initializer `<name>_quantized`
//!   (values `q.quantize(v)`), scalars `<name>_scale` and `<name>_zero_point`, and a
//!   `DequantizeLinear` whose output is `<name>`, so the consuming Conv/Gemm reads it unchanged.
//!   A grid no type holds at the opset (more than 8 bits before opset 21, INT16 and UINT16 being
//!   opset-21 types) is written as a plain f32 initializer instead: its values lie on the grid
//!   anyway. Wherever the grid is narrower than the integer type (or has none), it is kept in a
//!   `doc_string` annotation ([`crate::annotation::weight_grid_doc_string`]) for masq's importer.
//!   Biases stay f32.

use super::{Enc, f32_raw, f32_tensor};
use crate::annotation::{fake_quant_range_doc_string, weight_grid_doc_string};
use crate::qdq::{self, IntType};
use crate::tensor::encode_int;
use masq_ir::{IrError, Node, QuantParams};
use ndarray::ArrayD;

impl Enc<'_> {
    fn add_int_scalar(&mut self, base: &str, ty: IntType, v: i32) -> String {
        let name = self.fresh(base);
        self.inits.push(encode_int(&name, &[], ty.elem, &[v]));
        name
    }

    /// A `FakeQuant` node as QuantizeLinear -> DequantizeLinear (-> Clip).
    pub(super) fn fake_quant(&mut self, node: &Node, q: &QuantParams) -> Result<(), IrError> {
        q.check().map_err(|why| self.unsupported(node, why))?;
        let ty = qdq::export_type(q, self.opset).map_err(|why| self.unsupported(node, why))?;
        let (name, x, out) = (node.name.as_str(), node.inputs[0].clone(), node.outputs[0].clone());
        let scale = self.add_scalar(&format!("{name}.scale"), q.scale);
        let zero_point = self.add_int_scalar(&format!("{name}.zero_point"), ty, q.zero_point);
        let params = vec![scale, zero_point];
        let quantized = self.fresh(&format!("{name}/quantized"));
        let qnode = self.fresh(&format!("{name}/quantize"));
        self.node(&qnode, "QuantizeLinear", [vec![x], params.clone()].concat(), &quantized, vec![]);
        if ty.is_exact(q) {
            self.node(name, "DequantizeLinear", [vec![quantized], params].concat(), &out, vec![]);
            return Ok(());
        }
        let dequantized = self.fresh(&format!("{name}/dequantized"));
        let dqnode = self.fresh(&format!("{name}/dequantize"));
        self.node(&dqnode, "DequantizeLinear", [vec![quantized], params].concat(), &dequantized, vec![]);
        let lo = self.add_scalar(&format!("{name}.min"), q.dequantize(q.qmin));
        let hi = self.add_scalar(&format!("{name}.max"), q.dequantize(q.qmax));
        self.node(name, "Clip", vec![dequantized, lo, hi], &out, vec![]);
        if let Some(last) = self.nodes.last_mut() {
            last.doc_string = fake_quant_range_doc_string(q.qmin, q.qmax);
        }
        Ok(())
    }

    /// Initializer `name` on grid `q`: integers and a DequantizeLinear where a type holds the grid
    /// at the opset, else plain f32 with the grid annotated.
    pub(super) fn quantized_weight(&mut self, name: &str, t: &ArrayD<f32>, q: &QuantParams) {
        let ty = match q.check().map(|()| qdq::export_type(q, self.opset)) {
            Ok(Ok(ty)) => ty,
            // No integer type at this opset: f32, the grid annotated.
            Ok(Err(_)) => {
                let mut f = f32_tensor(name, t);
                f.doc_string = weight_grid_doc_string(q);
                self.inits.push(f);
                return;
            }
            // No valid grid (a graph that was not validated): the plain weight.
            Err(_) => {
                self.inits.push(f32_tensor(name, t));
                return;
            }
        };
        let dims: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
        let values: Vec<i32> = t.iter().map(|&v| q.quantize(v)).collect();
        let quantized = self.fresh(&format!("{name}_quantized"));
        self.inits.push(encode_int(&quantized, &dims, ty.elem, &values));
        let scale = self.fresh(&format!("{name}_scale"));
        self.inits.push(f32_raw(&scale, &[], std::iter::once(q.scale)));
        let zero_point = self.add_int_scalar(&format!("{name}_zero_point"), ty, q.zero_point);
        let dq = self.fresh(&format!("{name}_DequantizeLinear"));
        self.node(&dq, "DequantizeLinear", vec![quantized, scale, zero_point], name, vec![]);
        if !ty.is_exact(q)
            && let Some(last) = self.nodes.last_mut()
        {
            last.doc_string = weight_grid_doc_string(q);
        }
    }
}
