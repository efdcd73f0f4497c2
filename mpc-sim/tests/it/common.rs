//! Helpers shared by the protocol tests.
#![allow(dead_code)]

use masq_mpc::cost::Cost;
use masq_mpc::dealer::{Dealer, LayerId, LinearKind, Request};
use masq_mpc::protocols::{Ctx, StepRecord, setup_layers};
use masq_mpc::share::{Party, Share, reconstruct, share};
use masq_mpc::sim::run_pair;
use masq_mpc::transport::MemTransport;
use masq_mpc::{FixedPoint, Result};
use ndarray::ArrayD;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

pub fn rng(seed: u64) -> ChaCha12Rng {
    ChaCha12Rng::seed_from_u64(seed)
}

/// Outcome of a two-party run of one closure on a secret-shared input.
pub struct Outcome {
    pub value: ArrayD<u64>,
    pub log0: Vec<StepRecord>,
    pub log1: Vec<StepRecord>,
    pub offline: (u64, u64),
}

impl Outcome {
    /// The measured cost, summed over all logged steps except the ones named in `skip`.
    pub fn measured(&self, skip: &[&str]) -> Cost {
        let mut c = Cost::default();
        for (a, b) in self.log0.iter().zip(&self.log1) {
            assert_eq!(a.op, b.op, "both parties log the same steps");
            if skip.contains(&a.op) {
                continue;
            }
            assert_eq!(a.traffic.bytes_sent, b.traffic.bytes_received, "{}: P0 sent what P1 received", a.op);
            assert_eq!(b.traffic.bytes_sent, a.traffic.bytes_received, "{}: P1 sent what P0 received", a.op);
            c.p0_to_p1 += a.traffic.bytes_sent;
            c.p1_to_p0 += b.traffic.bytes_sent;
            c.rounds += a.traffic.rounds.max(b.traffic.rounds);
        }
        c.offline_p0 = self.offline.0;
        c.offline_p1 = self.offline.1;
        c
    }
}

/// Shares `x`, deals `requests` (and `layers` with `weights` held by P0), runs `f` on both
/// parties, and reconstructs the result.
pub fn two_party<F>(
    seed: u64,
    fp: FixedPoint,
    layers: &[(LayerId, LinearKind, ArrayD<u64>)],
    requests: &[Request],
    x: &ArrayD<u64>,
    f: F,
) -> Result<Outcome>
where
    F: Fn(&mut Ctx<MemTransport>, Share) -> Result<Share> + Sync,
{
    let mut dealer = Dealer::new(seed);
    let kinds: Vec<(LayerId, LinearKind)> = layers.iter().map(|(i, k, _)| (*i, k.clone())).collect();
    let (m0, m1) = dealer.setup_model(&kinds)?;
    let (p0, p1) = dealer.deal(requests)?;
    let offline = (p0.offline_bytes(), p1.offline_bytes());
    let (x0, x1) = share(x, &mut rng(seed ^ 0x5eed));
    let w0: Vec<(LayerId, Share)> = layers.iter().map(|(i, _, w)| (*i, Share::new(Party::P0, w.clone()))).collect();
    let w1: Vec<(LayerId, Share)> = layers.iter().map(|(i, _, w)| (*i, Share::zeros(Party::P1, w.shape()))).collect();
    let has_layers = !layers.is_empty();
    let (r0, r1) = run_pair(
        (p0, p1),
        fp,
        |ctx| {
            if has_layers {
                setup_layers(ctx, m0, w0)?;
                masq_mpc::protocols::precompute(ctx)?;
            }
            f(ctx, x0)
        },
        |ctx| {
            if has_layers {
                setup_layers(ctx, m1, w1)?;
                masq_mpc::protocols::precompute(ctx)?;
            }
            f(ctx, x1)
        },
    )?;
    let value = reconstruct(&r0.output, &r1.output)?;
    Ok(Outcome { value, log0: r0.log, log1: r1.log, offline })
}

#[allow(dead_code)]
pub fn signed(v: &ArrayD<u64>) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}
