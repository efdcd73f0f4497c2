//! Streaming preprocessing: one deal's material produced segment by segment while the online
//! phase runs, so only about one segment is resident at a time instead of the whole inference.
//!
//! The request list is cut into contiguous segments whose estimated resident size
//! ([`resident_bytes`]) fits a byte budget (at least one request each). Both parties consume
//! the same requests in the same order, so they run out of material at the same request index;
//! there, inside [`crate::protocols::Ctx`]'s `take`, each calls its [`Refill`] hook:
//!
//! ```text
//!   P0 (leader)                          P1
//!   queue empty ─▶ refill()              queue empty ─▶ refill()
//!      wait for P1 ◀──────────────────────── "waiting"
//!      deal segment k on two threads  │      (sleeps)
//!      (request i from streams at (deal, i))
//!      keep its half, hand over P1's ─────▶ takes its half
//!   precompute op(E,[B]) (new items)     precompute op(E,[B]) (new items)
//!   resume: wait for P1 ◀──────────────▶ resume: wait for P0
//!   online again                         online again
//! ```
//! The time spent in a refill (waiting, dealing, precomputing) is offline time: the context
//! records it ([`crate::protocols::Ctx::paused_seconds`]) and callers subtract it from online
//! timings. Material of request `i` comes from streams forked at `(deal, i)`, so a streamed deal
//! is bit-for-bit the material [`Dealer::deal`] gives for the same deal index, whatever the
//! budget. If a party stops (error or end), its hook is dropped and a peer waiting in a refill
//! gets [`MpcError::PeerDisconnected`] instead of hanging.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::{Dealer, LayerId, Preprocessing, Request, SEED_BYTES, offline};
use crate::error::{MpcError, Result};
use crate::party::Party;

/// A source of more preprocessing, called by a context whose queue ran empty.
pub trait Refill: Send + fmt::Debug {
    /// The next segment of this party's material, or `None` when the deal is exhausted.
    fn refill(&mut self) -> Result<Option<Preprocessing>>;

    /// Called after the party's precomputation on a refilled segment: waits for the peer's, so
    /// that neither party's online time includes waiting for the other's offline work.
    fn resume(&mut self) {}
}

/// One party's first segment and its hook for the rest.
pub type StreamStart = (Preprocessing, Box<dyn Refill>);

/// Estimated bytes both parties together hold in memory for `req`'s material (after the
/// parties' offline precomputation). `out_shape(layer)` is a linear layer's output shape for this
/// request. Comparisons: the DCF correction words are shared by the two parties' keys in this
/// process, so they count once (the larger party's dealer bytes, which include them and that
/// party's seeds and corrections), plus each party's mask share and two correlation vectors
/// (`48 n`). Linear: each party's `B` (input-shaped), `C` and `op(E, [B])` (output-shaped).
/// MatMul: each party's `A`, `B` and `C` (`16 (bmk + bkn + bmn)`).
pub fn resident_bytes(req: &Request, out_shape: &dyn Fn(LayerId) -> Option<Vec<usize>>) -> Result<u64> {
    Ok(match req {
        Request::Mul { n } => 48 * *n as u64,
        Request::Square { n } => 32 * *n as u64,
        Request::Cmp { n, .. } => {
            let (b0, b1) = offline::bytes(req, out_shape)?;
            b0.max(b1) + 48 * *n as u64
        }
        Request::MaskedAct { relus, squares, .. } => {
            let (b0, b1) = offline::bytes(req, out_shape)?;
            let squares = *squares as u64;
            b0.max(b1.saturating_sub(8 * squares)) + 48 * *relus as u64 + 32 * squares
        }
        Request::Linear { input_shape, .. } => {
            let (_, b1) = offline::bytes(req, out_shape)?;
            let out = b1 / 8;
            16 * (input_shape.iter().product::<usize>() as u64 + 2 * out)
        }
        Request::MatMul { batch, m, k, n } => {
            let (a, b, c) = super::matmul_sizes(*batch, *m, *k, *n)?;
            16 * (a as u64 + b as u64 + c as u64)
        }
    })
}

