//! `masq relay --listen ADDR --to ADDR [--network lan|wan|GBPS,RTT_MS]`: a shaping TCP relay
//! (`masq_deploy::relay`). Each connection to ADDR is forwarded to `--to` with half the profile's
//! round-trip time of delay and its bandwidth, each way; point `masq query --connect` at the relay
//! to measure a session under that profile. Prints `relaying ADDR -> UPSTREAM (profile)` on
//! stdout, then runs until killed.

use std::io::Write;
use std::net::TcpListener;

use anyhow::Context;
use masq_deploy::relay::{self, Shape};
use masq_mpc::cost::Network;

/// Arguments of `masq relay`.
#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port, printed).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,
    /// Where to forward each connection (the server's address).
    #[arg(long, value_name = "ADDR")]
    pub to: String,
    /// Network profile: `lan` (3 Gbps, 0.3 ms RTT), `wan` (400 Mbps, 40 ms RTT) or `GBPS,RTT_MS`.
    #[arg(long, default_value = "wan", value_name = "PROFILE")]
    pub network: Network,
}

pub fn run(args: RelayArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen).with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    println!("relaying {addr} -> {} ({})", args.to, args.network);
    std::io::stdout().flush().context("writing to stdout")?;
    relay::serve(listener, args.to, Shape::of(&args.network), |e| eprintln!("[masq relay] accept failed: {e}"));
    Ok(())
}
