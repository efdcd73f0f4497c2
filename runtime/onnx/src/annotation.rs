//! The annotations through which masq-only facts survive the trip through ONNX: the
//! masked-activation annotation (how a `MaskedAct` node does), the grid of a quantized weight
//! ([`weight_grid_doc_string`]) and the range of a `FakeQuant` narrower than its integer type
//! ([`fake_quant_range_doc_string`]).
//!
//! The exporter writes a masked activation as `Where(mask, Relu(x), g(x))` (`Clip(x, 0, c)` for a
//! capped site) and puts this
//! annotation, as `{"masq.masked_act": {...}}`, into the `Where` node's `doc_string`; the importer
//! reads it back and rebuilds the one `MaskedAct` node under its IR names.

use serde::{Deserialize, Serialize};

/// The `doc_string` key under which the annotation is stored.
pub const MASKED_ACT_KEY: &str = "masq.masked_act";

/// What the exporter writes into the `doc_string` of a masked activation's `Where` node (as
/// `{"masq.masked_act": {...}}`), so the importer rebuilds the `MaskedAct` node under its names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedActAnnotation {
    /// The IR node name of the masked activation.
    pub site: String,
    /// The IR name of its mask.
    pub mask: String,
    /// `"identity"` or `"poly"`.
    pub replacement: String,
    /// IR names of the `[C]` coefficients `c2, c1, c0` (poly only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coefficients: Option<[String; 3]>,
}

impl MaskedActAnnotation {
    pub fn to_doc_string(&self) -> String {
        let mut m = serde_json::Map::new();
        m.insert(MASKED_ACT_KEY.to_string(), serde_json::to_value(self).expect("plain struct serialises"));
        serde_json::Value::Object(m).to_string()
    }

    /// `None` when the doc string carries no annotation; an error when it carries a malformed one.
    pub fn from_doc_string(doc: &str) -> Option<std::result::Result<Self, String>> {
        let v: serde_json::Value = serde_json::from_str(doc).ok()?;
        let a = v.get(MASKED_ACT_KEY)?;
        Some(serde_json::from_value::<Self>(a.clone()).map_err(|e| e.to_string()).and_then(|a| {
            match (a.replacement.as_str(), &a.coefficients) {
                ("identity", None) | ("poly", Some(_)) => Ok(a),
                (r, _) => Err(format!("replacement {r:?} with coefficients {:?}", a.coefficients)),
            }
        }))
    }
}

/// The `doc_string` key of a quantized weight's grid.
pub const WEIGHT_GRID_KEY: &str = "masq.weight_grid";

/// What the exporter writes, as `{"masq.weight_grid": {...}}`, into the `doc_string` of a quantized
/// weight's DequantizeLinear node when the grid's range is narrower than its integer type's (a
/// 4-bit weight stored as INT8), or of the weight's f32 initializer when no integer type at the
/// opset holds the grid; the importer takes the exact grid from it for `Graph::weight_quant`.
pub fn weight_grid_doc_string(q: &masq_ir::QuantParams) -> String {
    let mut m = serde_json::Map::new();
    m.insert(WEIGHT_GRID_KEY.to_string(), serde_json::to_value(q).expect("plain struct serialises"));
    serde_json::Value::Object(m).to_string()
}

/// The grid a doc string carries: `None` when it carries none, an error when it is malformed.
pub fn weight_grid_from_doc_string(doc: &str) -> Option<std::result::Result<masq_ir::QuantParams, String>> {
    let v: serde_json::Value = serde_json::from_str(doc).ok()?;
    let a = v.get(WEIGHT_GRID_KEY)?;
    Some(serde_json::from_value::<masq_ir::QuantParams>(a.clone()).map_err(|e| e.to_string()).and_then(|q| {
        q.check()?;
        Ok(q)
    }))
}

/// The `doc_string` key of the Clip through which the exporter narrows a `FakeQuant`'s range.
pub const FAKE_QUANT_RANGE_KEY: &str = "masq.fake_quant_range";

/// What the exporter writes, as `{"masq.fake_quant_range": [qmin, qmax]}`, into the `doc_string`
/// of the Clip after a FakeQuant's DequantizeLinear when the range is narrower than the integer
/// type's. Only such a Clip is folded back into the FakeQuant: any other Clip stays a Clip (a
/// FakeQuant's range is no comparison of the secure lowering, a Clip is).
pub fn fake_quant_range_doc_string(qmin: i32, qmax: i32) -> String {
    serde_json::json!({ FAKE_QUANT_RANGE_KEY: [qmin, qmax] }).to_string()
}

/// The range a doc string carries: `None` when it carries none, an error when it is malformed.
pub fn fake_quant_range_from_doc_string(doc: &str) -> Option<std::result::Result<(i32, i32), String>> {
    let v: serde_json::Value = serde_json::from_str(doc).ok()?;
    let a = v.get(FAKE_QUANT_RANGE_KEY)?;
    Some(serde_json::from_value::<(i32, i32)>(a.clone()).map_err(|e| e.to_string()))
}
