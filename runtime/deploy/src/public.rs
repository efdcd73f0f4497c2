//! The public part of a model: what the client may know and needs to plan the same computation.
//!
//! The structure (nodes, configs, input/output shapes), the masks of masked activations, and every
//! constant the protocols use in the clear (polynomial coefficients, standalone BatchNorms,
//! element-wise constants) are public, as the secure executor's threat model says. The weights
//! and biases of linear layers (Conv, Gemm, MatMul) are secret: only their shapes are encoded,
//! and the client plans with zeros in their place (P1's share of a weight is zero anyway).
//!
//! The encoding is bincode 2 (standard configuration: little-endian, variable-length integers)
//! of one derived struct, hashed with SHA-256:
//!
//! ```text
//! magic "MASQPUB\0" (8 bytes), version,
//! structure: the JSON of the graph structure (serde field order, no maps),
//! initializers in name order: name, shape, values (None for a secret one),
//! masks in name order: name, shape, values (u8).
//! ```
//!
//! It is canonical: [`PublicModel::of`] is a function of the public part only, and
//! [`PublicModel::decode`] accepts exactly the bytes [`PublicModel::of`] gives for the graph they
//! decode to, so equal hashes mean equal public models.
//!
//! Decoding runs under a bincode limit derived from the length `n` of the blob: the smallest
//! power of two (at least 1 KiB) not below `8n` (`masq_mpc::transport::decode_bounded`). bincode counts what a value takes in memory
//! (a length takes one byte on the wire and eight in memory; no field here takes more per byte),
//! so a genuine blob always fits, and a forged length fails before anything is reserved for it
//! beyond that limit: at most `16n` bytes, whatever it announces. Secret tensors, sent as shapes
//! only, are allocated as zeros: at most [`MAX_SECRET_ELEMENTS`] in all.

use std::collections::BTreeSet;

use bincode::de::Decoder;
use bincode::error::DecodeError;
use bincode::{Decode, Encode};
use ndarray::{ArrayD, IxDyn};

use crate::{DeployError, Result};
use masq_ir::{Graph, Op};

const MAGIC: [u8; 8] = *b"MASQPUB\0";
/// Version of the encoding (1 was a hand-written codec).
const VERSION: u32 = 2;
/// Largest tensor rank accepted when decoding.
const MAX_RANK: usize = 8;
/// Most elements of all secret tensors together: they are not sent (only their shapes), but the
/// client allocates them as zeros.
pub const MAX_SECRET_ELEMENTS: usize = 1 << 28;

/// A model's public part, encoded, and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicModel {
    /// The canonical encoding.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub hash: [u8; 32],
}

pub use masq_ir::atomic::sha256;

/// The encoded form.
#[derive(Debug, PartialEq, Encode, Decode)]
struct Wire {
    magic: [u8; 8],
    version: u32,
    /// JSON of the graph without its tensors.
    structure: Vec<u8>,
    initializers: List<Tensor>,
    masks: List<Mask>,
}

#[derive(Debug, PartialEq, Encode, Decode)]
struct Tensor {
    name: String,
    shape: Vec<u64>,
    /// Row-major values; `None` for a secret tensor.
    values: Option<Vec<f32>>,
}

#[derive(Debug, PartialEq, Encode, Decode)]
struct Mask {
    name: String,
    shape: Vec<u64>,
    values: Vec<u8>,
}

/// A sequence encoded as a `Vec<T>` is (length, then the items) whose decoding claims one byte
/// of the limit per announced item (each takes at least one) instead of `size_of::<T>()`, and
/// grows as items arrive: a forged count reserves nothing, and a true one is never refused
/// because a `T` (a name, a shape and a vector: 72 bytes) is larger in memory than on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct List<T>(Vec<T>);

impl<T: Encode> Encode for List<T> {
    fn encode<E: bincode::enc::Encoder>(&self, e: &mut E) -> std::result::Result<(), bincode::error::EncodeError> {
        self.0.encode(e)
    }
}

