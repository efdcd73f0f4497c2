//! The public part of a model: what the client may know and needs to plan the same computation.
//!
//! The structure (nodes, configs, input/output shapes), the masks of masked activations, and every
//! constant the protocols use in the clear (polynomial coefficients, standalone BatchNorms,
//! element-wise constants) are public, as the secure executor's threat model says. The weights
//! and biases of linear layers (Conv, Gemm, MatMul) are secret: only their shapes are encoded,
//! and the client plans with zeros in their place (P1's share of a weight is zero anyway).
//!
//! Canonical encoding (little-endian), hashed with SHA-256:
//!
//! ```text
//! magic "MASQPUB\0", version u32,
//! structure: len u64 + JSON of the graph structure (serde field order, no maps),
//! initializers (name order): count u64, then name (len u32 + UTF-8), secret u8, rank u8,
//!   rank × dim u64, and for public ones the f32 values,
//! masks (name order): count u64, then name, rank u8, rank × dim u64, the u8 values.
//! ```

use masq_mpc::bytes::ByteReader;
use std::collections::{BTreeMap, BTreeSet};

use ndarray::{ArrayD, IxDyn};

use crate::{DeployError, Result};
use masq_ir::{Graph, Op};

const MAGIC: &[u8; 8] = b"MASQPUB\0";
const VERSION: u32 = 1;
/// Largest tensor rank accepted when decoding.
const MAX_RANK: usize = 8;

/// A model's public part, encoded, and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicModel {
    /// The canonical encoding.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub hash: [u8; 32],
}

pub use masq_ir::atomic::sha256;

/// Names of the initializers that stay secret: weights and biases of linear layers, unless a
/// node also uses them as a public constant (then the protocols need them in the clear anyway).
pub fn secret_initializers(graph: &Graph) -> BTreeSet<String> {
    let mut secret = BTreeSet::new();
    let mut public = BTreeSet::new();
    for node in &graph.nodes {
        match &node.op {
            Op::Conv(c) => secret.extend(std::iter::once(c.weight.clone()).chain(c.bias.clone())),
            Op::Gemm(c) => secret.extend(std::iter::once(c.weight.clone()).chain(c.bias.clone())),
            _ => public.extend(node.op.param_names().into_iter().map(str::to_string)),
        }
        for (i, input) in node.inputs.iter().enumerate() {
            if matches!(node.op, Op::MatMul(_)) && i == 1 {
                secret.insert(input.clone());
            } else {
                public.insert(input.clone());
            }
        }
    }
    secret.retain(|n| graph.initializers.contains_key(n) && !public.contains(n));
    secret
}

impl PublicModel {
    /// The public part of `graph` (give the graph that runs: after BatchNorm folding).
    pub fn of(graph: &Graph) -> Result<PublicModel> {
        let secret = secret_initializers(graph);
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let structure = serde_json::to_vec(graph)
            .map_err(|e| DeployError::BadPublicModel { reason: format!("encoding the structure: {e}") })?;
        out.extend_from_slice(&(structure.len() as u64).to_le_bytes());
        out.extend_from_slice(&structure);
        out.extend_from_slice(&(graph.initializers.len() as u64).to_le_bytes());
        for (name, t) in &graph.initializers {
            put_name(&mut out, name);
            let is_secret = secret.contains(name);
            out.push(is_secret as u8);
            put_shape(&mut out, t.shape());
            if !is_secret {
                for v in t.iter() {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        out.extend_from_slice(&(graph.masks.len() as u64).to_le_bytes());
        for (name, m) in &graph.masks {
            put_name(&mut out, name);
            put_shape(&mut out, m.shape());
            out.extend(m.iter().copied());
        }
        let hash = sha256(&out);
        Ok(PublicModel { bytes: out, hash })
    }

    /// Decodes a public model into a graph whose secret tensors are zeros of the right shapes.
    /// Every length is checked against the bytes left before allocating.
    pub fn decode(bytes: &[u8]) -> Result<Graph> {
        let mut r = Reader(ByteReader::new(bytes, "reading the public model"));
        if r.take(8)? != MAGIC {
            return Err(bad("not a masq public model (bad magic)"));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(bad(&format!("version {version}, this build reads {VERSION}")));
        }
        let n = r.len(1)?;
        let mut graph: Graph =
            serde_json::from_slice(r.take(n)?).map_err(|e| bad(&format!("structure does not parse: {e}")))?;
        let count = r.len(10)?;
        let mut inits = BTreeMap::new();
        for _ in 0..count {
            let name = r.name()?;
            let secret = match r.u8()? {
                0 => false,
                1 => true,
                f => return Err(bad(&format!("initializer {name}: secret flag {f}"))),
            };
            let shape = r.shape()?;
            let len = elements(&shape)?;
            let t = if secret {
                // Zero elements cost nothing to check; a huge zero tensor is bounded below.
                if len > (1 << 31) {
                    return Err(bad(&format!("initializer {name}: {len} elements")));
                }
                ArrayD::zeros(IxDyn(&shape))
            } else {
                let raw = r.take(len.checked_mul(4).ok_or_else(|| bad("tensor size overflows"))?)?;
                let v = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| bad(&e.to_string()))?
            };
            inits.insert(name, t);
        }
        let count = r.len(10)?;
        let mut masks = BTreeMap::new();
        for _ in 0..count {
            let name = r.name()?;
            let shape = r.shape()?;
            let raw = r.take(elements(&shape)?)?;
            masks.insert(name, ArrayD::from_shape_vec(IxDyn(&shape), raw.to_vec()).map_err(|e| bad(&e.to_string()))?);
        }
        r.0.finish().map_err(decode_err)?;
        graph.initializers = inits;
        graph.masks = masks;
        graph.validate().map_err(|e| bad(&format!("graph does not validate: {e}")))?;
        Ok(graph)
    }
}

fn bad(reason: &str) -> DeployError {
    DeployError::BadPublicModel { reason: reason.to_string() }
}

fn elements(shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad("tensor size overflows"))
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
}

fn put_shape(out: &mut Vec<u8>, shape: &[usize]) {
    out.push(shape.len() as u8);
    for d in shape {
        out.extend_from_slice(&(*d as u64).to_le_bytes());
    }
}

/// A [`ByteReader`] whose errors are this module's.
struct Reader<'a>(ByteReader<'a>);

