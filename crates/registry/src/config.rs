//! The registry's configuration: one TOML file, validated at start with errors that name the
//! field and say what to do.
//!
//! ```toml
//! listen = "127.0.0.1:5000"
//! shutdown_grace_seconds = 30
//! audit_log = "/var/lib/palisade/registry/audit.log"   # optional
//! metrics = true                                      # GET /metrics (Prometheus text)
//! gc_interval_seconds = 21600                         # online garbage collection (0: off)
//! gc_grace_seconds = 3600                             # never collect content younger than this
//!
//! [storage]
//! root = "/var/lib/palisade/registry"
//! backend = "fs"                                      # or "s3", with [storage.s3] (optional)
//!
//! [storage.s3]                                        # see crate::storage::s3::S3Config
//! bucket = "registry"
//! endpoint = "https://s3.example.internal"            # absent: AWS
//! region = "us-east-1"
//! prefix = "palisade"                                 # optional key prefix
//! # access_key_id / secret_access_key, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
//!
//! [tls]                                               # optional: plain HTTP without it
//! cert = "/etc/palisade/registry.crt"
//! key = "/etc/palisade/registry.key"
//! client_ca = "/etc/palisade/clients-ca.crt"          # optional: require client certificates
//!
//! [limits]
//! max_manifest_bytes = 4194304
//!
//! [quotas]                                            # bytes per namespace (first path component)
//! team-a = 10737418240
//!
//! [gates.signature]                                   # the `signature` gate
//! policy = "/etc/palisade/policy.json"                # trust policy; keys/ beside it
//! registry_name = "registry.example:5000"             # host in the policy's scope names
//!
//! [gates.scan]                                        # scan on push, the `scan` gate
//! database = "/var/lib/palisade/vulndb"
//! policy = "/etc/palisade/vuln-policy.toml"
//! rescan_check_seconds = 60                           # rescan all when the database changes
//!
//! [[policies]]                                        # gates evaluated on manifest GET/HEAD
//! repositories = ["prod/**"]
//! gates = ["signature", "scan"]
//!
//! [auth]                                              # see crate::auth::config for every key
//! users_file = "/var/lib/palisade/registry/users.json"
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::manifest::DEFAULT_MAX_MANIFEST_BYTES;

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the registry configuration {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Not TOML of the expected shape.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// A value is wrong.
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: String,
        field: String,
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// How long shutdown waits for requests in flight.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// The audit log file (hash-chained, palisade-audit); none when absent.
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// Run garbage collection this often (0: never).
    #[serde(default = "default_gc_interval")]
    pub gc_interval_seconds: u64,
    /// Content written less than this long ago is never collected (pushes in progress).
    #[serde(default = "default_gc_grace")]
    pub gc_grace_seconds: u64,
    /// Serve `GET /metrics`.
    #[serde(default = "yes")]
    pub metrics: bool,
    /// Storage.
    pub storage: StorageConfig,
    /// TLS; plain HTTP when absent.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Byte quotas per namespace.
    #[serde(default)]
    pub quotas: BTreeMap<String, u64>,
    /// Gate policies.
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// The built-in gates' settings (`[gates.signature]`, `[gates.scan]`).
    #[serde(default)]
    pub gates: GatesConfig,
    /// Authentication and authorization ([`crate::auth::AuthConfig`]); without it the registry
    /// is open to anyone who can reach it (development only).
    #[serde(default)]
    pub auth: Option<crate::auth::AuthConfig>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5000))
}

fn default_grace() -> u64 {
    30
}

fn default_gc_interval() -> u64 {
    6 * 3600
}

fn default_gc_grace() -> u64 {
    3600
}

fn yes() -> bool {
    true
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The filesystem root (with `backend = "s3"`: local state such as scan verdicts).
    pub root: PathBuf,
    /// Where blobs and repository metadata live.
    #[serde(default)]
    pub backend: StorageBackend,
    /// `[storage.s3]`, required with `backend = "s3"`.
    #[serde(default)]
    pub s3: Option<crate::storage::s3::S3Config>,
}