impl<C, T: Decode<C>> Decode<C> for List<T> {
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> std::result::Result<Self, DecodeError> {
        let len = u64::decode(d)?;
        let len = usize::try_from(len).map_err(|_| DecodeError::OutsideUsizeRange(len))?;
        d.claim_bytes_read(len)?;
        let mut items = Vec::new();
        for _ in 0..len {
            d.unclaim_bytes_read(1);
            items.push(T::decode(d)?);
        }
        Ok(List(items))
    }
}
impl<'de, C, T: Decode<C>> bincode::BorrowDecode<'de, C> for List<T> {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        d: &mut D,
    ) -> std::result::Result<Self, DecodeError> {
        Self::decode(d)
    }
}

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

fn shape_of(dims: &[usize]) -> Vec<u64> {
    dims.iter().map(|&d| d as u64).collect()
}

impl PublicModel {
    /// The public part of `graph` (give the graph that runs: after BatchNorm folding).
    pub fn of(graph: &Graph) -> Result<PublicModel> {
        let secret = secret_initializers(graph);
        let structure = serde_json::to_vec(graph)
            .map_err(|e| DeployError::BadPublicModel { reason: format!("encoding the structure: {e}") })?;
        let initializers = graph
            .initializers
            .iter()
            .map(|(name, t)| Tensor {
                name: name.clone(),
                shape: shape_of(t.shape()),
                values: (!secret.contains(name)).then(|| t.iter().copied().collect()),
            })
            .collect();
        let masks = graph
            .masks
            .iter()
            .map(|(name, m)| Mask {
                name: name.clone(),
                shape: shape_of(m.shape()),
                values: m.iter().copied().collect(),
            })
            .collect();
        let wire =
            Wire { magic: MAGIC, version: VERSION, structure, initializers: List(initializers), masks: List(masks) };
        let bytes =
            bincode::encode_to_vec(&wire, bincode::config::standard()).map_err(|e| bad(&format!("encoding: {e}")))?;
        let hash = sha256(&bytes);
        Ok(PublicModel { bytes, hash })
    }

    /// Decodes a public model into a graph whose secret tensors are zeros of the right shapes.
    /// Only the canonical encoding of a valid graph is accepted (see the module documentation).
    pub fn decode(bytes: &[u8]) -> Result<Graph> {
        // The fixed-size prefix first, for a clear error on a blob of another kind or version.
        let prefix = bincode::decode_from_slice::<([u8; 8], u32), _>(bytes, bincode::config::standard());
        match prefix {
            Ok(((magic, _), _)) if magic != MAGIC => return Err(bad("not a masq public model (bad magic)")),
            Ok(((_, version), _)) if version != VERSION => {
                return Err(bad(&format!("version {version}, this build reads {VERSION}")));
            }
            Ok(_) => {}
            Err(e) => return Err(bad(&e.to_string())),
        }
        let wire: Wire = masq_mpc::transport::decode_bounded(bytes).map_err(|e| bad(&e))?;
        let mut graph: Graph =
            serde_json::from_slice(&wire.structure).map_err(|e| bad(&format!("structure does not parse: {e}")))?;
        let mut secret_elements = 0usize;
        for Tensor { name, shape, values } in wire.initializers.0 {
            let shape = dims(&name, &shape)?;
            let t = match values {
                Some(v) => ArrayD::from_shape_vec(IxDyn(&shape), v),
                None => {
                    secret_elements = secret_elements.saturating_add(elements(&shape)?);
                    if secret_elements > MAX_SECRET_ELEMENTS {
                        return Err(bad(&format!(
                            "initializer {name}: more than {MAX_SECRET_ELEMENTS} secret elements in all"
                        )));
                    }
                    Ok(ArrayD::zeros(IxDyn(&shape)))
                }
            }
            .map_err(|e| bad(&format!("initializer {name}: {e}")))?;
            if graph.initializers.insert(name.clone(), t).is_some() {
                return Err(bad(&format!("initializer {name} twice")));
            }
        }
        for Mask { name, shape, values } in wire.masks.0 {
            let m = ArrayD::from_shape_vec(IxDyn(&dims(&name, &shape)?), values)
                .map_err(|e| bad(&format!("mask {name}: {e}")))?;
            if graph.masks.insert(name.clone(), m).is_some() {
                return Err(bad(&format!("mask {name} twice")));
            }
        }
        graph.validate().map_err(|e| bad(&format!("graph does not validate: {e}")))?;
        // Order, secret flags, integer and JSON spellings: anything but the canonical form is
        // refused, so that the hash of the bytes is the hash of the model.
        if PublicModel::of(&graph)?.bytes != bytes {
            return Err(bad("not the canonical encoding of the model it describes"));
        }
        Ok(graph)
    }
}

