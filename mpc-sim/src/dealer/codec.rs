//! A binary encoding of preprocessing, so a dealer can hand each party a file.
//!
//! Layout (all integers little-endian): a stream of items, each `tag: u8` followed by its fields;
//! vectors are `len: u64` then `len` words; tensors are `rank: u8`, `rank × u64` dims, then words;
//! DCF key batches are `n: u32`, `len: u64`, then the keys as [`DcfKeyBatch::to_bytes`] writes them.
//! Decoding checks every length against the bytes actually left before allocating, so a corrupt
//! or hostile file cannot make the reader allocate more than the file holds.

use ndarray::{ArrayD, IxDyn};

use super::material::{CmpMaterial, Material, ModelMaterial, Preprocessing};
use super::request::{LinearKind, Request};
use crate::bytes::ByteReader;
use crate::dcf::{DcfKeyBatch, key_bytes};
use crate::error::{MpcError, Result};
use crate::share::Party;

const TAG_MUL: u8 = 1;
const TAG_SQUARE: u8 = 2;
const TAG_CMP: u8 = 3;
const TAG_MASKED: u8 = 4;
const TAG_LINEAR: u8 = 5;

/// Encodes one item.
pub fn encode_material(m: &Material, out: &mut Vec<u8>) {
    match m {
        Material::Mul { a, b, c } => {
            out.push(TAG_MUL);
            for v in [a, b, c] {
                put_vec(out, v);
            }
        }
        Material::Square { a, a2 } => {
            out.push(TAG_SQUARE);
            put_vec(out, a);
            put_vec(out, a2);
        }
        Material::Cmp(c) => {
            out.push(TAG_CMP);
            put_cmp(out, c);
        }
        Material::MaskedAct { cmp, a, a2 } => {
            out.push(TAG_MASKED);
            put_cmp(out, cmp);
            put_vec(out, a);
            put_vec(out, a2);
        }
        Material::Linear { layer, input_shape, b, c, eb: _ } => {
            // `eb` is the party's own offline product: recomputed after loading, never stored.
            out.push(TAG_LINEAR);
            out.extend_from_slice(&(*layer as u64).to_le_bytes());
            put_shape(out, input_shape);
            put_tensor(out, b);
            put_tensor(out, c);
        }
    }
}

/// Encodes a whole queue (without the party, which the caller's file header records).
pub fn encode_preprocessing(p: &Preprocessing) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&p.offline_bytes().to_le_bytes());
    out.extend_from_slice(&(p.remaining() as u64).to_le_bytes());
    for m in p.items() {
        encode_material(m, &mut out);
    }
    out
}

/// Decodes a queue written by [`encode_preprocessing`] for `party`.
pub fn decode_preprocessing(party: Party, bytes: &[u8]) -> Result<Preprocessing> {
    let mut r = Reader::new(bytes);
    let offline = r.u64()?;
    let count = r.u64()?;
    let mut items = std::collections::VecDeque::new();
    for _ in 0..count {
        items.push_back(r.material(party)?);
    }
    r.finish()?;
    Ok(Preprocessing::new(party, items, offline))
}

/// Encodes model-load material.
pub fn encode_model_material(m: &ModelMaterial) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&m.offline_bytes.to_le_bytes());
    out.extend_from_slice(&(m.layers.len() as u64).to_le_bytes());
    for (id, kind, a) in &m.layers {
        out.extend_from_slice(&(*id as u64).to_le_bytes());
        let k = bincode::encode_to_vec(kind, bincode::config::standard()).expect("in-memory encoding");
        out.extend_from_slice(&(k.len() as u64).to_le_bytes());
        out.extend_from_slice(&k);
        put_tensor(&mut out, a);
    }
    out
}

/// Decodes model-load material written by [`encode_model_material`] for `party`.
pub fn decode_model_material(party: Party, bytes: &[u8]) -> Result<ModelMaterial> {
    let mut r = Reader::new(bytes);
    let offline_bytes = r.u64()?;
    let count = r.u64()?;
    let mut layers = Vec::new();
    for _ in 0..count {
        let id = r.u64()? as usize;
        let len = r.len(1)?;
        let raw = r.take(len)?;
        let (kind, used): (LinearKind, usize) = bincode::decode_from_slice(raw, bincode::config::standard())
            .map_err(|e| r.bad(&format!("linear layer kind: {e}")))?;
        if used != len {
            return Err(r.bad("trailing bytes after a linear layer kind"));
        }
        let a = r.tensor()?;
        if a.shape() != kind.weight_shape().as_slice() {
            return Err(r.bad(&format!(
                "weight mask of layer {id} has shape {:?}, kind says {:?}",
                a.shape(),
                kind.weight_shape()
            )));
        }
        layers.push((id, kind, a));
    }
    r.finish()?;
    Ok(ModelMaterial { party, layers, offline_bytes })
}

fn put_vec(out: &mut Vec<u8>, v: &[u64]) {
    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
    out.extend_from_slice(&crate::transport::encode_u64s(v));
}

fn put_shape(out: &mut Vec<u8>, s: &[usize]) {
    out.push(s.len() as u8);
    for d in s {
        out.extend_from_slice(&(*d as u64).to_le_bytes());
    }
}

