//! The content-addressed image store: an OCI image layout at a root directory.
//!
//! ```text
//! <root>/
//!   oci-layout               {"imageLayoutVersion":"1.0.0"}
//!   index.json               OCI index: one entry per tag, annotated with
//!                            org.opencontainers.image.ref.name = docker.io/library/busybox:latest
//!   blobs/sha256/<hex>       every manifest, config and layer, named by its digest (mode 0444)
//!   blobs/sha256/.tmp-*      blobs being written (flock'ed by their writer; stale ones are
//!                            removed by prune and check --repair)
//!   index.lock, gc.lock      flock(2) lock files (see `lock`)
//! ```
//!
//! Guarantees:
//! - A file at a final blob path is complete and hashes to its name: blobs are written to a
//!   temporary file in the same directory, hashed while written, compared with the expected
//!   digest and size, fsynced, renamed into place and the directory fsynced. A failed read,
//!   a mismatch, a full disk or a crash leaves at most a temporary file.
//! - Blobs are verified again on read: [`Store::open_blob`] fails at end of data if the bytes
//!   on disk were altered or truncated, and [`Store::check`] verifies everything.
//! - Two processes can use one store: `index.json` changes happen under an exclusive `flock`
//!   and are written atomically; blob writes are race-free because equal digests mean equal
//!   bytes and each appears by an atomic rename.

mod atomic;
mod blobs;
mod check;
mod error;
mod lock;
mod prune;
mod tags;

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use blobs::{BlobReader, BlobWriter};
pub use check::{CheckReport, Problem};
pub use error::StoreError;
pub use lock::{StoreLease, StoreLock};
pub use prune::{PruneReport, RemoveReport};
pub use tags::{TaggedImage, CONTAINERD_NAME_ANNOTATION, REF_NAME_ANNOTATION};

use crate::digest::{Digest, DigestAlgorithm};

/// The OCI image layout version this store writes and reads.
pub const LAYOUT_VERSION: &str = "1.0.0";

/// The image store at one root directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciLayout {
    image_layout_version: String,
}

/// The default root: `/var/lib/palisade` for root, `$XDG_DATA_HOME/palisade` (or
/// `~/.local/share/palisade`) for anyone else.
pub fn default_root() -> Result<PathBuf, StoreError> {
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/palisade"));
    }
    let absolute = |v: std::ffi::OsString| {
        let p = PathBuf::from(v);
        p.is_absolute().then_some(p)
    };
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").and_then(absolute) {
        return Ok(data.join("palisade"));
    }
    std::env::var_os("HOME")
        .and_then(absolute)
        .map(|home| home.join(".local/share/palisade"))
        .ok_or(StoreError::NoDefaultRoot)
}

impl Store {
    /// Opens the store at `root`, creating it (mode 0700) and its OCI layout files if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        if !root.is_dir() {
            create_private_dir(&root)?;
        }
        let store = Self { root };
        create_dir(&store.algorithm_dir(DigestAlgorithm::Sha256))?;
        let layout_path = store.root.join("oci-layout");
        match fs::read(&layout_path) {
            Ok(bytes) => {
                let layout: OciLayout =
                    serde_json::from_slice(&bytes).map_err(|source| StoreError::Metadata {
                        path: layout_path.clone(),
                        source,
                    })?;
                if !layout.image_layout_version.starts_with("1.") {
                    return Err(StoreError::LayoutVersion {
                        version: layout.image_layout_version,
                        path: layout_path,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let layout = OciLayout {
                    image_layout_version: LAYOUT_VERSION.to_owned(),
                };
                let bytes = serde_json::to_vec(&layout).map_err(|source| StoreError::Metadata {
                    path: layout_path.clone(),
                    source,
                })?;
                atomic::write_file(&layout_path, &bytes, 0o644)?;
            }
            Err(source) => {
                return Err(StoreError::Read {
                    path: layout_path,
                    source,
                })
            }
        }
        store.ensure_index()?;
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives (`blobs/<alg>/<hex>`), whether or not it exists.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.algorithm_dir(digest.algorithm()).join(digest.hex())
    }

    pub(crate) fn algorithm_dir(&self, algorithm: DigestAlgorithm) -> PathBuf {
        self.root.join("blobs").join(algorithm.name())
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }
}

fn create_dir(path: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(path).map_err(|source| StoreError::CreateDir {
        path: path.to_owned(),
        source,
    })
}

fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| StoreError::CreateDir {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_an_oci_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = Store::open(&root).unwrap();
        assert_eq!(store.root(), root);
        let layout: serde_json::Value =
            serde_json::from_slice(&fs::read(root.join("oci-layout")).unwrap()).unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(root.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        assert!(root.join("blobs/sha256").is_dir());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // Reopening an existing store changes nothing.
        Store::open(&root).unwrap();
    }

    #[test]
    fn refuses_unknown_layout_versions() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"2.0.0"}"#,
        )
        .unwrap();
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::LayoutVersion { .. })
        ));
        fs::write(dir.path().join("oci-layout"), "garbage").unwrap();
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Metadata { .. })
        ));
    }

    #[test]
    fn default_root_is_absolute() {
        if let Ok(root) = default_root() {
            assert!(root.is_absolute());
            assert!(root.ends_with("palisade"));
        }
    }
}