/// Cuts `sizes` (per request) into contiguous segments of at most `budget` bytes each (a larger
/// request gets a segment of its own). Always at least one segment (empty for no requests).
pub fn segment(sizes: &[u64], budget: u64) -> Vec<(Range<usize>, u64)> {
    let mut out: Vec<(Range<usize>, u64)> = Vec::new();
    let mut cur = (0..0, 0u64);
    for (i, &s) in sizes.iter().enumerate() {
        if !cur.0.is_empty() && cur.1.saturating_add(s) > budget {
            out.push(std::mem::replace(&mut cur, (i..i, 0)));
        }
        cur.0.end = i + 1;
        cur.1 = cur.1.saturating_add(s);
    }
    out.push(cur);
    out
}

/// What a stream has dealt so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StreamStats {
    /// Segments dealt.
    pub dealt: usize,
    /// Bytes a real dealer sent P0 and P1 (seeds included once).
    pub offline_bytes: (u64, u64),
    /// Wall seconds the dealer spent dealing.
    pub deal_seconds: f64,
}

#[derive(Debug, Default)]
struct State {
    /// Next segment to deal.
    next: usize,
    /// P1 is waiting in a refill.
    waiting: bool,
    /// P1's half of the segment P0 just dealt.
    handoff: Option<Preprocessing>,
    /// A party stopped (its hook was dropped) or dealing failed.
    closed: bool,
    /// Parties arrived at the resume barrier, and its generation.
    resumed: (usize, u64),
    stats: StreamStats,
}

#[derive(Debug)]
struct Shared {
    /// A view of the dealer (model masks and stream keys).
    dealer: Dealer,
    deal: u64,
    requests: Vec<Request>,
    segments: Vec<(Range<usize>, u64)>,
    state: Mutex<State>,
    cv: Condvar,
}

/// One deal, dealt on demand in budget-sized segments (see the module docs).
#[derive(Debug)]
pub struct Stream {
    shared: Arc<Shared>,
}

impl Dealer {
    /// Streams the material for `requests` as one deal (the next deal index), in segments of at
    /// most `budget` estimated resident bytes ([`resident_bytes`]). Call [`Stream::start`] next.
    pub fn stream(&mut self, requests: Vec<Request>, budget: u64) -> Result<Stream> {
        let sizes = requests
            .iter()
            .map(|r| resident_bytes(r, &|id| self.linear_output_shape(id, r)))
            .collect::<Result<Vec<_>>>()?;
        let deal = self.deals;
        self.deals += 1;
        let dealer = self.request_dealer(deal, 0);
        let segments = segment(&sizes, budget.max(1));
        let state = Mutex::new(State::default());
        Ok(Stream { shared: Arc::new(Shared { dealer, deal, requests, segments, state, cv: Condvar::new() }) })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cv.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    /// Deals segment `k` (on two threads) and records it.
    fn deal(&self, k: usize) -> Result<(Preprocessing, Preprocessing)> {
        let t = Instant::now();
        let range = self.segments[k].0.clone();
        let (q0, q1, mut b0, mut b1) = self.dealer.deal_items(self.deal, &self.requests[range.clone()], range.start)?;
        if k == 0 {
            b0 += SEED_BYTES;
            b1 += SEED_BYTES;
        }
        let mut s = self.lock();
        s.stats.dealt += 1;
        s.stats.offline_bytes.0 += b0;
        s.stats.offline_bytes.1 += b1;
        s.stats.deal_seconds += t.elapsed().as_secs_f64();
        Ok((Preprocessing::new(Party::P0, q0, b0), Preprocessing::new(Party::P1, q1, b1)))
    }
}

impl Stream {
    /// Number of segments.
    pub fn segments(&self) -> usize {
        self.shared.segments.len()
    }

    /// The largest segment's estimated resident bytes: the most material both parties hold at once.
    pub fn peak_resident_bytes(&self) -> u64 {
        self.shared.segments.iter().map(|s| s.1).max().unwrap_or(0)
    }

