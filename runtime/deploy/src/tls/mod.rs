//! Encrypted, mutually authenticated channels between the parties: TLS 1.3 (rustls, *ring*
//! provider) with a project CA that [`keygen`] creates.
//!
//! ```text
//!   DIR/ca.pem  ca.key                 the project CA (ca.key stays offline: it only signs)
//!   DIR/server.pem server.key          role certificates: SAN DNS name server.masq,
//!   DIR/client.pem client.key          client.masq, dealer.masq; ECDSA P-256, each valid
//!   DIR/dealer.pem dealer.key          for both TLS client and TLS server authentication
//! ```
//!
//! A host holds `ca.pem` and its own role's pair ([`Identity::load`]). The side that connects
//! ([`connect`]) checks that the peer's certificate chains to the CA and names the role it
//! expects (the role's name is the TLS server name, whatever the host is called); the side that
//! accepts ([`accept`]) requires a client certificate chaining to the CA and valid for one of the
//! roles it allows, and reports which. Everything is settled before the transport exists:
//!
//! ```text
//!   connect                                  accept
//!     ClientHello  ───────────────────────▶
//!                  ◀───────────────────────  ServerHello … certificate (role name checked)
//!     certificate (role checked), Finished ─▶
//!                  ◀───────────────────────  one byte "accepted" (encrypted)
//!   both: TcpTransport over the channel; the session protocol starts
//! ```
//!
//! The accepting side's byte tells the connecting side that its own certificate was accepted, so
//! a refusal on either side fails [`connect`] and [`accept`] themselves, never the first message
//! of the protocol. Wrong CA, a certificate of another role, a peer without TLS, a silent or
//! vanished peer: each is an error naming the peer, the expected role and the reason, within the
//! handshake timeout. No session tickets or resumption: every connection is a full handshake,
//! and nothing needs writing after it but application data.
//!
//! After the handshake the channel runs under a [`TcpTransport`] (its reader thread, receive
//! queue, timeouts and frame limits) via [`TcpTransport::from_halves`]. The two halves share the
//! rustls connection behind a lock that neither holds while it waits on the socket (the write
//! half encrypts under it, then writes; the read half reads, then decrypts under it), so two
//! parties that both send a large message before receiving cannot deadlock.

mod identity;
mod keygen;
mod stream;

use std::fmt;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use masq_mpc::MpcError;
use masq_mpc::transport::{TcpOptions, TcpTransport};
use rustls::pki_types::{DnsName, ServerName};
use rustls::{CertificateError, ClientConnection, Connection, ServerConnection};

pub use identity::Identity;
pub use keygen::{KeygenFile, KeygenSummary, MAX_VALIDITY_DAYS, file_names, keygen};

use crate::{DeployError, Result};

/// Who a certificate speaks for: its subject alternative name is the role's [`Role::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The dealer (preprocessing service).
    Dealer,
    /// The model owner, P0 (`masq serve`).
    Server,
    /// The input owner, P1 (`masq query`).
    Client,
}

impl Role {
    /// Every role, in the order [`keygen`] writes them.
    pub const ALL: [Role; 3] = [Role::Dealer, Role::Server, Role::Client];

    /// The name in the role's certificates (a DNS name; also the TLS server name used to reach it).
    pub fn name(self) -> &'static str {
        match self {
            Role::Dealer => "dealer.masq",
            Role::Server => "server.masq",
            Role::Client => "client.masq",
        }
    }

    /// The stem of the role's files: `server` for `server.pem` and `server.key`.
    pub fn stem(self) -> &'static str {
        match self {
            Role::Dealer => "dealer",
            Role::Server => "server",
            Role::Client => "client",
        }
    }

    pub(crate) fn server_name(self) -> ServerName<'static> {
        // The names are valid DNS names, so this cannot fail; IP-less fallback kept total anyway.
        match DnsName::try_from(self.name()) {
            Ok(n) => ServerName::DnsName(n),
            Err(_) => ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.stem(), self.name())
    }
}

/// The byte the accepting side sends once it has accepted the peer's certificate.
const ACCEPTED: u8 = 0xA5;

/// Connects to `addr` as `id` and sets up TLS with a peer that must hold a certificate of role
/// `peer` issued by `id`'s CA. Retries while nobody listens; the TCP connection and the TLS
/// handshake together take at most `timeout`. The transport then runs with `tcp`.
pub fn connect(addr: &str, timeout: Duration, tcp: TcpOptions, id: &Identity, peer: Role) -> Result<TcpTransport> {
    let start = Instant::now();
    let at = format!("TLS with the {} at {addr}", peer.stem());
    let mut sock =
        TcpTransport::connect_stream(addr, timeout).map_err(|source| DeployError::Mpc { at: at.clone(), source })?;
    sock.set_nodelay(true).map_err(|e| DeployError::Mpc { at: at.clone(), source: MpcError::Io(e) })?;
    let deadline = start.checked_add(timeout);
    let conn = ClientConnection::new(Arc::clone(id.client_config()), peer.server_name())
        .map_err(|e| DeployError::Auth { reason: format!("{at}: cannot start TLS: {e}") })?;
    let mut conn = Connection::Client(conn);
    let side = Side::Connecting { expected: peer };
    let done = stream::handshake(&mut conn, &mut sock, deadline).and_then(|()| {
        match stream::read_byte(&mut conn, &mut sock, deadline)? {
            ACCEPTED => Ok(()),
            b => Err(stream::Fail::Unexpected(b)),
        }
    });
    done.map_err(|f| f.into_error(&at, side, timeout))?;
    stream::into_transport(sock, conn, tcp).map_err(|source| DeployError::Mpc { at, source })
}

