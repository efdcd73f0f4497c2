//! `masq keygen --out DIR [--force] [--days N] [--json]`: the keys of encrypted, authenticated
//! channels (TLS 1.3): a project CA and a certificate and key per role, ECDSA P-256
//! (`masq_deploy::tls`).

use std::path::PathBuf;

use anyhow::Context;

use super::common::json;

/// Which file goes where (shown after the options by `masq keygen --help`).
const AFTER_HELP: &str = "\
Writes into DIR (created if missing) a project CA and, signed by it, one certificate and key per
role. Each certificate names its role (server.masq, client.masq, dealer.masq), and that name is
what the other side checks, whatever the hosts are called. Copy to each host ca.pem and its own
role's pair, and give that folder as --tls DIR:

  server (masq serve --tls DIR):   ca.pem  server.pem  server.key
  client (masq query --tls DIR):   ca.pem  client.pem  client.key
  dealer (masq dealer --tls DIR):  ca.pem  dealer.pem  dealer.key
  ca.key: on no host; keep it offline (it only signs the certificates)

.key files are private (mode 0600): never copy one to another role's host. A peer whose
certificate is not from this CA, or is of another role than expected, is refused in the TLS
handshake, before any protocol message. Keys of another `masq keygen` run do not work with these:
after --force, copy the new files to every host.";

/// Arguments of `masq keygen`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct KeygenArgs {
    /// Directory to write ca.pem, ca.key, server.pem, server.key, client.pem, client.key,
    /// dealer.pem and dealer.key into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace the files if any of them exists (certificates made before stop working with
    /// the new CA). Without it, nothing is written when one exists.
    #[arg(long)]
    pub force: bool,
    /// Days the certificates are valid (from an hour ago, to allow for clock skew).
    #[arg(long, default_value_t = 365, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(masq_deploy::tls::MAX_VALIDITY_DAYS)))]
    pub days: u32,
    /// Print one JSON line instead of text: dir, files (path, owner, private, goes_to),
    /// validity_days, not_after, ca_sha256.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    let s = masq_deploy::tls::keygen(&args.out, args.force, args.days)
        .with_context(|| format!("making keys in {}", args.out.display()))?;
    if args.json {
        return json::print(&s);
    }
    println!("wrote a project CA and a certificate and key per role into {}", s.dir.display());
    println!("valid {} days, until {}; CA fingerprint (SHA-256) {}", s.validity_days, s.not_after, s.ca_sha256);
    for f in &s.files {
        let name = f.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        println!("  {name:<11} {:<12} -> {}", if f.private { "private key" } else { "certificate" }, f.goes_to);
    }
    println!("give each host's folder as --tls DIR to masq serve, masq query and masq dealer");
    Ok(())
}
