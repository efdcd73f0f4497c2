//! TCP transport: length-prefixed frames ([`super::frame`]) over a `std::net::TcpStream`.
//!
//! Sends go through a `BufWriter` on the caller's thread (with `TCP_NODELAY`, so a flush goes
//! out at once) and fail with [`MpcError::Timeout`] when the peer stops draining for longer
//! than the write timeout. Receives are done by a small reader thread per connection that
//! decodes frames as they arrive and queues them (up to [`TcpOptions::recv_queue_bytes`]):
//! two parties that both send a large message before receiving (an opening) can therefore
//! never deadlock on full socket buffers. [`Transport::recv`] waits on that queue for at most
//! the read timeout.
//!
//! ```text
//!   caller thread                  reader thread
//!   send -> BufWriter -> socket    socket -> FrameReader -> queue -> recv (timeout)
//! ```
//!
//! The two halves need not be the raw socket: [`TcpTransport::from_halves`] runs the same
//! framing, queue and timeouts over any read and write halves of a connected socket (an
//! encrypted channel, say), keeping the socket itself for its addresses, its timeouts and the
//! shutdown on drop that ends the reader thread.
//!
//! Errors: a peer that closes or resets the connection is [`MpcError::PeerDisconnected`] (at a
//! frame boundary) or [`MpcError::TruncatedFrame`] (inside a frame); a peer that goes silent
//! is [`MpcError::Timeout`]; oversized frames are [`MpcError::FrameTooLarge`] on either side.
//! After a send error the connection refuses further sends (its framing may be broken).

use std::collections::VecDeque;
use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::channel::{DEFAULT_TIMEOUT, Transport};
use super::frame::{DEFAULT_MAX_FRAME_BYTES, FrameReader, with_timeout, write_error, write_frame};
use crate::error::{MpcError, Result};

const DURING_RECV: &str = "receiving a frame";
const DURING_SEND: &str = "sending a frame";
/// Pause between connection attempts while the peer is not listening yet, and between accept polls.
const RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Capacity of the send buffer.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Bookkeeping charged per queued frame, so that a flood of empty frames is bounded too.
const QUEUE_ENTRY_BYTES: usize = 64;

/// Settings of a [`TcpTransport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOptions {
    /// How long [`Transport::recv`] waits for a whole frame.
    pub read_timeout: Duration,
    /// How long a blocked send or flush waits for the peer to drain the socket.
    pub write_timeout: Duration,
    /// Largest payload sent or accepted.
    pub max_frame_bytes: usize,
    /// Received-but-unread bytes after which the reader thread stops reading (one more frame
    /// may be in progress beyond this).
    pub recv_queue_bytes: usize,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            read_timeout: DEFAULT_TIMEOUT,
            write_timeout: DEFAULT_TIMEOUT,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            recv_queue_bytes: 64 << 20,
        }
    }
}

impl TcpOptions {
    /// Defaults with both the read and the write timeout set to `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self { read_timeout: timeout, write_timeout: timeout, ..Self::default() }
    }

    fn validate(&self) -> Result<()> {
        for (name, t) in [("read_timeout", self.read_timeout), ("write_timeout", self.write_timeout)] {
            if t.is_zero() {
                return Err(MpcError::InvalidParameter {
                    name,
                    value: format!("{t:?}"),
                    reason: "must be positive".into(),
                });
            }
        }
        Ok(())
    }
}

/// What the reader thread hands to the caller.
#[derive(Debug, Default)]
struct InboxState {
    frames: VecDeque<Result<Vec<u8>>>,
    queued_bytes: usize,
    /// The reader thread has stopped (after queueing its final error, if any).
    reader_done: bool,
    /// The transport is being dropped: the reader thread must stop.
    closing: bool,
}

