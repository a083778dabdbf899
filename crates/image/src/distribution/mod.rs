//! The OCI distribution client: pull images from a registry into the [`Store`], push them
//! back, and log in.
//!
//! - [`pull()`]: resolves a tag or digest to a manifest (an index picks the host platform),
//!   then fetches config and layers into the store, several layers at once, each checked
//!   against its digest and size. A download that breaks off is kept under
//!   `<store>/downloads/` and continued with an HTTP `Range` request the next time; only
//!   verified blobs ever reach the store's final paths, and the tag is written last.
//! - [`push()`]: checks which blobs the registry lacks, mounts the ones it holds in another
//!   repository, uploads the rest (one `PUT` for small blobs, `PATCH` chunks for large ones),
//!   then puts the manifest.
//! - Authentication: anonymous, basic, or Docker token auth (`WWW-Authenticate: Bearer`), with
//!   a token cache keyed by scope; credentials from [`CredentialStore`] (Palisade's
//!   [`AuthFile`], Podman's and Docker's files). Secrets are [`Secret`]s, which never print.
//! - TLS: rustls with the system's CAs, `--ca-cert` files and `certs.d/<host>/` (see
//!   [`tls`](self::tls)); plain HTTP only for hosts named in
//!   [`ClientOptions::insecure_registries`].
//!
//! Blocking I/O and threads: the client runs in the CLI only, never in the runtime.
//!
//! [`Store`]: crate::store::Store

mod artifact;
mod challenge;
mod client;
mod credentials;
mod download;
mod error;
mod parallel;
mod progress;
mod pull;
mod push;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

pub use artifact::PutManifest;
pub use client::{FetchedManifest, RegistryClient};
pub use credentials::{default_config_dir, AuthFile, CredentialStore, Credentials, Secret};
pub use download::{clean_partial_downloads, PARTIAL_DIR};
pub use error::DistributionError;
pub use progress::{BlobKind, BlobOutcome, NoProgress, TransferProgress};
pub use pull::{pull, PullReport, PulledBlob};
pub use push::{push, PushReport, PushedBlob};
pub use tls::is_insecure;

use crate::manifest::PlatformSpec;

/// How a registry client connects, authenticates and transfers.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Hosts (`host` for every port, or `host:port`) that may be reached over plain HTTP or
    /// TLS without certificate checks. Every other host gets verified HTTPS.
    pub insecure_registries: Vec<String>,
    /// PEM files of extra CAs trusted for every registry.
    pub ca_certs: Vec<PathBuf>,
    /// Palisade's configuration directory, for `certs.d/<host>/`; `None` reads no `certs.d`.
    pub config_dir: Option<PathBuf>,
    /// Where credentials come from.
    pub credentials: CredentialStore,
    /// Blobs transferred at once.
    pub concurrency: usize,
    /// Blobs up to this size are uploaded with a single `PUT`; larger ones in chunks.
    pub monolithic_upload_limit: u64,
    /// The size of each `PATCH` of a chunked upload.
    pub chunk_size: u64,
    /// The platform to pick from a multi-platform index.
    pub platform: PlatformSpec,
    /// How long to wait for a connection (and TLS handshake).
    pub connect_timeout: Duration,
    /// How long a single read or write may stall before the transfer is abandoned.
    pub io_timeout: Duration,
}

impl Default for ClientOptions {
    /// No insecure hosts, the system's CAs, `certs.d` under [`default_config_dir`],
    /// credentials from the environment's auth files, 3 transfers at once, 16 MiB chunks.
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            ca_certs: Vec::new(),
            config_dir: default_config_dir().ok(),
            credentials: CredentialStore::from_environment(),
            concurrency: 3,
            monolithic_upload_limit: 16 << 20,
            chunk_size: 16 << 20,
            platform: PlatformSpec::host(),
            connect_timeout: Duration::from_secs(30),
            io_timeout: Duration::from_secs(120),
        }
    }
}

/// Checks `credentials` against `registry` (a basic-auth request, or a token request for a
/// token-auth registry) without storing anything. Store them afterwards with
/// [`AuthFile::store`].
pub fn check_login(
    registry: &str,
    credentials: &Credentials,
    options: &ClientOptions,
) -> Result<(), DistributionError> {
    let mut options = options.clone();
    options.credentials = CredentialStore::none().with_credentials(registry, credentials.clone());
    RegistryClient::new(registry, &options)?.check_login()
}