/// Sets up TLS as `id` on an accepted connection: requires a client certificate issued by
/// `id`'s CA and valid for one of the `allowed` roles, and returns the transport (running with
/// `tcp`) and the peer's role. The handshake takes at most `handshake_timeout`.
pub fn accept(
    stream: TcpStream,
    tcp: TcpOptions,
    id: &Identity,
    allowed: &[Role],
    handshake_timeout: Duration,
) -> Result<(TcpTransport, Role)> {
    let start = Instant::now();
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
    let at = format!("TLS with {peer}");
    let mut sock = stream;
    sock.set_nonblocking(false)
        .and_then(|()| sock.set_nodelay(true))
        .map_err(|e| DeployError::Mpc { at: at.clone(), source: MpcError::Io(e) })?;
    let config = id.server_config(allowed)?;
    let conn = ServerConnection::new(config)
        .map_err(|e| DeployError::Auth { reason: format!("{at}: cannot start TLS: {e}") })?;
    let mut conn = Connection::Server(conn);
    let deadline = start.checked_add(handshake_timeout);
    let side = Side::Accepting { allowed };
    let role = stream::handshake(&mut conn, &mut sock, deadline)
        .and_then(|()| {
            let role = peer_role(&conn, allowed).map_err(stream::Fail::Tls)?;
            stream::send_byte(&mut conn, &mut sock, ACCEPTED, deadline)?;
            Ok(role)
        })
        .map_err(|f| f.into_error(&at, side, handshake_timeout))?;
    let t = stream::into_transport(sock, conn, tcp).map_err(|source| DeployError::Mpc { at, source })?;
    Ok((t, role))
}

/// Which side of the handshake failed, for the error's words.
#[derive(Debug, Clone, Copy)]
enum Side<'a> {
    Connecting { expected: Role },
    Accepting { allowed: &'a [Role] },
}

fn names(roles: &[Role]) -> String {
    roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(" or ")
}

/// The first of `allowed` that the peer's end-entity certificate is valid for.
fn peer_role(conn: &Connection, allowed: &[Role]) -> std::result::Result<Role, rustls::Error> {
    let cert = conn.peer_certificates().and_then(|c| c.first()).ok_or(rustls::Error::NoCertificatesPresented)?;
    role_of(cert, allowed)
}

/// The first of `allowed` that `cert` is valid for (by its subject alternative names).
pub(crate) fn role_of(
    cert: &rustls::pki_types::CertificateDer<'_>,
    allowed: &[Role],
) -> std::result::Result<Role, rustls::Error> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let mut presented = Vec::new();
    for &role in allowed {
        match ee.verify_is_valid_for_subject_name(&role.server_name()) {
            Ok(()) => return Ok(role),
            Err(webpki::Error::CertNotValidForName(ctx)) => presented = ctx.presented,
            Err(_) => {}
        }
    }
    let expected = allowed.first().map_or(Role::Client, |r| *r).server_name();
    Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { expected, presented }))
}

/// `client.masq` from webpki's `DnsName("client.masq")`; other forms as they are.
fn bare_name(presented: &str) -> &str {
    presented.strip_prefix("DnsName(\"").and_then(|n| n.strip_suffix("\")")).unwrap_or(presented)
}

/// The words for a TLS failure, from this side's point of view.
fn tls_reason(e: &rustls::Error, side: Side<'_>) -> String {
    use rustls::Error as E;
    let peer_cert = match side {
        Side::Connecting { expected } => format!("the peer's certificate (expected: {})", expected.name()),
        Side::Accepting { allowed } => format!("the client's certificate (allowed: {})", names(allowed)),
    };
    match e {
        E::InvalidCertificate(CertificateError::NotValidForNameContext { presented, .. }) => {
            let what = if presented.is_empty() {
                "no role".to_string()
            } else {
                presented.iter().map(|n| bare_name(n)).collect::<Vec<_>>().join(", ")
            };
            format!("{peer_cert} is for {what}: a certificate of another role")
        }
        E::InvalidCertificate(CertificateError::NotValidForName) => format!("{peer_cert} is for another role"),
        E::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => format!(
            "{peer_cert} is not issued by this side's CA (ca.pem): the two sides hold keys of different `masq keygen` runs"
        ),
        E::InvalidCertificate(c @ (CertificateError::Expired | CertificateError::ExpiredContext { .. })) => {
            format!("{peer_cert} has expired ({c}): make new keys with `masq keygen`")
        }
        E::InvalidCertificate(c @ (CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. })) => {
            format!("{peer_cert} is not valid yet ({c}): check the clocks")
        }
        E::InvalidCertificate(c) => format!("{peer_cert} is unacceptable: {c}"),
        E::NoCertificatesPresented => format!("{peer_cert} is missing: the peer presented none"),
        E::AlertReceived(alert) => format!(
            "the peer refused the handshake (TLS alert {alert:?}): it does not accept this side's certificate \
             (keys of another `masq keygen` run, or a role it does not serve)"
        ),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            format!("{e}: the peer does not speak TLS (started without --tls?)")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_dns_names() {
        for r in Role::ALL {
            assert!(matches!(r.server_name(), ServerName::DnsName(_)), "{r}");
            assert!(r.name().starts_with(r.stem()) && r.name().ends_with(".masq"));
        }
        assert_eq!(Role::Server.to_string(), "server (server.masq)");
    }
}