fn put_tensor(out: &mut Vec<u8>, t: &ArrayD<u64>) {
    put_shape(out, t.shape());
    let std = t.as_standard_layout();
    out.extend_from_slice(&crate::transport::encode_u64s(std.as_slice().expect("standard layout")));
}

fn put_cmp(out: &mut Vec<u8>, c: &CmpMaterial) {
    out.extend_from_slice(&c.bits.to_le_bytes());
    put_vec(out, &c.r);
    put_vec(out, &c.mr);
    put_vec(out, &c.mrr);
    out.extend_from_slice(&c.keys.n().to_le_bytes());
    out.extend_from_slice(&(c.keys.len() as u64).to_le_bytes());
    out.extend_from_slice(&c.keys.to_bytes());
}

/// The codec's reader: a [`ByteReader`] plus the item decoders.
struct Reader<'a>(ByteReader<'a>);

impl<'a> std::ops::Deref for Reader<'a> {
    type Target = ByteReader<'a>;
    fn deref(&self) -> &ByteReader<'a> {
        &self.0
    }
}

impl std::ops::DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader(ByteReader::new(buf, "reading preprocessing"))
    }

    fn bad(&self, reason: &str) -> MpcError {
        self.0.error(reason)
    }

    fn vec(&mut self) -> Result<Vec<u64>> {
        let n = self.len(8)?;
        crate::transport::decode_u64s(self.take(n * 8)?).ok_or_else(|| self.bad("word vector"))
    }

    fn shape(&mut self) -> Result<Vec<usize>> {
        let rank = self.u8()? as usize;
        let mut s = Vec::with_capacity(rank);
        for _ in 0..rank {
            s.push(self.u64()? as usize);
        }
        Ok(s)
    }

    fn tensor(&mut self) -> Result<ArrayD<u64>> {
        let shape = self.shape()?;
        let n =
            shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| self.bad("tensor size overflows"))?;
        if n.checked_mul(8).is_none_or(|b| b > self.remaining()) {
            return Err(self.bad(&format!("tensor of shape {shape:?} exceeds the bytes left")));
        }
        let words = crate::transport::decode_u64s(self.take(n * 8)?).ok_or_else(|| self.bad("tensor words"))?;
        Ok(ArrayD::from_shape_vec(IxDyn(&shape), words).expect("length checked"))
    }

    fn cmp(&mut self, party: Party) -> Result<CmpMaterial> {
        let bits = self.u32()?;
        super::check_bits(bits)?;
        let r = self.vec()?;
        let mr = self.vec()?;
        let mrr = self.vec()?;
        let n = self.u32()?;
        if n != bits - 1 {
            return Err(self.bad(&format!("dcf keys on {n} bits for {bits}-bit comparisons")));
        }
        let len = self.len(key_bytes(n))?;
        if len != r.len() || mr.len() != r.len() || mrr.len() != r.len() {
            return Err(self.bad("comparison material vectors of different lengths"));
        }
        let keys = DcfKeyBatch::from_bytes(party, n, len, self.take(len * key_bytes(n))?)?;
        Ok(CmpMaterial { bits, r, mr, mrr, keys })
    }

    fn material(&mut self, party: Party) -> Result<Material> {
        match self.u8()? {
            TAG_MUL => {
                let (a, b, c) = (self.vec()?, self.vec()?, self.vec()?);
                if a.len() != b.len() || b.len() != c.len() {
                    return Err(self.bad("triple vectors of different lengths"));
                }
                Ok(Material::Mul { a, b, c })
            }
            TAG_SQUARE => {
                let (a, a2) = (self.vec()?, self.vec()?);
                if a.len() != a2.len() {
                    return Err(self.bad("square pair vectors of different lengths"));
                }
                Ok(Material::Square { a, a2 })
            }
            TAG_CMP => Ok(Material::Cmp(self.cmp(party)?)),
            TAG_MASKED => {
                let cmp = self.cmp(party)?;
                let (a, a2) = (self.vec()?, self.vec()?);
                if a.len() != a2.len() {
                    return Err(self.bad("square pair vectors of different lengths"));
                }
                Ok(Material::MaskedAct { cmp, a, a2 })
            }
            TAG_LINEAR => {
                let layer = self.u64()? as usize;
                let input_shape = self.shape()?;
                let b = self.tensor()?;
                let c = self.tensor()?;
                if b.shape() != input_shape.as_slice() {
                    return Err(self.bad(&format!("input mask of shape {:?} for input {input_shape:?}", b.shape())));
                }
                Ok(Material::Linear { layer, input_shape, b, c, eb: None })
            }
            t => Err(self.bad(&format!("unknown item tag {t}"))),
        }
    }
}

/// The requests a queue answers, in order (for checking a file against a model's plan).
pub fn requests_of(p: &Preprocessing) -> Vec<Request> {
    p.items()
        .map(|m| match m {
            Material::Mul { a, .. } => Request::Mul { n: a.len() },
            Material::Square { a, .. } => Request::Square { n: a.len() },
            Material::Cmp(c) => Request::Cmp { n: c.len(), bits: c.bits },
            Material::MaskedAct { cmp, a, .. } => {
                Request::MaskedAct { relus: cmp.len(), squares: a.len(), bits: cmp.bits }
            }
            Material::Linear { layer, input_shape, .. } => {
                Request::Linear { layer: *layer, input_shape: input_shape.clone() }
            }
        })
        .collect()
}
