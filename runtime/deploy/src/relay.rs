//! A shaping TCP relay: forwards each connection to an upstream address with a one-way delay and
//! a bandwidth limit per direction, so a LAN or WAN profile can be measured on one machine
//! (the kernel's netem qdisc is not available everywhere).
//!
//! ```text
//!   client ──▶ relay (listen) ──▶ upstream (server)
//!   per direction: reader thread ─(arrival time, bytes)─▶ writer thread: sends each chunk when
//!   the link is free (bandwidth) plus RTT/2 after it arrived
//! ```
//! A chunk of `n` bytes occupies the link for `8n / bandwidth` seconds starting when it arrived
//! or when the previous chunk left, whichever is later, and is delivered RTT/2 after that. Chunks
//! are at most [`CHUNK_BYTES`], so a large message streams rather than waiting whole.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use masq_mpc::cost::Network;

/// Largest piece forwarded at once.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// The shaping of one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// One-way delay (RTT/2).
    pub delay: Duration,
    /// Bits per second.
    pub bandwidth_bps: f64,
}

impl Shape {
    /// Each direction of a network profile: half its RTT, its bandwidth.
    pub fn of(net: &Network) -> Shape {
        Shape { delay: Duration::from_secs_f64(net.rtt_s / 2.0), bandwidth_bps: net.bandwidth_bps }
    }

    fn transmit(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(bytes as f64 * 8.0 / self.bandwidth_bps)
    }
}

/// Forwards `from` to `to` under `shape` until `from` ends; then shuts down `to`'s write side.
pub fn pump(mut from: TcpStream, mut to: TcpStream, shape: Shape) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut link_free = Instant::now();
    for (arrived, chunk) in rx {
        let start = arrived.max(link_free);
        link_free = start + shape.transmit(chunk.len());
        let deliver = link_free + shape.delay;
        let now = Instant::now();
        if deliver > now {
            std::thread::sleep(deliver - now);
        }
        if to.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = reader.join();
}

/// Relays one accepted connection to `upstream` with `shape` in both directions; returns when
/// both directions have ended.
pub fn relay(client: TcpStream, upstream: &str, shape: Shape) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream)?;
    for s in [&client, &server] {
        s.set_nodelay(true)?;
    }
    let (c2, s2) = (client.try_clone()?, server.try_clone()?);
    let up = std::thread::spawn(move || pump(client, server, shape));
    pump(s2, c2, shape);
    let _ = up.join();
    Ok(())
}

/// Accepts connections on `listener` forever, each relayed on its own threads.
pub fn serve(listener: TcpListener, upstream: String, shape: Shape, mut on_error: impl FnMut(std::io::Error)) {
    for conn in listener.incoming() {
        match conn {
            Ok(c) => {
                let up = upstream.clone();
                std::thread::spawn(move || relay(c, &up, shape));
            }
            Err(e) => on_error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_takes_the_rtt_and_a_large_message_its_transmission_time() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_addr = echo.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for c in echo.incoming() {
                let mut c = c.unwrap();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 20];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        // 40 ms RTT, 80 Mbps: 1 MB takes 0.1 s on the link each way.
        let shape = Shape { delay: Duration::from_millis(20), bandwidth_bps: 80e6 };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(listener, echo_addr, shape, |_| {}));
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_nodelay(true).unwrap();
        let t = Instant::now();
        c.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        c.read_exact(&mut got).unwrap();
        let rtt = t.elapsed();
        assert_eq!(&got, b"ping");
        assert!(rtt >= Duration::from_millis(40), "{rtt:?}");
        let big = vec![7u8; 1_000_000];
        let t = Instant::now();
        c.write_all(&big).unwrap();
        let mut back = vec![0u8; big.len()];
        c.read_exact(&mut back).unwrap();
        let took = t.elapsed();
        assert_eq!(back, big);
        // At least one RTT plus one transmission (the two directions pipeline).
        assert!(took >= Duration::from_millis(140), "{took:?}");
    }
}
