//! The store's two `flock` locks.
//!
//! - `index.lock`, exclusive: held for every read-modify-write of `index.json`, so two
//!   processes tagging at once both land.
//! - `gc.lock`: shared by everyone who writes blobs they are about to tag (an import, a load, a
//!   pull: see [`Store::lease`]), exclusive for `prune`, so a prune never deletes a blob that is
//!   written but not yet tagged.
//!
//! Blob writes themselves need no lock: a blob's path is its digest, it appears by an atomic
//! rename of verified content, and two writers of the same digest write the same bytes.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use rustix::fs::{flock, FlockOperation};

use super::{Store, StoreError};

/// A held lock; released when dropped (the file is closed).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    path: PathBuf,
}

impl StoreLock {
    /// The lock file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// Held while writing blobs that will be tagged afterwards; keeps `prune` from deleting them.
pub type StoreLease = StoreLock;

impl Store {
    fn lock(&self, name: &str, operation: FlockOperation) -> Result<StoreLock, StoreError> {
        let path = self.root().join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| StoreError::Lock {
                path: path.clone(),
                source,
            })?;
        flock(&file, operation).map_err(|e| StoreError::Lock {
            path: path.clone(),
            source: e.into(),
        })?;
        Ok(StoreLock { _file: file, path })
    }

    /// Takes the metadata lock (exclusive) for a read-modify-write of `index.json`.
    pub(crate) fn lock_metadata(&self) -> Result<StoreLock, StoreError> {
        self.lock("index.lock", FlockOperation::LockExclusive)
    }

    /// A lease that keeps `prune` away while blobs are written and then tagged. Hold it from
    /// the first `put_blob` of an image to its `tag`. Do not call [`Store::prune`] (or
    /// `remove_image`) while holding one: `flock` locks taken through separate opens conflict
    /// even within one process, so that prune would wait for itself.
    pub fn lease(&self) -> Result<StoreLease, StoreError> {
        self.lock("gc.lock", FlockOperation::LockShared)
    }

    /// Waits until no lease is held and keeps new ones out (for prune).
    pub(crate) fn lock_collection(&self) -> Result<StoreLock, StoreError> {
        self.lock("gc.lock", FlockOperation::LockExclusive)
    }
}