    /// Estimated resident bytes of the whole deal (what dealing it up front would hold).
    pub fn total_resident_bytes(&self) -> u64 {
        self.shared.segments.iter().map(|s| s.1).sum()
    }

    /// Deals the first segment here and returns each party's material and refill hook.
    /// Call once.
    pub fn start(&self) -> Result<(StreamStart, StreamStart)> {
        self.claim_start()?;
        let (p0, p1) = self.shared.deal(0)?;
        let hook = |party| -> Box<dyn Refill> { Box::new(Hook { shared: Arc::clone(&self.shared), party }) };
        Ok(((p0, hook(Party::P0)), (p1, hook(Party::P1))))
    }

    /// For one party replayed alone ([`crate::sim::run_solo_streamed`]): deals the first
    /// segment and returns `party`'s half with a hook that deals each later segment when asked,
    /// keeping `party`'s half and dropping the other. The material is the same as with
    /// [`Stream::start`]. Call once, instead of it.
    pub fn start_solo(&self, party: Party) -> Result<StreamStart> {
        self.claim_start()?;
        let (p0, p1) = self.shared.deal(0)?;
        let mine = if party == Party::P0 { p0 } else { p1 };
        Ok((mine, Box::new(SoloHook { shared: Arc::clone(&self.shared), party })))
    }

    fn claim_start(&self) -> Result<()> {
        let mut s = self.shared.lock();
        if s.next != 0 {
            return Err(MpcError::InvalidParameter {
                name: "stream",
                value: "start".into(),
                reason: "already started".into(),
            });
        }
        s.next = 1;
        Ok(())
    }

    /// What has been dealt so far (all segments once both parties are done).
    pub fn stats(&self) -> StreamStats {
        self.shared.lock().stats
    }
}

/// One party's refill hook; dropping it tells a waiting peer that this party stopped.
#[derive(Debug)]
struct Hook {
    shared: Arc<Shared>,
    party: Party,
}

const STOPPED: MpcError = MpcError::PeerDisconnected { during: "refilling preprocessing" };

impl Refill for Hook {
    fn refill(&mut self) -> Result<Option<Preprocessing>> {
        let sh = &*self.shared;
        let mut s = sh.lock();
        match self.party {
            Party::P0 => {
                loop {
                    if s.next >= sh.segments.len() {
                        return Ok(None);
                    }
                    if s.closed {
                        return Err(STOPPED);
                    }
                    if s.waiting {
                        break;
                    }
                    s = sh.wait(s);
                }
                let k = s.next;
                s.next += 1;
                drop(s);
                let dealt = sh.deal(k);
                let mut s = sh.lock();
                s.waiting = false;
                let out = match dealt {
                    Ok((p0, p1)) => {
                        s.handoff = Some(p1);
                        Ok(Some(p0))
                    }
                    Err(e) => {
                        s.closed = true;
                        Err(e)
                    }
                };
                sh.cv.notify_all();
                out
            }
            Party::P1 => {
                if s.next >= sh.segments.len() {
                    return Ok(None);
                }
                s.waiting = true;
                sh.cv.notify_all();
                loop {
                    if let Some(p) = s.handoff.take() {
                        return Ok(Some(p));
                    }
                    if s.closed {
                        return Err(STOPPED);
                    }
                    s = sh.wait(s);
                }
            }
        }
    }

