//! The masked-activation annotation: how a `MaskedAct` node survives the trip through ONNX.
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