/// `storage.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Files under `storage.root`.
    #[default]
    Fs,
    /// An S3-compatible bucket (`[storage.s3]`).
    S3,
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificates client certificates must chain to; none: no client certificates.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// The largest manifest accepted, in bytes.
    #[serde(default = "default_manifest")]
    pub max_manifest_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
        }
    }
}

fn default_manifest() -> usize {
    DEFAULT_MAX_MANIFEST_BYTES
}

/// `[gates]`: settings of the gates policies may name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatesConfig {
    /// The `signature` gate; policies naming it are refused at start without this.
    #[serde(default)]
    pub signature: Option<SignatureGateConfig>,
    /// Scan on push; without it nothing is scanned and the `scan` gate denies every pull.
    #[serde(default)]
    pub scan: Option<ScanGateConfig>,
}

/// `[gates.signature]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureGateConfig {
    /// The trust policy (docs/trust.md), with its `keys` directory beside it by default.
    pub policy: PathBuf,
    /// The host (and port) clients pull from, as in the policy's scope names
    /// (`registry.example:5000` for the scope `registry.example:5000/prod/*`).
    pub registry_name: String,
}

/// `[gates.scan]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanGateConfig {
    /// The advisory database (`palisade db import`).
    pub database: PathBuf,
    /// The vulnerability policy (TOML, docs/scan.md).
    pub policy: PathBuf,
    /// The largest layer scanned; a larger one fails its scan.
    #[serde(default = "default_max_layer")]
    pub max_layer_bytes: u64,
    /// How often the database file is checked for a rebuild, which rescans every stored
    /// manifest; 0 turns the check off.
    #[serde(default = "default_rescan_check")]
    pub rescan_check_seconds: u64,
}

fn default_rescan_check() -> u64 {
    60
}

fn default_max_layer() -> u64 {
    crate::vuln::DEFAULT_MAX_LAYER_BYTES
}

/// `[[policies]]`: gates that must pass before a manifest in matching repositories is served.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Repository globs (`*` one path component, `**` any number).
    pub repositories: Vec<String>,
    /// Gate names, each registered with the server (e.g. `signature`, `scan`).
    pub gates: Vec<String>,
}

