//! One party's half of one deal sent over a [`Transport`], request by request: how a dealer
//! service streams preprocessing to a party, and how the party reads it segment by segment while
//! the online phase runs (the network counterpart of [`super::section_reader`]).
//!
//! ```text
//!   frame 0        Start { party, origin (stream key, deal), model bytes, layers L, offline bytes, requests R }
//!   frames 1..=L   one model-load layer each (the party's share of a weight mask, codec `Layer`)
//!   then per request i in 0..R:
//!                  Item { len } then the item's explicit values (codec `Explicit`, seed-expanded)
//!                  in frames of at most CHUNK_BYTES
//! ```
//!
//! The dealer deals request `i` of the deal from its streams forked at `(deal, i)` (as
//! [`Dealer::deal`] does), keeps the requesting party's half and drops the other, so a sender
//! holds one request's material at a time and the receiver about one segment
//! ([`SectionPlan::budget`]) plus the transport's receive queue.
//!
//! **Untrusted input.** The receiver sizes nothing from the sender: the counts must equal its
//! plan's, every layer must be the plan's layer (id, kind and weight shape), and an item's
//! announced length must be at most what the plan allows for that request
//! ([`super::offline::bytes`] plus encoding overhead) before any of it is buffered; each item is
//! decoded under a bincode limit derived from its length, and expansion checks every explicit
//! vector against the plan ([`super::expand`]). Every error names the stream (`plan.name`), the
//! item and what was wrong.

use std::collections::VecDeque;
use std::fmt;

use bincode::{Decode, Encode};

use super::codec::{CONFIG, decode_limit, decode_model_material, encode_model_material, put};
use super::expand::{self, Explicit, Origin};
use super::material::{Material, ModelMaterial, Preprocessing};
use super::request::{LayerId, LinearKind, Request};
use super::section_reader::SectionPlan;
use super::stream::{Refill, resident_bytes};
use super::{Dealer, SEED_BYTES, offline};
use crate::error::{MpcError, Result};
use crate::party::Party;
use crate::transport::Transport;

/// Largest frame a sender uses for one item's bytes.
pub const CHUNK_BYTES: usize = 16 << 20;

/// Bytes an item's encoding may take beyond its [`offline::bytes`] (tags, length prefixes).
const ITEM_OVERHEAD_BYTES: u64 = 4096;

const DURING: &str = "receiving preprocessing from the dealer";

/// What precedes the deal's layers and items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
struct Start {
    /// 0 for P0, 1 for P1.
    party: u8,
    origin: Origin,
    /// Bytes a real dealer sends the party for the model load, and for the inference.
    model_offline_bytes: u64,
    layers: u64,
    offline_bytes: u64,
    requests: u64,
}

/// Precedes an item's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
struct ItemStart {
    len: u64,
}

fn encode<T: Encode>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, v);
    out
}

/// What [`send_deal`] sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Payload bytes of all frames.
    pub bytes: u64,
    /// Bytes a real dealer sends the party (model load and inference, seeds included).
    pub offline_bytes: u64,
}

impl Dealer {
    /// Sends `party`'s half of deal `deal` for `requests` over `t`: the start frame, `model` (the
    /// party's model-load material from [`Dealer::setup_model`] of this dealer) and each request's
    /// material in order. Only one request's material (both halves) is held at a time.
    pub fn send_deal<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        party: Party,
        model: &ModelMaterial,
        deal: u64,
        requests: &[Request],
    ) -> Result<Sent> {
        let mut offline_bytes = SEED_BYTES;
        for req in requests {
            let (b0, b1) = offline::bytes(req, &|id| self.linear_output_shape(id, req))?;
            offline_bytes += if party == Party::P0 { b0 } else { b1 };
        }
        let start = Start {
            party: party.index() as u8,
            origin: self.origin(party, deal),
            model_offline_bytes: model.offline_bytes,
            layers: model.layers.len() as u64,
            offline_bytes,
            requests: requests.len() as u64,
        };
        let mut sent = Sent { bytes: 0, offline_bytes: offline_bytes + model.offline_bytes };
        let mut frame = |t: &mut T, bytes: &[u8]| -> Result<()> {
            sent.bytes += bytes.len() as u64;
            t.send(bytes)
        };
        frame(t, &encode(&start))?;
        for (id, kind, a) in &model.layers {
            let one = ModelMaterial { party, layers: vec![(*id, kind.clone(), a.clone())], offline_bytes: 0 };
            frame(t, &encode_model_material(&one))?;
        }
        for (i, req) in requests.iter().enumerate() {
            let (m0, m1) = self.request_dealer(deal, i).material(req)?;
            let mine = if party == Party::P0 { m0 } else { m1 };
            let bytes = encode(&expand::explicit(party, &mine));
            drop(mine);
            frame(t, &encode(&ItemStart { len: bytes.len() as u64 }))?;
            for chunk in bytes.chunks(CHUNK_BYTES) {
                frame(t, chunk)?;
            }
        }
        t.flush()?;
        Ok(sent)
    }
}