fn decode_err(e: masq_mpc::MpcError) -> DeployError {
    bad(&e.to_string())
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        self.0.take(n).map_err(decode_err)
    }

    fn u8(&mut self) -> Result<u8> {
        self.0.u8().map_err(decode_err)
    }

    fn u32(&mut self) -> Result<u32> {
        self.0.u32().map_err(decode_err)
    }

    fn u64(&mut self) -> Result<u64> {
        self.0.u64().map_err(decode_err)
    }

    /// A count whose items take at least `min_item` bytes each: bounded by the bytes left.
    fn len(&mut self, min_item: usize) -> Result<usize> {
        self.0.len(min_item).map_err(decode_err)
    }

    fn name(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| bad("a name is not UTF-8"))
    }

    fn shape(&mut self) -> Result<Vec<usize>> {
        let rank = self.u8()? as usize;
        if rank > MAX_RANK {
            return Err(bad(&format!("rank {rank}")));
        }
        (0..rank)
            .map(|_| {
                let d = self.u64()?;
                usize::try_from(d).map_err(|_| bad("dimension too large"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use masq_runtime::secure::{SecureConfig, plan};
    use masq_ir::zoo;

    #[test]
    fn weights_are_hidden_and_the_plan_is_the_same() {
        let g = zoo::build("mnist_cnn", None, 1).unwrap();
        let p = plan(&g, 1, &SecureConfig::default()).unwrap();
        let public = PublicModel::of(&p.graph).unwrap();
        let back = PublicModel::decode(&public.bytes).unwrap();
        let secret = secret_initializers(&p.graph);
        assert!(!secret.is_empty());
        for name in &secret {
            assert!(back.initializers[name].iter().all(|v| *v == 0.0), "{name}");
            assert!(p.graph.initializers[name].iter().any(|v| *v != 0.0), "{name}");
        }
        let q = plan(&back, 1, &SecureConfig::default()).unwrap();
        assert_eq!(p.requests, q.requests);
        assert_eq!(p.total(), q.total());
        // Re-encoding the decoded model gives the same bytes, so the same hash.
        assert_eq!(PublicModel::of(&q.graph).unwrap(), public);
        // A different weight leaves the hash alone; a different structure does not.
        let mut g2 = p.graph.clone();
        let w = secret.iter().next().unwrap().clone();
        g2.initializers.get_mut(&w).unwrap().mapv_inplace(|v| v + 1.0);
        assert_eq!(PublicModel::of(&g2).unwrap().hash, public.hash);
        let other = plan(&zoo::build("resnet20", None, 1).unwrap(), 1, &SecureConfig::default()).unwrap();
        assert_ne!(PublicModel::of(&other.graph).unwrap().hash, public.hash);
    }

    #[test]
    fn corrupt_encodings_are_errors() {
        let g = zoo::build("mnist_cnn", None, 1).unwrap();
        let public = PublicModel::of(&g).unwrap();
        for cut in [0, 7, 12, 20, public.bytes.len() - 1] {
            assert!(PublicModel::decode(&public.bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut huge = public.bytes.clone();
        huge[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(PublicModel::decode(&huge), Err(DeployError::BadPublicModel { .. })));
    }
}