#[derive(Debug, Default)]
struct Inbox {
    state: Mutex<InboxState>,
    changed: Condvar,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, InboxState> {
        // Nothing panics while holding the lock; recover the guard anyway rather than panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn queue_cost(len: usize) -> usize {
    len + QUEUE_ENTRY_BYTES
}

fn reader_loop(mut stream: Box<dyn Read + Send>, inbox: Arc<Inbox>, max_frame: Arc<AtomicUsize>, budget: usize) {
    let mut frames = FrameReader::with_shared_max(max_frame);
    loop {
        {
            let mut st = inbox.lock();
            while st.queued_bytes >= budget && !st.closing {
                st = inbox.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.closing {
                st.reader_done = true;
                inbox.changed.notify_all();
                return;
            }
        }
        let item = frames.read_frame(&mut stream);
        let mut st = inbox.lock();
        match item {
            Ok(frame) => {
                st.queued_bytes += queue_cost(frame.len());
                st.frames.push_back(Ok(frame));
            }
            // The socket has no read timeout; should one fire anyway, the frame reader resumes.
            Err(MpcError::Timeout { .. }) => {}
            Err(e) => {
                if !st.closing {
                    st.frames.push_back(Err(e));
                }
                st.reader_done = true;
                inbox.changed.notify_all();
                return;
            }
        }
        inbox.changed.notify_all();
    }
}

/// One end of a TCP connection between the two parties.
pub struct TcpTransport {
    /// The connection: its addresses, and its shutdown on drop (which wakes the reader thread).
    socket: TcpStream,
    writer: BufWriter<Box<dyn Write + Send>>,
    inbox: Arc<Inbox>,
    reader: Option<JoinHandle<()>>,
    opts: TcpOptions,
    /// The receive limit, shared with the reader thread (which reads it per frame).
    recv_max: Arc<AtomicUsize>,
    /// A send failed part-way: the peer may have half a frame, so nothing more may be sent.
    send_broken: bool,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("socket", &self.socket)
            .field("opts", &self.opts)
            .field("send_broken", &self.send_broken)
            .finish_non_exhaustive()
    }
}

impl TcpTransport {
    /// Wraps a connected stream with default options.
    pub fn from_stream(stream: TcpStream) -> Result<Self> {
        Self::from_stream_with(stream, TcpOptions::default())
    }

    /// Wraps a connected stream: sets `TCP_NODELAY`, blocking mode and the write timeout, and
    /// starts the reader thread.
    pub fn from_stream_with(stream: TcpStream, opts: TcpOptions) -> Result<Self> {
        let read_half = stream.try_clone()?;
        let write_half = stream.try_clone()?;
        Self::from_halves(stream, Box::new(read_half), Box::new(write_half), opts)
    }

    /// Runs the transport over `reader` and `writer`, two halves of the connection `socket`
    /// (an encrypted channel over it, say) instead of the socket itself. `socket` gets the
    /// settings of [`TcpTransport::from_stream_with`] (`TCP_NODELAY`, blocking mode, the write
    /// timeout, no read timeout), which the halves see if they read and write through clones of
    /// it; it gives [`TcpTransport::peer_addr`] and is shut down on drop, which must make a
    /// blocked `reader` return (end of stream or an error) so that the reader thread ends.
    ///
    /// `reader` is read on the reader thread only, `writer` on the caller's thread only.
    /// `reader` should not return `WouldBlock` / `TimedOut` (it would be retried at once).
    pub fn from_halves(
        socket: TcpStream,
        reader: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
        opts: TcpOptions,
    ) -> Result<Self> {
        opts.validate()?;
        socket.set_nonblocking(false)?;
        socket.set_nodelay(true)?;
        socket.set_write_timeout(Some(opts.write_timeout))?;
        socket.set_read_timeout(None)?;
        let read_half = reader;
        let inbox = Arc::new(Inbox::default());
        let thread_inbox = Arc::clone(&inbox);
        let recv_max = Arc::new(AtomicUsize::new(opts.max_frame_bytes));
        let (max, budget) = (Arc::clone(&recv_max), opts.recv_queue_bytes);
        let reader = std::thread::Builder::new()
            .name("masq-tcp-reader".into())
            .spawn(move || reader_loop(read_half, thread_inbox, max, budget))?;
        Ok(Self {
            socket,
            writer: BufWriter::with_capacity(WRITE_BUFFER_BYTES, writer),
            inbox,
            reader: Some(reader),
            opts,
            recv_max,
            send_broken: false,
        })
    }

