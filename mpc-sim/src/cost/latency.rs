//! Latency estimates for a network profile.
//!
//! `T = rounds · RTT/2 + max(bytes P0→P1, bytes P1→P0) / bandwidth + compute`
//!
//! A round is one layer of messages on the critical path: in an exchange both parties send at
//! once and each waits for the other's message, so a round costs the one-way delay, RTT/2, not a
//! full round trip. Measured through `masq relay` (zoo:resnet20, 40 rounds, 3.01 MB each way):
//! 1.07 s online under the WAN profile, where `rounds · RTT` predicted 1.92 s and `rounds · RTT/2`
//! predicts 1.08 s. (Before 2026-12-02 every round was charged a full RTT.)

use std::fmt;
use std::str::FromStr;

use super::steps::Cost;
use crate::error::MpcError;

/// The formula every estimate uses, printed beside it.
pub const FORMULA: &str = "T = rounds*RTT/2 + max(bytes P0->P1, bytes P1->P0)/bandwidth + compute";

/// A network profile.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Network {
    /// Name (`lan`, `wan`, or `custom`).
    pub name: &'static str,
    /// Bandwidth in bits per second.
    pub bandwidth_bps: f64,
    /// Round-trip time in seconds.
    pub rtt_s: f64,
}

impl Network {
    /// LAN: 3 Gbps, 0.3 ms RTT.
    pub const LAN: Network = Network { name: "lan", bandwidth_bps: 3e9, rtt_s: 0.3e-3 };
    /// WAN: 400 Mbps, 40 ms RTT.
    pub const WAN: Network = Network { name: "wan", bandwidth_bps: 400e6, rtt_s: 40e-3 };

    /// A custom profile.
    pub fn custom(gbps: f64, rtt_ms: f64) -> Result<Network, MpcError> {
        let ok = gbps.is_finite() && gbps > 0.0 && rtt_ms.is_finite() && rtt_ms >= 0.0;
        if !ok {
            return Err(MpcError::InvalidParameter {
                name: "network",
                value: format!("{gbps},{rtt_ms}"),
                reason: "bandwidth (Gbps) must be > 0 and RTT (ms) >= 0".into(),
            });
        }
        Ok(Network { name: "custom", bandwidth_bps: gbps * 1e9, rtt_s: rtt_ms * 1e-3 })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} Gbps, {} ms RTT)", self.name, self.bandwidth_bps / 1e9, self.rtt_s * 1e3)
    }
}

impl FromStr for Network {
    type Err = MpcError;
    /// `lan`, `wan`, or `GBPS,RTT_MS` (e.g. `1,10`).
    fn from_str(s: &str) -> Result<Network, MpcError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "lan" => Ok(Network::LAN),
            "wan" => Ok(Network::WAN),
            other => {
                let bad = || MpcError::InvalidParameter {
                    name: "network",
                    value: s.to_string(),
                    reason: "expected lan, wan, or GBPS,RTT_MS (e.g. 1,10)".into(),
                };
                let (g, r) = other.split_once(',').ok_or_else(bad)?;
                let g: f64 = g.trim().parse().map_err(|_| bad())?;
                let r: f64 = r.trim().parse().map_err(|_| bad())?;
                Network::custom(g, r)
            }
        }
    }
}

/// Seconds of network latency of `rounds` rounds on `net`: the one-way delay each (see the module).
pub fn rounds_seconds(rounds: f64, net: &Network) -> f64 {
    rounds * net.rtt_s / 2.0
}

/// Estimated seconds for `cost` on `net`, with `compute_s` of local work on the critical path.
pub fn estimate_seconds(cost: &Cost, compute_s: f64, net: &Network) -> f64 {
    rounds_seconds(cost.rounds as f64, net) + cost.max_direction_bytes() as f64 * 8.0 / net.bandwidth_bps + compute_s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_profiles() {
        assert_eq!("LAN".parse::<Network>().unwrap(), Network::LAN);
        assert_eq!("wan".parse::<Network>().unwrap(), Network::WAN);
        let c: Network = "1,10".parse().unwrap();
        assert_eq!((c.bandwidth_bps, c.rtt_s), (1e9, 0.01));
        assert!("fast".parse::<Network>().is_err());
        assert!("0,10".parse::<Network>().is_err());
        assert!("1,-1".parse::<Network>().is_err());
    }

    #[test]
    fn formula() {
        let c = Cost { p0_to_p1: 1_000_000, p1_to_p0: 10, rounds: 3, ..Cost::default() };
        let t = estimate_seconds(&c, 0.5, &Network::WAN);
        assert!((t - (3.0 * 0.02 + 8e6 / 400e6 + 0.5)).abs() < 1e-12);
    }
}
