//! Where the registry keeps its bytes: content-addressed blobs, upload sessions and per-repository
//! metadata (which blobs and manifests a repository holds, its tags, its referrers).
//!
//! The [`Storage`] trait is what the HTTP layer uses; [`fs::FsStorage`] is the filesystem backend,
//! [`s3::S3Storage`] the S3-compatible object storage one.
//! Contract every backend keeps: a blob becomes visible only by an atomic commit of content the
//! caller has verified against its digest; metadata writes are atomic; names and tags reaching
//! the backend have been validated ([`crate::name`]), so they are safe path components.

pub mod fs;
pub mod s3;

use std::future::Future;
use std::io;

use palisade_image::digest::{Digest, DigestAlgorithm};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::name::{RepositoryName, Tag};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The backend failed.
    #[error("storage I/O: {0}")]
    Io(#[from] io::Error),
    /// Stored content does not match its digest (altered or corrupted at rest).
    #[error("stored blob {0} does not match its digest")]
    Corrupt(Digest),
}

/// Result alias for storage calls.
pub type StorageResult<T> = Result<T, StorageError>;

/// How a blob's integrity was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Hashed now.
    Hashed,
    /// Known good: hashed when committed or at an earlier read, and unchanged on disk since
    /// (same inode, size, mtime and ctime).
    Cached,
}

/// What a repository link points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A blob (layer or config) pushed to or mounted into the repository.
    Blob,
    /// A manifest stored in the repository.
    Manifest,
}

/// A storage backend.
pub trait Storage: Send + Sync + 'static {
    /// Streams a blob's bytes.
    type Reader: AsyncRead + Send + Unpin + 'static;
    /// Appends to an upload.
    type Writer: AsyncWrite + Send + Unpin + 'static;

    /// The size of a committed blob, `None` when absent.
    fn blob_size(&self, d: &Digest) -> impl Future<Output = StorageResult<Option<u64>>> + Send;
    /// Opens a committed blob at `offset`.
    fn blob_open(
        &self,
        d: &Digest,
        offset: u64,
    ) -> impl Future<Output = StorageResult<Option<Self::Reader>>> + Send;
    /// Checks the blob's bytes against its digest (backends may cache a positive answer while
    /// the stored object is unchanged, including from when it was committed). `Err(Corrupt)`
    /// when it does not match; `Ok(Verification::Hashed)` when the bytes were just hashed.
    fn blob_verify(&self, d: &Digest) -> impl Future<Output = StorageResult<Verification>> + Send;
    /// Moves a corrupt blob out of the way so it is neither served nor counted as present.
    fn blob_quarantine(&self, d: &Digest) -> impl Future<Output = StorageResult<()>> + Send;
    /// Stores bytes the caller has verified hash to `d` (manifests).
    fn blob_put(&self, d: &Digest, bytes: &[u8]) -> impl Future<Output = StorageResult<()>> + Send;
    /// Deletes a committed blob (garbage collection).
    fn blob_delete(&self, d: &Digest) -> impl Future<Output = StorageResult<()>> + Send;
    /// Every committed blob with its size and when it was last written.
    fn blob_list(
        &self,
    ) -> impl Future<Output = StorageResult<Vec<(Digest, u64, std::time::SystemTime)>>> + Send;

    /// Starts an upload session `id` for `repo`.
    fn upload_create(
        &self,
        id: &str,
        repo: &RepositoryName,
    ) -> impl Future<Output = StorageResult<()>> + Send;
    /// The repository and current size of an upload, `None` when unknown.
    fn upload_info(
        &self,
        id: &str,
    ) -> impl Future<Output = StorageResult<Option<(String, u64)>>> + Send;
    /// Opens the upload for appending.
    fn upload_append(&self, id: &str) -> impl Future<Output = StorageResult<Self::Writer>> + Send;
    /// Cuts an upload back to `len` bytes (rolling back a failed chunk).
    fn upload_truncate(&self, id: &str, len: u64)
        -> impl Future<Output = StorageResult<()>> + Send;
    /// Hashes an upload's bytes (after a restart, when the running hash was lost).
    fn upload_hash(
        &self,
        id: &str,
        alg: DigestAlgorithm,
    ) -> impl Future<Output = StorageResult<Digest>> + Send;
    /// Commits an upload whose bytes the caller verified hash to `d` as that blob (atomically;
    /// a no-op besides cleanup when the blob already exists).
    fn upload_commit(&self, id: &str, d: &Digest)
        -> impl Future<Output = StorageResult<()>> + Send;
    /// Drops an upload session.
    fn upload_delete(&self, id: &str) -> impl Future<Output = StorageResult<()>> + Send;

    /// Links `d` into `repo`.
    fn link(
        &self,
        repo: &RepositoryName,
        kind: LinkKind,
        d: &Digest,
    ) -> impl Future<Output = StorageResult<()>> + Send;
    /// Whether `d` is linked into `repo`.
    fn linked(
        &self,
        repo: &RepositoryName,
        kind: LinkKind,
        d: &Digest,
    ) -> impl Future<Output = StorageResult<bool>> + Send;
    /// Removes a link; `false` when there was none.
    fn unlink(
        &self,
        repo: &RepositoryName,
        kind: LinkKind,
        d: &Digest,
    ) -> impl Future<Output = StorageResult<bool>> + Send;
    /// Every link of `kind` in `repo`.
    fn links(
        &self,
        repo: &RepositoryName,
        kind: LinkKind,
    ) -> impl Future<Output = StorageResult<Vec<Digest>>> + Send;

    /// Points `tag` at `d`.
    fn tag_set(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        d: &Digest,
    ) -> impl Future<Output = StorageResult<()>> + Send;
    /// What `tag` points at.
    fn tag_get(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> impl Future<Output = StorageResult<Option<Digest>>> + Send;
    /// Removes `tag`; `false` when absent.
    fn tag_delete(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> impl Future<Output = StorageResult<bool>> + Send;
    /// Every tag of `repo` with its target, sorted by tag.
    fn tags(
        &self,
        repo: &RepositoryName,
    ) -> impl Future<Output = StorageResult<Vec<(String, Digest)>>> + Send;

    /// Records `referrer` as referring to `subject` in `repo`.
    fn referrer_add(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        referrer: &Digest,
    ) -> impl Future<Output = StorageResult<()>> + Send;
    /// Removes a referrer record.
    fn referrer_remove(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        referrer: &Digest,
    ) -> impl Future<Output = StorageResult<()>> + Send;
    /// The manifests recorded as referring to `subject` in `repo`.
    fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> impl Future<Output = StorageResult<Vec<Digest>>> + Send;

    /// Whether `repo` exists (has any link or tag).
    fn repository_exists(
        &self,
        repo: &RepositoryName,
    ) -> impl Future<Output = StorageResult<bool>> + Send;
    /// Every repository, sorted.
    fn repositories(&self) -> impl Future<Output = StorageResult<Vec<String>>> + Send;
    /// Deletes a repository's metadata (its blobs go at the next garbage collection).
    fn repository_delete(
        &self,
        repo: &RepositoryName,
    ) -> impl Future<Output = StorageResult<bool>> + Send;
}
