//! Both parties in one process: one thread each, joined by an in-memory transport.
//! [`run_pair`] takes all preprocessing up front; [`run_pair_streamed`] takes each party's first
//! segment and a refill hook ([`crate::dealer::stream`]).
//!
//! The two threads share the machine's cores, whereas a deployment gives each party its own
//! machine. A party that calls [`MemTransport::record`] on its transport first keeps what it
//! receives ([`PartyRun::received`]), and [`run_solo`] then runs it alone against that recording,
//! on every core, and returns what it sent: equal to what its peer received in the recorded run
//! when the replay is faithful (the callers check it).

use std::fmt;
use std::str::FromStr;

use crate::dealer::Preprocessing;
use crate::dealer::stream::StreamStart;
use crate::error::{MpcError, Result};
use crate::party::Party;
use crate::protocols::{Ctx, StepRecord};
use crate::ring::FixedPoint;
use crate::transport::{DEFAULT_MAX_FRAME_BYTES, DEFAULT_TIMEOUT, MemTransport, Traffic, mem_pair};

/// Where the two parties compute while they are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Both parties at once, one thread each (plus their evaluation threads), sharing this
    /// machine's cores: the single-process simulation.
    #[default]
    Shared,
    /// Each party alone with this machine's cores, as on a machine of its own: a recorded run
    /// gives each party's incoming messages, then each party runs again by itself against them
    /// (its messages must equal the recording's, or the measurement fails). The online time is
    /// the slower party's; the network's time comes on top (see the estimates).
    OwnCores,
}

impl FromStr for Layout {
    type Err = MpcError;
    fn from_str(s: &str) -> Result<Layout> {
        match s {
            "shared" => Ok(Layout::Shared),
            "own-cores" => Ok(Layout::OwnCores),
            other => Err(MpcError::InvalidParameter {
                name: "layout",
                value: other.to_string(),
                reason: "expected shared or own-cores".into(),
            }),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Shared => "shared",
            Layout::OwnCores => "own-cores",
        })
    }
}

/// What one party's run produced.
#[derive(Debug)]
pub struct PartyRun<R> {
    /// The closure's result.
    pub output: R,
    /// The party's log of protocol steps.
    pub log: Vec<StepRecord>,
    /// The party's total traffic.
    pub traffic: Traffic,
    /// The frames it received while recording ([`MemTransport::record`]; empty otherwise).
    pub received: Vec<Vec<u8>>,
}

/// Runs `f0` as P0 and `f1` as P1 on two threads over an in-memory transport. If one side
/// fails, its transport is dropped and the other side sees a typed disconnect, never a hang.
pub fn run_pair<R0, R1, F0, F1>(
    pre: (Preprocessing, Preprocessing),
    fp: FixedPoint,
    f0: F0,
    f1: F1,
) -> Result<(PartyRun<R0>, PartyRun<R1>)>
where
    R0: Send,
    R1: Send,
    F0: FnOnce(&mut Ctx<MemTransport>) -> Result<R0> + Send,
    F1: FnOnce(&mut Ctx<MemTransport>) -> Result<R1> + Send,
{
    let (t0, t1) = mem_pair();
    let (pre0, pre1) = pre;
    let c0 = Ctx::new(Party::P0, t0, pre0, fp)?;
    let c1 = Ctx::new(Party::P1, t1, pre1, fp)?;
    run_ctxs(c0, c1, f0, f1)
}

/// Runs `f` as `party`, alone on this thread, against `inbox` (what the party received in a
/// recorded run). Returns the run and the frames it sent.
pub fn run_solo<R, F>(
    party: Party,
    pre: Preprocessing,
    fp: FixedPoint,
    inbox: Vec<Vec<u8>>,
    f: F,
) -> Result<(PartyRun<R>, Vec<Vec<u8>>)>
where
    F: FnOnce(&mut Ctx<MemTransport>) -> Result<R>,
{
    let t = MemTransport::replay(inbox, DEFAULT_TIMEOUT, DEFAULT_MAX_FRAME_BYTES);
    solo(Ctx::new(party, t, pre, fp)?, f)
}