fn bad(reason: &str) -> DeployError {
    DeployError::BadPublicModel { reason: reason.to_string() }
}

fn elements(shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad("tensor size overflows"))
}

fn dims(name: &str, shape: &[u64]) -> Result<Vec<usize>> {
    if shape.len() > MAX_RANK {
        return Err(bad(&format!("{name}: rank {}", shape.len())));
    }
    let dims = shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(&format!("{name}: dimension {d} too large"))))
        .collect::<Result<Vec<_>>>()?;
    elements(&dims)?;
    Ok(dims)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use masq_ir::zoo;
    use masq_runtime::secure::{SecureConfig, plan};

    #[test]
    fn weights_are_hidden_and_the_plan_is_the_same() {
        let g = zoo::build("mnist_cnn", None, 1).unwrap();
        let p = plan(&g, 1, &SecureConfig::default()).unwrap();
        let public = PublicModel::of(&p.graph).unwrap();
        assert_eq!(public.hash, sha256(&public.bytes));
        let back = PublicModel::decode(&public.bytes).unwrap();
        let secret = secret_initializers(&p.graph);
        assert!(!secret.is_empty());
        for name in &secret {
            assert!(back.initializers[name].iter().all(|v| *v == 0.0), "{name}");
            assert!(p.graph.initializers[name].iter().any(|v| *v != 0.0), "{name}");
            assert_eq!(back.initializers[name].shape(), p.graph.initializers[name].shape(), "{name}");
        }
        for (name, t) in &p.graph.initializers {
            if !secret.contains(name) {
                assert_eq!(&back.initializers[name], t, "{name}");
            }
        }
        assert_eq!(back.masks, p.graph.masks);
        // No secret value is in the encoding.
        for name in &secret {
            let w = &p.graph.initializers[name];
            let probe: Vec<u8> = w.iter().take(4).flat_map(|v| v.to_le_bytes()).collect();
            assert!(!public.bytes.windows(probe.len()).any(|b| b == probe), "{name}");
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
    fn every_zoo_model_round_trips_canonically() {
        for (name, _) in zoo::MODELS {
            let g = zoo::build(name, None, 3).unwrap();
            let public = PublicModel::of(&g).unwrap();
            let back = PublicModel::decode(&public.bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(PublicModel::of(&back).unwrap(), public, "{name}");
        }
    }

    #[test]
    fn corrupt_and_non_canonical_encodings_are_errors() {
        let g = zoo::build("mnist_cnn", None, 1).unwrap();
        let public = PublicModel::of(&g).unwrap();
        let b = &public.bytes;
        for cut in [0, 7, 8, 9, 12, 20, b.len() / 2, b.len() - 1] {
            assert!(matches!(PublicModel::decode(&b[..cut]), Err(DeployError::BadPublicModel { .. })), "cut {cut}");
        }
        let mut longer = b.clone();
        longer.push(0);
        let e = PublicModel::decode(&longer).unwrap_err().to_string();
        assert!(e.contains("trailing"), "{e}");
        let mut magic = b.clone();
        magic[0] = b'X';
        assert!(PublicModel::decode(&magic).unwrap_err().to_string().contains("magic"));
        let mut version = b.clone();
        version[8] = 1;
        assert!(PublicModel::decode(&version).unwrap_err().to_string().contains("version 1"));
        // The same model with its initializers out of name order decodes, but is not canonical.
        let mut wire: Wire = masq_mpc::transport::decode_bounded(b).unwrap();
        wire.initializers.0.reverse();
        let shuffled = bincode::encode_to_vec(&wire, bincode::config::standard()).unwrap();
        let e = PublicModel::decode(&shuffled).unwrap_err().to_string();
        assert!(e.contains("canonical"), "{e}");
        // A secret weight sent in the clear is not the canonical form either.
        let mut wire: Wire = masq_mpc::transport::decode_bounded(b).unwrap();
        let t = wire.initializers.0.iter_mut().find(|t| t.values.is_none()).unwrap();
        let n = t.shape.iter().product::<u64>() as usize;
        t.values = Some(vec![0.0; n]);
        let leaky = bincode::encode_to_vec(&wire, bincode::config::standard()).unwrap();
        assert!(PublicModel::decode(&leaky).unwrap_err().to_string().contains("canonical"));
    }

    fn enc<T: Encode>(v: T) -> Vec<u8> {
        bincode::encode_to_vec(v, bincode::config::standard()).unwrap()
    }

    /// `b` with the length field (a varint) at `at` replaced by `len`.
    fn splice(b: &[u8], at: usize, len: u64) -> Vec<u8> {
        let width = match b[at] {
            0..=250 => 1,
            251 => 3,
            252 => 5,
            _ => 9,
        };
        [&b[..at], &enc(len)[..], &b[at + width..]].concat()
    }

    #[test]
    fn forged_huge_lengths_fail_fast() {
        let start = Instant::now();
        // A model with public tensors (its BatchNorms, unfolded).
        let g = zoo::build("cnn_small", None, 1).unwrap();
        let b = PublicModel::of(&g).unwrap().bytes;
        let wire: Wire = masq_mpc::transport::decode_bounded(&b).unwrap();
        // Where the length fields are: the structure's, the initializer count, and in the first
        // public tensor its name's, its shape's and its values'.
        let structure = 8 + enc(VERSION).len();
        let count = structure + enc(&wire.structure).len();
        let (i, t) = wire.initializers.0.iter().enumerate().find(|(_, t)| t.values.is_some()).unwrap();
        let name = count
            + enc(wire.initializers.0.len() as u64).len()
            + wire.initializers.0[..i].iter().map(|t| enc(t).len()).sum::<usize>();
        let shape = name + enc(&t.name).len();
        let values = shape + enc(&t.shape).len() + 1;
        for at in [structure, count, name, shape, values] {
            // Control: the field is where it should be, and the true length gives back `b`.
            let (len, _): (u64, _) = bincode::decode_from_slice(&b[at..], bincode::config::standard()).unwrap();
            assert!(len > 0, "{at}");
            assert_eq!(splice(&b, at, len), b);
            for huge in [u64::MAX, 1 << 62, 1 << 40, 16 * b.len() as u64] {
                let e = PublicModel::decode(&splice(&b, at, huge)).unwrap_err();
                let msg = e.to_string();
                assert!(
                    matches!(e, DeployError::BadPublicModel { .. }) && msg.contains("announces more than"),
                    "{at} {huge}: {msg}"
                );
            }
        }
        let mut wire: Wire = masq_mpc::transport::decode_bounded(&b).unwrap();
        let t = wire.initializers.0.iter_mut().find(|t| t.values.is_none()).unwrap();
        // A secret tensor too large to allocate as zeros: its shape is all that is sent.
        t.shape = vec![1 << 20, 1 << 20];
        let big = enc(&wire);
        assert!(PublicModel::decode(&big).unwrap_err().to_string().contains("secret elements"));
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    }
}
