//! `masq keygen`: a project CA and one certificate and key per role, ECDSA P-256.

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SerialNumber,
};

use super::Role;
use super::identity::utc;
use crate::{DeployError, Result, io_err, mpc_err};

/// Longest validity `keygen` accepts, in days (100 years).
pub const MAX_VALIDITY_DAYS: u32 = 36_500;

/// One file [`keygen`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeygenFile {
    pub path: PathBuf,
    /// `ca`, `dealer`, `server` or `client`.
    pub owner: &'static str,
    /// A private key (mode 0600) rather than a certificate.
    pub private: bool,
    /// Which host it belongs on.
    pub goes_to: &'static str,
}

/// What [`keygen`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeygenSummary {
    pub dir: PathBuf,
    pub files: Vec<KeygenFile>,
    pub validity_days: u32,
    /// End of validity of every certificate (`YYYY-MM-DD HH:MM UTC`).
    pub not_after: String,
    /// SHA-256 of the CA certificate (DER, hex): compare it on every host.
    pub ca_sha256: String,
}

/// The names of the files [`keygen`] writes into a folder, in order.
pub fn file_names() -> Vec<String> {
    let mut names = vec!["ca.pem".to_string(), "ca.key".to_string()];
    for r in Role::ALL {
        names.push(format!("{}.pem", r.stem()));
        names.push(format!("{}.key", r.stem()));
    }
    names
}

fn rcgen_err(what: &str) -> impl FnOnce(rcgen::Error) -> DeployError + '_ {
    move |e| DeployError::BadKey { path: PathBuf::from(what), reason: format!("cannot make it: {e}") }
}

fn serial() -> SerialNumber {
    let mut b: [u8; 16] = rand::random();
    // Positive, and of full length.
    b[0] = (b[0] & 0x7F) | 0x40;
    SerialNumber::from_slice(&b)
}

/// Creates in `dir` (made if missing) a project CA (`ca.pem`, `ca.key`, self-signed) and, signed
/// by it, a certificate and key per role (`dealer`, `server`, `client` `.pem` / `.key`), each
/// valid for its role's name, for TLS client and server authentication, from an hour ago to
/// `validity_days` from now. Keys are written with mode 0600. Every file is written to a
/// temporary name and renamed; without `force`, nothing is written if any of the files exists.
pub fn keygen(dir: &Path, force: bool, validity_days: u32) -> Result<KeygenSummary> {
    if validity_days == 0 || validity_days > MAX_VALIDITY_DAYS {
        return Err(mpc_err("keygen")(masq_mpc::MpcError::InvalidParameter {
            name: "validity days",
            value: validity_days.to_string(),
            reason: format!("must be between 1 and {MAX_VALIDITY_DAYS}"),
        }));
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let names = file_names();
    if !force {
        let existing: Vec<&String> = names.iter().filter(|n| dir.join(n).symlink_metadata().is_ok()).collect();
        if let Some(first) = existing.first() {
            return Err(DeployError::BadKey {
                path: dir.join(first),
                reason: format!(
                    "already exists ({} of the {} files are there); pass --force to replace them all \
                     (certificates made before stop working with the new CA)",
                    existing.len(),
                    names.len()
                ),
            });
        }
    }

    let now = time::OffsetDateTime::now_utc();
    let not_before = now - time::Duration::hours(1);
    let not_after = now + time::Duration::days(i64::from(validity_days));

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_err("ca.key"))?;
    let mut ca = CertificateParams::default();
    // A name of its own per run, so that another run's certificates are told apart by issuer.
    let tag: [u8; 4] = rand::random();
    ca.distinguished_name.push(DnType::CommonName, format!("masq project CA {}", crate::hex(&tag)));
    ca.distinguished_name.push(DnType::OrganizationName, "masq");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.not_before = not_before;
    ca.not_after = not_after;
    ca.serial_number = Some(serial());
    let ca_cert = ca.self_signed(&ca_key).map_err(rcgen_err("ca.pem"))?;
    let mut contents: Vec<(String, String, bool)> =
        vec![("ca.pem".into(), ca_cert.pem(), false), ("ca.key".into(), ca_key.serialize_pem(), true)];
    let ca_sha256 = crate::hex(&crate::public::sha256(ca_cert.der()));
    let issuer = Issuer::new(ca, &ca_key);

    for role in Role::ALL {
        let pem_name = format!("{}.pem", role.stem());
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_err(&pem_name))?;
        let mut p = CertificateParams::new(vec![role.name().to_string()]).map_err(rcgen_err(&pem_name))?;
        p.distinguished_name.push(DnType::CommonName, role.name());
        p.distinguished_name.push(DnType::OrganizationName, "masq");
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        p.use_authority_key_identifier_extension = true;
        p.not_before = not_before;
        p.not_after = not_after;
        p.serial_number = Some(serial());
        let cert = p.signed_by(&key, &issuer).map_err(rcgen_err(&pem_name))?;
        contents.push((pem_name, cert.pem(), false));
        contents.push((format!("{}.key", role.stem()), key.serialize_pem(), true));
    }

    // Everything to temporary files first, then the renames: a failure before the renames
    // leaves the folder as it was.
    let mut staged = Vec::with_capacity(contents.len());
    for (name, text, private) in &contents {
        let path = dir.join(name);
        let mut tmp = tempfile::Builder::new().prefix(".masq-keygen-").tempfile_in(dir).map_err(io_err(&path))?;
        set_mode(tmp.as_file(), if *private { 0o600 } else { 0o644 }).map_err(io_err(&path))?;
        tmp.write_all(text.as_bytes()).and_then(|()| tmp.as_file().sync_all()).map_err(io_err(&path))?;
        staged.push((tmp, path));
    }
    for (tmp, path) in staged {
        if force {
            tmp.persist(&path).map_err(|e| io_err(&path)(e.error))?;
        } else {
            tmp.persist_noclobber(&path).map_err(|e| io_err(&path)(e.error))?;
        }
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }

    let files = contents
        .iter()
        .map(|(name, _, private)| {
            let owner = name.split('.').next().unwrap_or("");
            let goes_to = match owner {
                "ca" if *private => "nowhere: keep it offline (it only signs certificates)",
                "ca" => "every host",
                "server" => "the server (masq serve)",
                "client" => "the client (masq query)",
                _ => "the dealer",
            };
            let owner = match owner {
                "ca" => "ca",
                "server" => "server",
                "client" => "client",
                _ => "dealer",
            };
            KeygenFile { path: dir.join(name), owner, private: *private, goes_to }
        })
        .collect();
    Ok(KeygenSummary {
        dir: dir.to_path_buf(),
        files,
        validity_days,
        not_after: utc(not_after.unix_timestamp().max(0) as u64),
        ca_sha256,
    })
}

#[cfg(unix)]
fn set_mode(f: &std::fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &std::fs::File, _: u32) -> std::io::Result<()> {
    Ok(())
}
