//! One host's TLS identity: the project CA it trusts and its own role's certificate and key,
//! checked when loaded (so a wrong file is reported by name before any connection).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

use super::{Role, role_of};
use crate::{DeployError, Result};

/// Largest certificate or key file read.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// A host's TLS identity: `ca.pem` (the CA it trusts) and its role's `<role>.pem` / `<role>.key`.
/// Cheap to clone.
#[derive(Clone)]
pub struct Identity(Arc<Inner>);

struct Inner {
    role: Role,
    dir: PathBuf,
    provider: Arc<CryptoProvider>,
    key: Arc<CertifiedKey>,
    client: Arc<ClientConfig>,
    /// Verifies client certificates against the CA (wrapped per accept with the allowed roles).
    clients: Arc<dyn ClientCertVerifier>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("role", &self.0.role).field("dir", &self.0.dir).finish_non_exhaustive()
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> DeployError {
    DeployError::BadKey { path: path.to_path_buf(), reason: reason.into() }
}

/// Reads a PEM file of at most [`MAX_PEM_BYTES`].
fn read_pem(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => bad(path, "missing (make the keys with `masq keygen --out DIR`)"),
        _ => bad(path, e.to_string()),
    })?;
    if !meta.is_file() {
        return Err(bad(path, "not a file"));
    }
    if meta.len() > MAX_PEM_BYTES {
        return Err(bad(path, format!("{} bytes; a PEM file here holds at most {MAX_PEM_BYTES}", meta.len())));
    }
    std::fs::read(path).map_err(crate::io_err(path))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad(path, "holds no certificate (no -----BEGIN CERTIFICATE----- block)"));
    }
    Ok(certs)
}

/// A UNIX time as `YYYY-MM-DD HH:MM UTC`.
pub(super) fn utc(secs: u64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs.min(i64::MAX as u64) as i64) {
        Ok(t) => format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), t.month() as u8, t.day(), t.hour(), t.minute()),
        Err(_) => format!("{secs} s after 1970"),
    }
}

/// Why this side's own certificate is unusable, in words.
fn own_cert_problem(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::CertExpired { not_after, .. } => {
            format!("expired on {}: make new keys with `masq keygen`", utc(not_after.as_secs()))
        }
        E::CertNotValidYet { not_before, .. } => {
            format!("not valid before {} (check the clock)", utc(not_before.as_secs()))
        }
        E::UnknownIssuer | E::InvalidSignatureForPublicKey => {
            "not issued by the CA in ca.pem (files of different `masq keygen` runs?)".into()
        }
        E::RequiredEkuNotFoundContext(_) => {
            "does not allow TLS client and server authentication (not made by `masq keygen`?)".into()
        }
        other => format!("unusable: {other}"),
    }
}

impl Identity {
    /// Loads `dir/ca.pem`, `dir/<role>.pem` and `dir/<role>.key` and checks them: PEM, a key that
    /// belongs to the certificate, a certificate issued by the CA, valid now, for TLS client and
    /// server authentication, and for `role`'s name. Errors name the file and the problem.
    pub fn load(dir: &Path, role: Role) -> Result<Identity> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ca_path = dir.join("ca.pem");
        let cert_path = dir.join(format!("{}.pem", role.stem()));
        let key_path = dir.join(format!("{}.key", role.stem()));

        let cas = read_certs(&ca_path)?;
        let mut roots = RootCertStore::empty();
        for ca in &cas {
            roots.add(ca.clone()).map_err(|e| bad(&ca_path, format!("not a usable CA certificate: {e}")))?;
        }
        let roots = Arc::new(roots);
        let anchors: Vec<_> = roots.roots.clone();

        let chain = read_certs(&cert_path)?;
        let key_bytes = read_pem(&key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&key_bytes)
            .map_err(|e| bad(&key_path, format!("not a PEM private key: {e}")))?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| bad(&key_path, format!("unusable private key: {e}")))?;
        let certified = CertifiedKey::new(chain.clone(), signing);
        match certified.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(bad(
                    &key_path,
                    format!("does not belong to the certificate {} (files of different runs?)", cert_path.display()),
                ));
            }
            Err(e) => return Err(bad(&cert_path, format!("cannot check it against its key: {e}"))),
        }

        let ee = webpki::EndEntityCert::try_from(&chain[0])
            .map_err(|e| bad(&cert_path, format!("not an X.509 certificate: {e}")))?;
        let algs = provider.signature_verification_algorithms.all;
        let now = UnixTime::now();
        for usage in [webpki::KeyUsage::server_auth(), webpki::KeyUsage::client_auth()] {
            ee.verify_for_usage(algs, &anchors, &chain[1..], now, usage, None, None)
                .map_err(|e| bad(&cert_path, own_cert_problem(&e)))?;
        }
        if role_of(&chain[0], &[role]).is_err() {
            let other = Role::ALL.into_iter().find(|&r| role_of(&chain[0], &[r]).is_ok());
            let is = other.map_or("no role".to_string(), |r| format!("the {r} role"));
            return Err(bad(&cert_path, format!("a certificate of {is}, not of the {role} role: wrong file?")));
        }

        let client = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| bad(&cert_path, format!("TLS set-up: {e}")))?
            .with_root_certificates(Arc::clone(&roots))
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified.clone())));
        let mut client = client;
        client.resumption = Resumption::disabled();
        let clients = WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
            .build()
            .map_err(|e| bad(&ca_path, format!("cannot verify clients with it: {e}")))?;
        Ok(Identity(Arc::new(Inner {
            role,
            dir: dir.to_path_buf(),
            provider,
            key: Arc::new(certified),
            client: Arc::new(client),
            clients,
        })))
    }

    /// This host's role.
    pub fn role(&self) -> Role {
        self.0.role
    }

    /// The folder the files were loaded from.
    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    pub(super) fn client_config(&self) -> &Arc<ClientConfig> {
        &self.0.client
    }

    /// A server configuration that accepts clients of the `allowed` roles only.
    pub(super) fn server_config(&self, allowed: &[Role]) -> Result<Arc<ServerConfig>> {
        if allowed.is_empty() {
            return Err(DeployError::Mpc {
                at: "accepting TLS".into(),
                source: masq_mpc::MpcError::InvalidParameter {
                    name: "allowed roles",
                    value: "[]".into(),
                    reason: "at least one role must be allowed".into(),
                },
            });
        }
        let verifier = RoleVerifier { inner: Arc::clone(&self.0.clients), allowed: allowed.to_vec() };
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.0.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| DeployError::Auth { reason: format!("TLS set-up: {e}") })?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(&self.0.key))));
        // No tickets: nothing has to be written after the handshake but application data.
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        Ok(Arc::new(config))
    }
}

/// The CA check of [`WebPkiClientVerifier`], then the role check: the client's certificate must
/// be valid for one of the allowed roles' names (refused in the handshake, with an alert).
#[derive(Debug)]
struct RoleVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<Role>,
}

impl ClientCertVerifier for RoleVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        role_of(end_entity, &self.allowed)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