/// Receives one party's half of a deal sent by [`Dealer::send_deal`]: checks the start frame and
/// the model-load layers against `plan` (its `layers` are the plan's linear layers), and returns
/// the model material, the first segment of the inference's material and a refill hook that
/// reads the rest from `t` as the online phase consumes it.
pub fn receive_deal<T: Transport + 'static>(
    mut t: T,
    plan: SectionPlan,
) -> Result<(ModelMaterial, Preprocessing, Box<dyn Refill>)> {
    let err = |reason: String| MpcError::Decode { during: DURING, reason: format!("{}: {reason}", plan.name) };
    let frame = t.recv()?;
    let start: Start = match bincode::decode_from_slice(&frame, CONFIG.with_limit::<4096>()) {
        Ok((s, used)) if used == frame.len() => s,
        Ok(_) => return Err(err("the start frame has trailing bytes".into())),
        Err(e) => return Err(err(format!("the start frame: {e}"))),
    };
    if start.party as usize != plan.party.index() {
        return Err(err(format!("material for party {}, this is P{}", start.party, plan.party.index())));
    }
    if start.layers != plan.layers.len() as u64 || start.requests != plan.requests.len() as u64 {
        return Err(err(format!(
            "{} layers and {} requests, the plan has {} and {}",
            start.layers,
            start.requests,
            plan.layers.len(),
            plan.requests.len()
        )));
    }
    let mut model = ModelMaterial { party: plan.party, layers: Vec::new(), offline_bytes: start.model_offline_bytes };
    for (j, (id, kind)) in plan.layers.iter().enumerate() {
        let frame = t.recv()?;
        let m = decode_model_material(plan.party, &frame).map_err(|e| err(format!("model layer {j}: {e}")))?;
        match m.layers.into_iter().next() {
            Some((got_id, got_kind, a)) if got_id == *id && got_kind == *kind && a.shape() == kind.weight_shape() => {
                model.layers.push((got_id, got_kind, a))
            }
            Some((got_id, ..)) => {
                return Err(err(format!(
                    "model layer {j} is layer {got_id}, not the plan's layer {id} of its kind and shape"
                )));
            }
            None => return Err(err(format!("model layer {j} is empty"))),
        }
    }
    let mut r = WireReader { t, plan, origin: start.origin, next: 0, offline_bytes: start.offline_bytes };
    let first = r.segment()?.unwrap_or_else(|| Preprocessing::new(r.plan.party, VecDeque::new(), start.offline_bytes));
    Ok((model, first, Box::new(r)))
}

struct WireReader<T> {
    t: T,
    plan: SectionPlan,
    origin: Origin,
    /// Index of the next request to read.
    next: usize,
    /// The start frame's offline bytes, given with the first segment.
    offline_bytes: u64,
}

impl<T> fmt::Debug for WireReader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WireReader({}, request {} of {})", self.plan.name, self.next, self.plan.requests.len())
    }
}

impl<T: Transport> WireReader<T> {
    fn error(&self, what: &str, reason: impl fmt::Display) -> MpcError {
        MpcError::Decode { during: DURING, reason: format!("{}: {what}: {reason}", self.plan.name) }
    }

    fn out_shape(layers: &[(LayerId, LinearKind)], layer: LayerId, input: &[usize]) -> Option<Vec<usize>> {
        layers.iter().find(|l| l.0 == layer).and_then(|l| l.1.output_shape(input).ok())
    }

