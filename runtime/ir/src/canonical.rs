//! Deterministic safetensors bytes. `safetensors::serialize` writes its `__metadata__` from a
//! `HashMap`, whose iteration order changes from one run to the next, so two writes of the same
//! tensors differ. [`canonical_header`] rewrites the JSON header with every object's keys sorted
//! (and the 8-byte padding the format uses); the tensor data, whose offsets are relative to the end
//! of the header, is kept as it is.

use serde_json::{Map, Value};

fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(k, sorted(v));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        v => v,
    }
}

/// The same safetensors file with its header's keys in sorted order. Bytes that are not a
/// safetensors file come back unchanged (the caller's reader reports them).
pub fn canonical_header(bytes: Vec<u8>) -> Vec<u8> {
    let Some(n) = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))) else { return bytes };
    let Some(end) = usize::try_from(n).ok().and_then(|n| n.checked_add(8)).filter(|&e| e <= bytes.len()) else {
        return bytes;
    };
    let Ok(header) = serde_json::from_slice::<Value>(&bytes[8..end]) else { return bytes };
    let Ok(mut text) = serde_json::to_vec(&sorted(header)) else { return bytes };
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - end);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;
    use std::collections::HashMap;

    #[test]
    fn headers_come_out_sorted_and_still_read() {
        let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let meta: HashMap<String, String> = (0..16).map(|i| (format!("k{i}"), i.to_string())).collect();
        let views = vec![
            ("b".to_string(), TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap()),
            ("a".to_string(), TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap()),
        ];
        let raw = safetensors::serialize(views, Some(meta)).unwrap();
        let c = canonical_header(raw.clone());
        assert_eq!(canonical_header(c.clone()), c);
        let st = safetensors::SafeTensors::deserialize(&c).unwrap();
        assert_eq!(st.tensor("a").unwrap().data(), data.as_slice());
        let (_, m) = safetensors::SafeTensors::read_metadata(&c).unwrap();
        assert_eq!(m.metadata().as_ref().unwrap().len(), 16);
        assert_eq!(canonical_header(b"junk".to_vec()), b"junk");
    }
}