impl Config {
    /// How often scan on push checks for a rebuilt advisory database (`None`: never).
    pub fn rescan_check_interval(&self) -> Option<std::time::Duration> {
        let s = self.gates.scan.as_ref()?.rescan_check_seconds;
        (s > 0).then(|| std::time::Duration::from_secs(s))
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text, &p)
    }

    /// Parses and validates configuration text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.into(),
            message: e.to_string(),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            path: origin.into(),
            field: field.into(),
            message,
        };
        if !self.storage.root.is_absolute() {
            return Err(invalid("storage.root", "must be an absolute path".into()));
        }
        match (self.storage.backend, &self.storage.s3) {
            (StorageBackend::S3, None) => {
                return Err(invalid(
                    "storage.s3",
                    "backend = \"s3\" needs a [storage.s3] section with at least bucket".into(),
                ))
            }
            (StorageBackend::S3, Some(s3)) => s3.validate().map_err(|(f, m)| invalid(f, m))?,
            (StorageBackend::Fs, Some(_)) => {
                return Err(invalid(
                    "storage.backend",
                    "a [storage.s3] section is present: set backend = \"s3\" or remove it".into(),
                ))
            }
            (StorageBackend::Fs, None) => {}
        }
        if let Some(t) = &self.tls {
            for (f, p) in [
                ("tls.cert", Some(&t.cert)),
                ("tls.key", Some(&t.key)),
                ("tls.client_ca", t.client_ca.as_ref()),
            ] {
                if let Some(p) = p {
                    if !p.is_file() {
                        return Err(invalid(
                            f,
                            format!("{} is not a readable file", p.display()),
                        ));
                    }
                }
            }
        }
        if self.limits.max_manifest_bytes < 1024 || self.limits.max_manifest_bytes > 64 << 20 {
            return Err(invalid(
                "limits.max_manifest_bytes",
                "must be between 1024 and 67108864".into(),
            ));
        }
        for ns in self.quotas.keys() {
            if crate::name::RepositoryName::parse(ns).is_err() || ns.contains('/') {
                return Err(invalid(
                    "quotas",
                    format!("{ns:?} is not a namespace (one lowercase path component)"),
                ));
            }
        }
        for (i, p) in self.policies.iter().enumerate() {
            if p.repositories.is_empty() || p.gates.is_empty() {
                return Err(invalid(
                    &format!("policies[{i}]"),
                    "needs repositories and gates".into(),
                ));
            }
            for g in &p.repositories {
                crate::glob::Glob::parse(g)
                    .map_err(|e| invalid(&format!("policies[{i}].repositories"), e))?;
            }
        }
        if let Some(s) = &self.gates.signature {
            if s.registry_name.is_empty() || s.registry_name.contains('/') {
                return Err(invalid(
                    "gates.signature.registry_name",
                    "must be the registry's host[:port], as in the trust policy's scopes".into(),
                ));
            }
        }
        for (f, p) in [
            (
                "gates.signature.policy",
                self.gates.signature.as_ref().map(|s| &s.policy),
            ),
            (
                "gates.scan.database",
                self.gates.scan.as_ref().map(|s| &s.database),
            ),
            (
                "gates.scan.policy",
                self.gates.scan.as_ref().map(|s| &s.policy),
            ),
        ] {
            if let Some(p) = p {
                if !p.is_file() {
                    return Err(invalid(
                        f,
                        format!("{} is not a readable file", p.display()),
                    ));
                }
            }
        }
        if let Some(a) = &self.auth {
            a.validate().map_err(|e| invalid("auth", e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_and_full() {
        let c = Config::parse("[storage]\nroot = \"/tmp/r\"\n", "t").unwrap();
        assert_eq!(c.listen, default_listen());
        let c = Config::parse(
            "listen = \"127.0.0.1:5001\"\n[storage]\nroot = \"/r\"\n[quotas]\nteam-a = 100\n\
             [[policies]]\nrepositories = [\"prod/**\"]\ngates = [\"signature\"]\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.quotas["team-a"], 100);
    }

    #[test]
    fn errors_name_the_field() {
        for (text, needle) in [
            ("[storage]\nroot = \"rel\"\n", "storage.root"),
            ("[storage]\nroot = \"/r\"\nbogus = 1\n", "unknown field"),
            ("[storage]\nroot = \"/r\"\nbackend = \"s3\"\n", "storage.s3"),
            ("[storage]\nroot = \"/r\"\nbackend = \"nfs\"\n", "unknown variant"),
            ("[storage]\nroot = \"/r\"\nbackend = \"s3\"\n[storage.s3]\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9\"\naccess_key_id = \"k\"\nsecret_access_key = \"s\"\n", "allow_http"),
            ("[storage]\nroot = \"/r\"\n[storage.s3]\nbucket = \"b\"\n", "storage.backend"),
            ("[storage]\nroot = \"/r\"\n[tls]\ncert = \"/nonexistent\"\nkey = \"/nonexistent\"\n", "tls.cert"),
            ("[storage]\nroot = \"/r\"\n[quotas]\n\"a/b\" = 1\n", "quotas"),
            ("[storage]\nroot = \"/r\"\n[[policies]]\nrepositories = [\"a/***\"]\ngates = [\"x\"]\n", "policies[0]"),
            ("listen = \"nope\"\n[storage]\nroot = \"/r\"\n", "listen"),
        ] {
            let e = Config::parse(text, "t").unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