/// [`run_solo`] with streamed preprocessing: the party's first segment and its refill hook
/// (for a lone party, [`crate::dealer::stream::Stream::start_solo`]).
pub fn run_solo_streamed<R, F>(
    party: Party,
    start: StreamStart,
    fp: FixedPoint,
    inbox: Vec<Vec<u8>>,
    f: F,
) -> Result<(PartyRun<R>, Vec<Vec<u8>>)>
where
    F: FnOnce(&mut Ctx<MemTransport>) -> Result<R>,
{
    let t = MemTransport::replay(inbox, DEFAULT_TIMEOUT, DEFAULT_MAX_FRAME_BYTES);
    let (pre, hook) = start;
    let mut c = Ctx::new(party, t, pre, fp)?;
    c.set_refill(hook);
    solo(c, f)
}

fn solo<R>(
    mut c: Ctx<MemTransport>,
    f: impl FnOnce(&mut Ctx<MemTransport>) -> Result<R>,
) -> Result<(PartyRun<R>, Vec<Vec<u8>>)> {
    let output = f(&mut c)?;
    let sent = c.transport_mut().inner_mut().take_sent();
    Ok((PartyRun { output, log: c.take_log(), traffic: c.traffic(), received: Vec::new() }, sent))
}

/// [`run_pair`] with streamed preprocessing: each party starts with its first segment and asks
/// its hook for the next one when it runs out (see [`crate::dealer::Dealer::stream`]).
pub fn run_pair_streamed<R0, R1, F0, F1>(
    start: (StreamStart, StreamStart),
    fp: FixedPoint,
    f0: F0,
    f1: F1,
) -> Result<(PartyRun<R0>, PartyRun<R1>)>
where
    R0: Send,
    R1: Send,
    F0: FnOnce(&mut Ctx<MemTransport>) -> Result<R0> + Send,
    F1: FnOnce(&mut Ctx<MemTransport>) -> Result<R1> + Send,
{
    let (t0, t1) = mem_pair();
    let ((pre0, h0), (pre1, h1)) = start;
    let mut c0 = Ctx::new(Party::P0, t0, pre0, fp)?;
    let mut c1 = Ctx::new(Party::P1, t1, pre1, fp)?;
    c0.set_refill(h0);
    c1.set_refill(h1);
    run_ctxs(c0, c1, f0, f1)
}

fn run_ctxs<R0, R1, F0, F1>(
    mut c0: Ctx<MemTransport>,
    mut c1: Ctx<MemTransport>,
    f0: F0,
    f1: F1,
) -> Result<(PartyRun<R0>, PartyRun<R1>)>
where
    R0: Send,
    R1: Send,
    F0: FnOnce(&mut Ctx<MemTransport>) -> Result<R0> + Send,
    F1: FnOnce(&mut Ctx<MemTransport>) -> Result<R1> + Send,
{
    let (r0, r1) = std::thread::scope(|s| {
        let h1 = s.spawn(move || {
            let out = f1(&mut c1);
            out.map(|o| PartyRun {
                output: o,
                log: c1.take_log(),
                traffic: c1.traffic(),
                received: c1.transport_mut().inner_mut().take_recording(),
            })
        });
        let out0 = f0(&mut c0).map(|o| PartyRun {
            output: o,
            log: c0.take_log(),
            traffic: c0.traffic(),
            received: c0.transport_mut().inner_mut().take_recording(),
        });
        drop(c0);
        let out1 = h1.join().expect("party thread panicked");
        (out0, out1)
    });
    // Report the root cause: a party that failed first, not its peer's disconnect.
    match (r0, r1) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(e0), Err(e1)) => {
            if matches!(e0, crate::MpcError::PeerDisconnected { .. }) {
                Err(e1)
            } else {
                Err(e0)
            }
        }
    }
}