    /// Connects to `addr` with default options, retrying while the peer is not listening yet,
    /// for at most `timeout` in all.
    pub fn connect<A: ToSocketAddrs>(addr: A, timeout: Duration) -> Result<Self> {
        Self::connect_with(addr, timeout, TcpOptions::default())
    }

    /// [`TcpTransport::connect`] with explicit options.
    pub fn connect_with<A: ToSocketAddrs>(addr: A, timeout: Duration, opts: TcpOptions) -> Result<Self> {
        opts.validate()?;
        Self::from_stream_with(Self::connect_stream(addr, timeout)?, opts)
    }

    /// The bare connected socket of [`TcpTransport::connect_with`] (retrying while the peer is
    /// not listening, for at most `timeout`), for a caller that sets up more on it first (TLS).
    pub fn connect_stream<A: ToSocketAddrs>(addr: A, timeout: Duration) -> Result<TcpStream> {
        const DURING: &str = "connecting to the peer";
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(MpcError::InvalidParameter {
                name: "address",
                value: String::new(),
                reason: "resolves to no socket address".into(),
            });
        }
        let start = Instant::now();
        loop {
            for a in &addrs {
                let left = timeout.saturating_sub(start.elapsed());
                if left.is_zero() {
                    return Err(MpcError::Timeout { during: DURING, after: timeout });
                }
                match TcpStream::connect_timeout(a, left) {
                    Ok(stream) => return Ok(stream),
                    Err(e) if is_retryable_connect(e.kind()) => {}
                    Err(e) => return Err(MpcError::Io(e)),
                }
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(MpcError::Timeout { during: DURING, after: timeout });
            }
            std::thread::sleep(left.min(RETRY_PAUSE));
        }
    }

    /// Accepts one connection on `listener` with default options, waiting at most `timeout`.
    pub fn accept(listener: &TcpListener, timeout: Duration) -> Result<Self> {
        Self::accept_with(listener, timeout, TcpOptions::default())
    }

    /// [`TcpTransport::accept`] with explicit options. The listener is polled in non-blocking
    /// mode and put back into blocking mode before returning.
    pub fn accept_with(listener: &TcpListener, timeout: Duration, opts: TcpOptions) -> Result<Self> {
        opts.validate()?;
        Self::from_stream_with(Self::accept_stream(listener, timeout)?, opts)
    }

    /// The connection [`TcpTransport::accept_with`] would wrap, unwrapped (for a caller that
    /// sets up something over the socket first, such as an encrypted channel for
    /// [`TcpTransport::from_halves`]). The listener is polled in non-blocking mode and put
    /// back into blocking mode before returning; the stream returned is in blocking mode.
    pub fn accept_stream(listener: &TcpListener, timeout: Duration) -> Result<TcpStream> {
        listener.set_nonblocking(true)?;
        let accepted = poll_accept(listener, timeout);
        let restored = listener.set_nonblocking(false);
        let stream = accepted?;
        restored?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    }

    /// The options this transport was built with.
    pub fn options(&self) -> &TcpOptions {
        &self.opts
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        Ok(self.socket.peer_addr()?)
    }

    /// This end's address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn check_sendable(&self) -> Result<()> {
        if self.send_broken {
            return Err(MpcError::Io(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "an earlier send failed part-way; this connection can no longer send",
            )));
        }
        Ok(())
    }

    fn send_failed(&mut self, e: MpcError) -> MpcError {
        self.send_broken = true;
        with_timeout(e, self.opts.write_timeout)
    }
}

fn is_retryable_connect(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::TimedOut
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::Interrupted
    )
}

