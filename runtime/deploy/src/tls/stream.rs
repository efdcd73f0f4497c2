//! The TLS connection on a socket: the handshake (blocking, with a deadline), then a read half
//! and a write half for [`TcpTransport::from_halves`].
//!
//! The two halves share the rustls connection behind a mutex, and neither holds it while it
//! waits on the socket, so the reader thread and the caller's sends never block each other:
//!
//! ```text
//!   write half (caller's thread)               read half (reader thread)
//!     lock; encrypt into a buffer; unlock        read the socket (no lock)
//!     write the buffer to the socket             lock; decrypt; take plaintext; unlock
//! ```
//!
//! Nothing in the read half ever has to write: the server sends no session tickets, and a
//! key update the peer asks for is queued and goes out with the next write. A clean
//! `close_notify` and a bare end of stream both end the stream (the framing above tells a
//! boundary from a truncation); a TLS error is an `InvalidData` I/O error saying what TLS found.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use masq_mpc::MpcError;
use masq_mpc::transport::{TcpOptions, TcpTransport};
use rustls::Connection;

use super::{Side, tls_reason};
use crate::DeployError;

/// Ciphertext read from the socket at a time (about four full TLS records).
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Why a handshake step failed (turned into a [`DeployError`] with its context by
/// [`Fail::into_error`]).
#[derive(Debug)]
pub(super) enum Fail {
    /// The deadline passed.
    Timeout,
    /// The peer closed the connection.
    Closed,
    Io(io::Error),
    Tls(rustls::Error),
    /// The accepting side's confirmation was another byte.
    Unexpected(u8),
}

impl Fail {
    pub(super) fn into_error(self, at: &str, side: Side<'_>, timeout: Duration) -> DeployError {
        let accepting = matches!(side, Side::Accepting { .. });
        match self {
            Fail::Timeout => DeployError::Mpc {
                at: at.to_string(),
                source: MpcError::Timeout {
                    during: if accepting {
                        "waiting for the TLS handshake (a client without TLS sends none)"
                    } else {
                        "in the TLS handshake (is the peer a TLS server?)"
                    },
                    after: timeout,
                },
            },
            Fail::Closed => DeployError::Mpc {
                at: at.to_string(),
                source: MpcError::PeerDisconnected {
                    during: "in the TLS handshake (a peer without TLS, or one that stopped?)",
                },
            },
            Fail::Io(e) if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted) => {
                DeployError::Mpc {
                    at: at.to_string(),
                    source: MpcError::PeerDisconnected {
                        during: "in the TLS handshake (the peer reset the connection: does it speak TLS?)",
                    },
                }
            }
            Fail::Io(e) => DeployError::Mpc { at: at.to_string(), source: MpcError::Io(e) },
            Fail::Tls(e) => DeployError::Auth { reason: format!("{at}: {}", tls_reason(&e, side)) },
            Fail::Unexpected(b) => DeployError::Protocol {
                during: "the TLS handshake",
                reason: format!("{at}: the peer confirmed with byte {b:#04x}, not the acceptance byte"),
            },
        }
    }
}

type Step<T = ()> = std::result::Result<T, Fail>;

/// Time left before `deadline` (`None`: no deadline), at least 1 ms, or a timeout.
fn left(deadline: Option<Instant>) -> Step<Option<Duration>> {
    match deadline {
        None => Ok(None),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() { Err(Fail::Timeout) } else { Ok(Some(left.max(Duration::from_millis(1)))) }
        }
    }
}

fn io_fail(e: io::Error) -> Fail {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Fail::Timeout,
        io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe | io::ErrorKind::NotConnected => Fail::Closed,
        _ => Fail::Io(e),
    }
}

/// Writes everything rustls has queued (handshake messages, alerts, records).
fn write_out(conn: &mut Connection, sock: &mut TcpStream, deadline: Option<Instant>) -> Step {
    while conn.wants_write() {
        sock.set_write_timeout(left(deadline)?).map_err(Fail::Io)?;
        match conn.write_tls(sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_fail(e)),
        }
    }
    Ok(())
}

/// Reads what the socket has and processes it; a TLS error is answered with its alert (best
/// effort) before it is returned.
fn read_in(conn: &mut Connection, sock: &mut TcpStream, deadline: Option<Instant>) -> Step {
    sock.set_read_timeout(left(deadline)?).map_err(Fail::Io)?;
    let n = loop {
        match conn.read_tls(sock) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_fail(e)),
        }
    };
    if let Err(e) = conn.process_new_packets() {
        let _ = write_out(conn, sock, deadline);
        return Err(Fail::Tls(e));
    }
    if n == 0 {
        return Err(Fail::Closed);
    }
    Ok(())
}

