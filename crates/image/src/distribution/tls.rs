//! TLS for registries: rustls with the host's trusted CAs, plus `--ca-cert` files and a
//! per-registry directory like Docker's `certs.d`:
//!
//! ```text
//! <config dir>/certs.d/<host[:port]>/
//!   *.crt                      extra CAs trusted for this registry only
//!   client.cert, client.key    a client certificate (any NAME.cert with NAME.key)
//! ```
//!
//! Plain HTTP and unverified TLS are allowed only for hosts named as insecure
//! ([`is_insecure`]); everything else is verified HTTPS.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use super::error::DistributionError;

/// Whether `host` (`name` or `name:port`) is one of the named insecure registries. An entry
/// with a port matches that port only; an entry without one matches every port of the host.
pub fn is_insecure(host: &str, insecure: &[String]) -> bool {
    let bare = strip_port(host);
    insecure.iter().any(|entry| {
        let entry = entry.trim().trim_end_matches('/');
        let entry = entry
            .strip_prefix("http://")
            .or_else(|| entry.strip_prefix("https://"))
            .unwrap_or(entry);
        entry.eq_ignore_ascii_case(host) || (!has_port(entry) && entry.eq_ignore_ascii_case(bare))
    })
}

fn has_port(host: &str) -> bool {
    strip_port(host) != host
}

/// `host` without its `:port` (IPv6 literals keep their brackets).
pub(crate) fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The CAs the host trusts, loaded once per process.
fn system_roots() -> &'static [Certificate<'static>] {
    static ROOTS: OnceLock<Vec<Certificate<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!(%error, "while loading the system's CA certificates");
        }
        found
            .certs
            .iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect()
    })
}

/// Every certificate in a PEM file (at least one).
pub(crate) fn load_certificates(
    path: &Path,
) -> Result<Vec<Certificate<'static>>, DistributionError> {
    let bytes = fs::read(path).map_err(|source| DistributionError::File {
        action: "read certificate",
        path: path.to_owned(),
        source,
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&bytes) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert.to_owned()),
            Ok(_) => {}
            Err(_) => {
                return Err(DistributionError::Certificate {
                    path: path.to_owned(),
                    reason: "not valid PEM".to_owned(),
                })
            }
        }
    }
    if certs.is_empty() {
        return Err(DistributionError::Certificate {
            path: path.to_owned(),
            reason: "no PEM certificate in it".to_owned(),
        });
    }
    Ok(certs)
}

fn load_private_key(path: &Path) -> Result<PrivateKey<'static>, DistributionError> {
    let bytes = fs::read(path).map_err(|source| DistributionError::File {
        action: "read private key",
        path: path.to_owned(),
        source,
    })?;
    for item in ureq::tls::parse_pem(&bytes) {
        if let Ok(PemItem::PrivateKey(key)) = item {
            return Ok(key.to_owned());
        }
    }
    Err(DistributionError::Certificate {
        path: path.to_owned(),
        reason: "no PEM private key in it".to_owned(),
    })
}

/// The `certs.d` directory for `host` under `config_dir`.
pub(crate) fn certs_dir(config_dir: &Path, host: &str) -> PathBuf {
    config_dir.join("certs.d").join(host)
}

/// What a `certs.d/<host>` directory holds.
#[derive(Default)]
struct HostCertificates {
    cas: Vec<Certificate<'static>>,
    client: Option<ClientCert>,
}

fn host_certificates(dir: &Path) -> Result<HostCertificates, DistributionError> {
    let mut found = HostCertificates::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(source) => {
            return Err(DistributionError::File {
                action: "read directory",
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => found.cas.extend(load_certificates(&path)?),
            Some("cert") if found.client.is_none() => {
                let key = path.with_extension("key");
                if !key.is_file() {
                    return Err(DistributionError::Certificate {
                        path,
                        reason: format!("client certificate without its key {}", key.display()),
                    });
                }
                let chain = load_certificates(&path)?;
                found.client = Some(ClientCert::new_with_certs(&chain, load_private_key(&key)?));
            }
            _ => {}
        }
    }
    Ok(found)
}

/// The TLS settings for one host.
pub(crate) fn tls_config(
    host: &str,
    insecure: bool,
    ca_files: &[PathBuf],
    config_dir: Option<&Path>,
) -> Result<TlsConfig, DistributionError> {
    let mut roots: Vec<Certificate<'static>> = system_roots().to_vec();
    for path in ca_files {
        roots.extend(load_certificates(path)?);
    }
    let mut client = None;
    if let Some(config_dir) = config_dir {
        let found = host_certificates(&certs_dir(config_dir, host))?;
        roots.extend(found.cas);
        client = found.client;
    }
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&roots))
        .client_cert(client)
        // Only for hosts the user named: `--insecure-registry HOST`.
        .disable_verification(insecure)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_matches_named_hosts_only() {
        let list = vec!["localhost:5000".to_owned(), "10.0.0.1".to_owned()];
        assert!(is_insecure("localhost:5000", &list));
        assert!(!is_insecure("localhost:5001", &list));
        assert!(!is_insecure("localhost", &list));
        assert!(is_insecure("10.0.0.1:443", &list));
        assert!(is_insecure("10.0.0.1", &list));
        assert!(!is_insecure("10.0.0.10", &list));
        assert!(!is_insecure("127.0.0.1:5000", &[]));
        assert!(is_insecure("[::1]:5000", &["[::1]".to_owned()]));
        assert!(is_insecure(
            "reg.example",
            &["http://reg.example/".to_owned()]
        ));
    }

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("a.io:5000"), "a.io");
        assert_eq!(strip_port("a.io"), "a.io");
        assert_eq!(strip_port("[::1]:5000"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }

    #[test]
    fn certificate_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.crt");
        fs::write(&bad, "not a certificate").unwrap();
        assert!(matches!(
            load_certificates(&bad),
            Err(DistributionError::Certificate { .. })
        ));
        assert!(matches!(
            load_certificates(&dir.path().join("missing.crt")),
            Err(DistributionError::File { .. })
        ));
        let host = certs_dir(dir.path(), "reg:5000");
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("ca.crt"), "junk").unwrap();
        assert!(tls_config("reg:5000", false, &[], Some(dir.path())).is_err());
        assert!(tls_config("other:5000", false, &[], Some(dir.path())).is_ok());
    }
}
