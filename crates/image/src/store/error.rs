//! The store's error type.

use std::io;
use std::path::PathBuf;

use crate::digest::{Digest, DigestError};
use crate::manifest::ManifestError;
use crate::reference::ImageReference;

/// What went wrong in the image store. File errors carry the path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Neither `$XDG_DATA_HOME` nor `$HOME` is set for a non-root user.
    #[error("cannot choose a default store root: set XDG_DATA_HOME or HOME, or pass --root")]
    NoDefaultRoot,
    /// A directory could not be created.
    #[error("failed to create directory {path:?}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file could not be read.
    #[error("failed to read {path:?}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file could not be written, synced or renamed into place.
    #[error("failed to write {path:?}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file could not be removed.
    #[error("failed to remove {path:?}")]
    Remove {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A lock file could not be opened or locked.
    #[error("failed to lock {path:?}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The data being stored could not be read from its source.
    #[error("failed to read the data to store")]
    Source {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// No blob with this digest.
    #[error("blob {digest} is not in the store")]
    BlobNotFound {
        /// The digest.
        digest: Digest,
    },
    /// The data written hashed to another digest than expected; nothing was kept.
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The expected digest.
        expected: Digest,
        /// The digest of the data.
        actual: Digest,
    },
    /// The data written had another size than expected; nothing was kept.
    #[error("content size mismatch: expected {expected} bytes, got {actual}{more}", more = if *.exceeded { " or more" } else { "" })]
    SizeMismatch {
        /// The expected size.
        expected: u64,
        /// The size seen.
        actual: u64,
        /// Whether writing stopped early because the data ran past the expected size.
        exceeded: bool,
    },
    /// A stored blob no longer hashes to its digest (altered or truncated on disk).
    #[error("blob {digest} at {path:?} is corrupt (run `palisade system check --repair`)")]
    CorruptBlob {
        /// The digest.
        digest: Digest,
        /// Its file.
        path: PathBuf,
        /// The mismatch.
        #[source]
        source: DigestError,
    },
    /// A blob is larger than the caller allows (manifests, configs).
    #[error("blob {digest} is {size} bytes, more than the {limit} allowed for it")]
    BlobTooLarge {
        /// The digest.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// `index.json` or `oci-layout` is not valid.
    #[error("invalid store metadata in {path:?}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// `oci-layout` names a layout version this store does not speak.
    #[error("unsupported OCI layout version {version:?} in {path:?}")]
    LayoutVersion {
        /// The version found.
        version: String,
        /// The `oci-layout` file.
        path: PathBuf,
    },
    /// No image by this reference.
    #[error("image {reference} not found (list images with `palisade image ls`)")]
    ImageNotFound {
        /// The reference.
        reference: Box<ImageReference>,
    },
    /// A reference pins one digest but is being pointed at another.
    #[error("{reference} pins digest {pinned} but the image is {actual}")]
    DigestConflict {
        /// The reference.
        reference: Box<ImageReference>,
        /// The digest it pins.
        pinned: Digest,
        /// The image's manifest digest.
        actual: Digest,
    },
    /// A stored manifest or config could not be parsed.
    #[error("invalid manifest or config {digest}")]
    Manifest {
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: ManifestError,
    },
}