/// Runs the handshake on the blocking socket until it is complete and this side's last flight
/// is written, within `deadline`.
pub(super) fn handshake(conn: &mut Connection, sock: &mut TcpStream, deadline: Option<Instant>) -> Step {
    loop {
        write_out(conn, sock, deadline)?;
        if !conn.is_handshaking() {
            return Ok(());
        }
        read_in(conn, sock, deadline)?;
    }
}

/// Reads one byte of application data (after the handshake), within `deadline`.
pub(super) fn read_byte(conn: &mut Connection, sock: &mut TcpStream, deadline: Option<Instant>) -> Step<u8> {
    let mut b = [0u8; 1];
    loop {
        match conn.reader().read(&mut b) {
            Ok(1) => return Ok(b[0]),
            Ok(_) => return Err(Fail::Closed),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io_fail(e)),
        }
        write_out(conn, sock, deadline)?;
        read_in(conn, sock, deadline)?;
    }
}

/// Sends one byte of application data, within `deadline`.
pub(super) fn send_byte(conn: &mut Connection, sock: &mut TcpStream, b: u8, deadline: Option<Instant>) -> Step {
    conn.writer().write_all(&[b]).map_err(Fail::Io)?;
    write_out(conn, sock, deadline)
}

/// The transport over the established connection (the halves below, on clones of `sock`).
pub(super) fn into_transport(sock: TcpStream, conn: Connection, tcp: TcpOptions) -> masq_mpc::Result<TcpTransport> {
    let conn = Arc::new(Mutex::new(conn));
    let reader = ReadHalf {
        sock: sock.try_clone()?,
        conn: Arc::clone(&conn),
        buf: vec![0; READ_BUFFER_BYTES],
        start: 0,
        end: 0,
    };
    let writer = WriteHalf { sock: sock.try_clone()?, conn, out: Vec::new() };
    TcpTransport::from_halves(sock, Box::new(reader), Box::new(writer), tcp)
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // Nothing panics while holding the lock; recover the guard anyway rather than panic.
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

/// A TLS error as an I/O error (the transport reports it as a transport I/O error).
fn tls_io(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

/// The plaintext the peer sends.
struct ReadHalf {
    sock: TcpStream,
    conn: Arc<Mutex<Connection>>,
    /// Ciphertext read from the socket; `buf[start..end]` not yet handed to rustls.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Read for ReadHalf {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut conn = lock(&self.conn);
                match conn.reader().read(out) {
                    // Data, or 0 after the peer's close_notify.
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // A bare end of stream (UnexpectedEof) or an earlier TLS error.
                    Err(e) => return Err(e),
                }
                if self.start < self.end {
                    // The plaintext buffer is empty, so rustls takes at least part of this.
                    let mut rest = &self.buf[self.start..self.end];
                    let taken = conn.read_tls(&mut rest)?;
                    if taken == 0 {
                        // Only after a close_notify: nothing more is read, and the reader says so.
                        self.start = self.end;
                    }
                    self.start += taken;
                    conn.process_new_packets().map_err(tls_io)?;
                    continue;
                }
            }
            // Wait for ciphertext without holding the connection.
            let n = loop {
                match self.sock.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            (self.start, self.end) = (0, n);
            if n == 0 {
                // Tell rustls the stream ended: its reader then says how (clean or not).
                let mut conn = lock(&self.conn);
                conn.read_tls(&mut io::empty())?;
            }
        }
    }
}

/// Encrypts what the caller sends.
struct WriteHalf {
    sock: TcpStream,
    conn: Arc<Mutex<Connection>>,
    /// Records to write, encrypted under the lock and written after it is released.
    out: Vec<u8>,
}

impl WriteHalf {
    /// Moves every queued record into `out` (under the lock).
    fn take_records(conn: &mut Connection, out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        while conn.wants_write() {
            conn.write_tls(out)?;
        }
        Ok(())
    }
}

impl Write for WriteHalf {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let n = {
            let mut conn = lock(&self.conn);
            // rustls encrypts up to its buffer limit (64 KiB) and reports how much it took.
            let n = conn.writer().write(data)?;
            Self::take_records(&mut conn, &mut self.out)?;
            n
        };
        self.sock.write_all(&self.out)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        {
            let mut conn = lock(&self.conn);
            Self::take_records(&mut conn, &mut self.out)?;
        }
        self.sock.write_all(&self.out)?;
        self.sock.flush()
    }
}