    fn resume(&mut self) {
        self.resume_barrier();
    }
}

impl Hook {
    fn resume_barrier(&self) {
        let sh = &*self.shared;
        let mut s = sh.lock();
        let generation = s.resumed.1;
        s.resumed.0 += 1;
        if s.resumed.0 == 2 {
            s.resumed = (0, generation + 1);
            sh.cv.notify_all();
            return;
        }
        while s.resumed.1 == generation && !s.closed {
            s = sh.wait(s);
        }
    }
}

/// A lone party's refill hook: deals the next segment itself and keeps its half.
#[derive(Debug)]
struct SoloHook {
    shared: Arc<Shared>,
    party: Party,
}

impl Refill for SoloHook {
    fn refill(&mut self) -> Result<Option<Preprocessing>> {
        let sh = &*self.shared;
        let k = {
            let mut s = sh.lock();
            if s.next >= sh.segments.len() {
                return Ok(None);
            }
            s.next += 1;
            s.next - 1
        };
        let (p0, p1) = sh.deal(k)?;
        Ok(Some(if self.party == Party::P0 { p0 } else { p1 }))
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_fit_the_budget() {
        let s = segment(&[5, 5, 5, 20, 1], 10);
        let r: Vec<_> = s.iter().map(|(r, b)| (r.clone(), *b)).collect();
        assert_eq!(r, vec![(0..2, 10), (2..3, 5), (3..4, 20), (4..5, 1)]);
        assert_eq!(segment(&[], 10), vec![(0..0, 0)]);
        assert_eq!(segment(&[1, 2, 3], u64::MAX).len(), 1);
        assert_eq!(segment(&[1, 2, 3], 1).len(), 3);
    }

    #[test]
    fn a_stopped_peer_is_an_error_not_a_hang() {
        let reqs = vec![Request::Mul { n: 3 }, Request::Mul { n: 4 }];
        let stream = Dealer::new(1).stream(reqs, 1).unwrap();
        let ((_, mut h0), (_, h1)) = stream.start().unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(h1);
        });
        assert!(matches!(h0.refill(), Err(MpcError::PeerDisconnected { .. })));
        t.join().unwrap();
    }

    #[test]
    fn streamed_material_is_the_dealt_material() {
        let reqs = vec![Request::Mul { n: 3 }, Request::Square { n: 2 }, Request::Mul { n: 4 }];
        let (d0, d1) = Dealer::new(9).deal(&reqs).unwrap();
        let mut dealer = Dealer::new(9);
        let stream = dealer.stream(reqs, 1).unwrap();
        assert_eq!(stream.segments(), 3);
        let ((mut p0, mut h0), (mut p1, mut h1)) = stream.start().unwrap();
        let t = std::thread::spawn(move || {
            while let Some(more) = h1.refill().unwrap() {
                p1.extend(more).unwrap();
                h1.resume();
            }
            p1
        });
        while let Some(more) = h0.refill().unwrap() {
            p0.extend(more).unwrap();
            h0.resume();
        }
        let p1 = t.join().unwrap();
        for (a, b) in [(&d0, &p0), (&d1, &p1)] {
            assert_eq!(a.offline_bytes(), b.offline_bytes());
            assert_eq!(format!("{:?}", a.items().collect::<Vec<_>>()), format!("{:?}", b.items().collect::<Vec<_>>()));
        }
        assert_eq!(stream.stats().dealt, 3);
        assert_eq!(stream.stats().offline_bytes, (d0.offline_bytes(), d1.offline_bytes()));
    }

    #[test]
    fn a_lone_party_streams_its_half_of_the_same_material() {
        let reqs = vec![Request::Mul { n: 3 }, Request::Square { n: 2 }, Request::Mul { n: 4 }];
        let dealt = Dealer::new(5).deal(&reqs).unwrap();
        for (party, want) in [(Party::P0, &dealt.0), (Party::P1, &dealt.1)] {
            let stream = Dealer::new(5).stream(reqs.clone(), 1).unwrap();
            let (mut pre, mut hook) = stream.start_solo(party).unwrap();
            assert!(stream.start().is_err(), "a stream starts once");
            assert_eq!(pre.party(), party);
            while let Some(more) = hook.refill().unwrap() {
                pre.extend(more).unwrap();
            }
            assert_eq!(
                format!("{:?}", want.items().collect::<Vec<_>>()),
                format!("{:?}", pre.items().collect::<Vec<_>>())
            );
            assert_eq!(stream.stats().dealt, 3);
        }
    }
}