fn poll_accept(listener: &TcpListener, timeout: Duration) -> Result<TcpStream> {
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => return Ok(stream),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            // The client gave up between SYN and accept: keep waiting for another.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => return Err(MpcError::Io(e)),
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(MpcError::Timeout { during: "accepting a connection", after: timeout });
        }
        std::thread::sleep(left.min(RETRY_PAUSE));
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, payload: &[u8]) -> Result<()> {
        self.check_sendable()?;
        match write_frame(&mut self.writer, payload, self.opts.max_frame_bytes) {
            Ok(()) => Ok(()),
            // Refused before writing anything: the connection is still fine.
            Err(e @ MpcError::FrameTooLarge { .. }) => Err(e),
            Err(e) => Err(self.send_failed(e)),
        }
    }

    fn set_max_frame_bytes(&mut self, max: usize) {
        self.opts.max_frame_bytes = max;
        self.recv_max.store(max, Ordering::Release);
    }

    fn set_read_timeout(&mut self, timeout: Duration) {
        if !timeout.is_zero() {
            self.opts.read_timeout = timeout;
        }
    }

    fn recv(&mut self) -> Result<Vec<u8>> {
        self.flush()?;
        let timeout = self.opts.read_timeout;
        let deadline = Instant::now().checked_add(timeout);
        let mut st = self.inbox.lock();
        loop {
            if let Some(item) = st.frames.pop_front() {
                if let Ok(frame) = &item {
                    st.queued_bytes -= queue_cost(frame.len());
                    self.inbox.changed.notify_all();
                }
                return item;
            }
            if st.reader_done {
                return Err(MpcError::PeerDisconnected { during: DURING_RECV });
            }
            st = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(MpcError::Timeout { during: DURING_RECV, after: timeout });
                    }
                    self.inbox.changed.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0
                }
                None => self.inbox.changed.wait(st).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    fn flush(&mut self) -> Result<()> {
        self.check_sendable()?;
        match self.writer.flush() {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = write_error(e, DURING_SEND);
                Err(self.send_failed(e))
            }
        }
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        if !self.send_broken {
            // Best effort: deliver what was queued (bounded by the write timeout).
            let _ = self.writer.flush();
        }
        {
            let mut st = self.inbox.lock();
            st.closing = true;
            self.inbox.changed.notify_all();
        }
        // Wakes the reader thread out of its blocking read.
        let _ = self.socket.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(opts: TcpOptions) -> (TcpTransport, TcpTransport) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client =
            std::thread::spawn(move || TcpTransport::connect_with(addr, Duration::from_secs(2), opts).unwrap());
        let server = TcpTransport::accept_with(&listener, Duration::from_secs(2), opts).unwrap();
        (server, client.join().unwrap())
    }

    #[test]
    fn options_are_validated() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let opts = TcpOptions { read_timeout: Duration::ZERO, ..TcpOptions::default() };
        let err = TcpTransport::accept_with(&listener, Duration::from_millis(10), opts).unwrap_err();
        assert!(matches!(err, MpcError::InvalidParameter { name: "read_timeout", .. }), "{err:?}");
    }

    #[test]
    fn accept_times_out_without_a_client() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let start = Instant::now();
        let err = TcpTransport::accept(&listener, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, MpcError::Timeout { during: "accepting a connection", .. }), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn connect_times_out_when_nobody_listens() {
        // Bind and drop to get a port that is (very likely) closed.
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let start = Instant::now();
        let err = TcpTransport::connect(addr, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, MpcError::Timeout { .. }), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn connect_retries_until_the_listener_appears() {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let client = std::thread::spawn(move || TcpTransport::connect(addr, Duration::from_secs(3)));
        std::thread::sleep(Duration::from_millis(100));
        let listener = TcpListener::bind(addr).unwrap();
        let mut server = TcpTransport::accept(&listener, Duration::from_secs(2)).unwrap();
        let mut client = client.join().unwrap().unwrap();
        client.send(b"late").unwrap();
        client.flush().unwrap();
        assert_eq!(server.recv().unwrap(), b"late");
    }

    #[test]
    fn large_simultaneous_sends_do_not_deadlock() {
        // Both parties push 24 MB before reading: far more than the socket buffers hold.
        let (mut a, mut b) = pair(TcpOptions::with_timeout(Duration::from_secs(5)));
        let xs: Vec<u64> = (0..3_000_000u64).collect();
        let ys: Vec<u64> = xs.iter().map(|x| x ^ 0xFFFF).collect();
        let (xs2, ys2) = (xs.clone(), ys.clone());
        let t = std::thread::spawn(move || b.exchange_u64s(&ys2, "big").unwrap());
        let got_a = a.exchange_u64s(&xs2, "big").unwrap();
        assert_eq!(got_a, ys);
        assert_eq!(t.join().unwrap(), xs);
    }

    /// Halves that scramble every byte (a stand-in for an encrypted channel over the socket).
    struct Xor<S>(S);

    impl Read for Xor<TcpStream> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            buf[..n].iter_mut().for_each(|b| *b ^= 0x5A);
            Ok(n)
        }
    }

    impl Write for Xor<TcpStream> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let scrambled: Vec<u8> = buf.iter().map(|b| b ^ 0x5A).collect();
            self.0.write_all(&scrambled)?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.flush()
        }
    }

    fn over_halves(stream: TcpStream, opts: TcpOptions) -> TcpTransport {
        let (r, w) = (stream.try_clone().unwrap(), stream.try_clone().unwrap());
        TcpTransport::from_halves(stream, Box::new(Xor(r)), Box::new(Xor(w)), opts).unwrap()
    }

    #[test]
    fn transports_over_other_halves_frame_queue_and_close_the_same_way() {
        let opts = TcpOptions::with_timeout(Duration::from_secs(5));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let raw = std::thread::spawn(move || TcpStream::connect(addr).unwrap());
        let (accepted, _) = listener.accept().unwrap();
        let raw = raw.join().unwrap();
        // What goes over the wire is scrambled: a plain reader sees other bytes.
        let mut peek = raw.try_clone().unwrap();
        let mut a = over_halves(accepted, opts);
        a.send(b"hi").unwrap();
        a.flush().unwrap();
        let mut wire = [0u8; 6];
        peek.read_exact(&mut wire).unwrap();
        assert_eq!(wire, [2 ^ 0x5A, 0x5A, 0x5A, 0x5A, b'h' ^ 0x5A, b'i' ^ 0x5A]);
        let mut b = over_halves(raw, opts);
        assert_eq!(b.peer_addr().unwrap(), a.local_addr().unwrap());
        // Both push 24 MB before reading: the reader threads keep the halves from deadlocking.
        let xs: Vec<u64> = (0..3_000_000u64).collect();
        let ys: Vec<u64> = xs.iter().map(|x| x ^ 0xFFFF).collect();
        let (xs2, ys2) = (xs.clone(), ys.clone());
        let t = std::thread::spawn(move || (b.exchange_u64s(&ys2, "big").unwrap(), b));
        assert_eq!(a.exchange_u64s(&xs2, "big").unwrap(), ys);
        let (got, mut b) = t.join().unwrap();
        assert_eq!(got, xs);
        // Frame limits apply to the decoded stream.
        b.set_max_frame_bytes(4);
        a.send(&[1; 5]).unwrap();
        a.flush().unwrap();
        assert!(matches!(b.recv(), Err(MpcError::FrameTooLarge { len: 5, max: 4 })), "over the limit");
        // Dropping one end shuts the socket down: the other sees the peer go, and no thread hangs.
        let (mut c, d) = pair_over_halves(opts);
        drop(d);
        assert!(matches!(c.recv(), Err(MpcError::PeerDisconnected { .. })));
        drop(c);
    }

    fn pair_over_halves(opts: TcpOptions) -> (TcpTransport, TcpTransport) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let raw = std::thread::spawn(move || TcpStream::connect(addr).unwrap());
        let (accepted, _) = listener.accept().unwrap();
        (over_halves(accepted, opts), over_halves(raw.join().unwrap(), opts))
    }

    #[test]
    fn a_silent_peer_over_other_halves_times_out() {
        let (mut a, _b) = pair_over_halves(TcpOptions::with_timeout(Duration::from_millis(100)));
        let start = Instant::now();
        assert!(matches!(a.recv(), Err(MpcError::Timeout { .. })));
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn send_refused_above_max_keeps_the_connection_usable() {
        let opts = TcpOptions { max_frame_bytes: 8, ..TcpOptions::with_timeout(Duration::from_secs(2)) };
        let (mut a, mut b) = pair(opts);
        assert!(matches!(a.send(&[0; 9]), Err(MpcError::FrameTooLarge { len: 9, max: 8 })));
        a.send(&[5; 8]).unwrap();
        a.flush().unwrap();
        assert_eq!(b.recv().unwrap(), [5; 8]);
    }
}
