//! Progress reporting for blob transfers. The library only calls these hooks (from several
//! threads at once); the CLI draws them as progress bars.

use serde::Serialize;

use super::error::DistributionError;
use crate::digest::Digest;

/// What a blob is to its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    /// The image configuration.
    Config,
    /// A filesystem layer.
    Layer,
}

/// How a blob's transfer ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BlobOutcome {
    /// Pull: fetched and verified; `resumed_from` bytes came from an earlier, interrupted try.
    Downloaded {
        /// Bytes already downloaded before this run.
        resumed_from: u64,
    },
    /// Pull: the store already had it.
    AlreadyPresent,
    /// Push: uploaded in `chunks` requests (1 for a monolithic upload).
    Uploaded {
        /// Number of requests that carried data.
        chunks: u32,
    },
    /// Push: the registry already had it in the destination repository.
    AlreadyExists,
    /// Push: mounted from another repository of the same registry, without uploading.
    Mounted {
        /// The source repository.
        from: String,
    },
}

/// Receives progress from pulls and pushes. Every method has an empty default.
pub trait TransferProgress: Sync {
    /// A blob's transfer starts; `done` bytes are already there (a resumed download).
    fn blob_started(&self, _digest: &Digest, _kind: BlobKind, _size: u64, _done: u64) {}
    /// `bytes` more bytes of the blob went over the wire.
    fn blob_advanced(&self, _digest: &Digest, _bytes: u64) {}
    /// The blob is done.
    fn blob_finished(&self, _digest: &Digest, _outcome: &BlobOutcome) {}
    /// The blob's transfer failed (the whole operation fails with this error or another).
    fn blob_failed(&self, _digest: &Digest, _error: &DistributionError) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl TransferProgress for NoProgress {}