    /// Reads, decodes and expands requests until the segment's resident bytes reach the budget.
    fn segment(&mut self) -> Result<Option<Preprocessing>> {
        if self.next == self.plan.requests.len() {
            return Ok(None);
        }
        let mut items = VecDeque::new();
        let mut held = 0u64;
        while self.next < self.plan.requests.len() && (items.is_empty() || held < self.plan.budget) {
            let (m, bytes) = self.item()?;
            held += bytes;
            items.push_back(m);
            self.next += 1;
        }
        Ok(Some(Preprocessing::new(self.plan.party, items, std::mem::take(&mut self.offline_bytes))))
    }

    /// Receives and expands request `self.next`; returns the material and its resident bytes.
    fn item(&mut self) -> Result<(Material, u64)> {
        let i = self.next;
        let req = self.plan.requests[i].clone();
        let what = format!("item {i} of {} ({})", self.plan.requests.len(), req.name());
        let layers = &self.plan.layers;
        let out = |layer: LayerId| match &req {
            Request::Linear { input_shape, .. } => Self::out_shape(layers, layer, input_shape),
            _ => None,
        };
        let (b0, b1) = offline::bytes(&req, &out).map_err(|e| self.error(&what, e))?;
        let allowed = if self.plan.party == Party::P0 { b0 } else { b1 }.saturating_add(ITEM_OVERHEAD_BYTES);
        let head = self.t.recv()?;
        let len = match bincode::decode_from_slice::<ItemStart, _>(&head, CONFIG.with_limit::<64>()) {
            Ok((s, used)) if used == head.len() => s.len,
            _ => return Err(self.error(&what, format!("expected its length ({} bytes), got {} bytes", 8, head.len()))),
        };
        if len > allowed {
            return Err(self.error(&what, format!("{len} bytes announced, the plan allows at most {allowed}")));
        }
        let mut buf = Vec::with_capacity(len as usize);
        while (buf.len() as u64) < len {
            let chunk = self.t.recv()?;
            if buf.len() as u64 + chunk.len() as u64 > len {
                return Err(self.error(&what, format!("more than the {len} bytes announced")));
            }
            buf.extend_from_slice(&chunk);
        }
        let mut rng = expand::request_stream(&self.origin.key, self.origin.deal, i);
        let out_shape = |layer: LayerId, input: &[usize]| Self::out_shape(layers, layer, input);
        let m = decode_explicit(&buf, |ex| expand::expand(self.plan.party, &req, &out_shape, &mut rng, ex))
            .map_err(|r| self.error(&what, r))?;
        let bytes = resident_bytes(&req, &out).unwrap_or(0);
        Ok((m, bytes))
    }
}

impl<T: Transport> Refill for WireReader<T> {
    fn refill(&mut self) -> Result<Option<Preprocessing>> {
        self.segment()
    }
}

/// Decodes one item's explicit values from `buf` (all of it) under a bincode limit derived from
/// its length and hands them to `f`.
fn decode_explicit<F>(buf: &[u8], f: F) -> std::result::Result<Material, String>
where
    F: FnOnce(Explicit<Vec<u64>, &[u8]>) -> std::result::Result<Material, String>,
{
    fn run<'b, const N: usize, F>(buf: &'b [u8], f: F) -> std::result::Result<Material, String>
    where
        F: FnOnce(Explicit<Vec<u64>, &'b [u8]>) -> std::result::Result<Material, String>,
    {
        match bincode::borrow_decode_from_slice::<Explicit<Vec<u64>, &[u8]>, _>(buf, CONFIG.with_limit::<N>()) {
            Ok((ex, used)) if used == buf.len() => f(ex),
            Ok((_, used)) => Err(format!("{} trailing bytes", buf.len() - used)),
            Err(e) => Err(e.to_string()),
        }
    }
    let Some(limit) = decode_limit(buf.len()) else {
        return Err(format!("an item of {} bytes is too long", buf.len()));
    };
    macro_rules! by_limit {
        ($($bits:literal)*; $($bits64:literal)*) => {
            match limit.trailing_zeros() {
                $($bits => run::<{ 1usize << $bits }, F>(buf, f),)*
                $(#[cfg(target_pointer_width = "64")]
                $bits64 => run::<{ 1usize << $bits64 }, F>(buf, f),)*
                bits => Err(format!("no decode limit of 2^{bits} bytes")),
            }
        };
    }
    by_limit!(12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31; 32 33 34 35 36 37 38 39 40)
}
