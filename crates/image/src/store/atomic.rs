//! Crash-safe file creation: a temporary file in the target's own directory, fsync, rename,
//! fsync of the directory. After a crash the final path either does not exist or holds the
//! complete file; a leftover temporary file is recognisable by its name (and unlocked).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{flock, FlockOperation};

use super::StoreError;

/// Every temporary file the store creates starts with this.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary file, exclusively `flock`ed while its writer lives so that a cleaner can tell
/// a live one (lock held) from one left by a crash (lock free).
#[derive(Debug)]
pub(crate) struct TempFile {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
}

impl TempFile {
    /// Creates a new, empty, locked temporary file in `dir`.
    pub(crate) fn create(dir: &Path) -> Result<Self, StoreError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("{TEMP_PREFIX}{}-{nanos}-{n}", std::process::id()));
            match OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    flock(&file, FlockOperation::LockExclusive).map_err(|e| StoreError::Lock {
                        path: path.clone(),
                        source: e.into(),
                    })?;
                    return Ok(Self { file, path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(StoreError::Write { path, source }),
            }
        }
    }

    /// fsyncs, sets `mode`, renames to `target` (same directory) and fsyncs the directory.
    pub(crate) fn persist(self, target: &Path, mode: u32) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let write_err = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        self.file.sync_all().map_err(write_err)?;
        self.file
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(write_err)?;
        if let Err(source) = fs::rename(&self.path, target) {
            let _ = fs::remove_file(&self.path);
            return Err(StoreError::Write {
                path: target.to_owned(),
                source,
            });
        }
        if let Some(dir) = target.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Removes the file (on failure paths).
    pub(crate) fn discard(self) {
        if let Err(error) = fs::remove_file(&self.path) {
            tracing::warn!(path = ?self.path, %error, "failed to remove temporary file");
        }
    }
}

/// fsyncs a directory so a rename or unlink in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// Atomically replaces `target` with `bytes`.
pub(crate) fn write_file(target: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let dir = target.parent().unwrap_or_else(|| Path::new("."));
    let mut temp = TempFile::create(dir)?;
    if let Err(source) = temp.file.write_all(bytes) {
        let path = temp.path.clone();
        temp.discard();
        return Err(StoreError::Write { path, source });
    }
    temp.persist(target, mode)
}

/// Whether a temporary file is stale: nobody holds its lock. Takes the lock to find out, so a
/// writer starting after this check cannot be using this file (temporary names are unique).
pub(crate) fn is_stale_temp(path: &Path) -> bool {
    match File::open(path) {
        Ok(file) => flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_and_tells_stale_from_live() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        write_file(&target, b"one", 0o644).unwrap();
        write_file(&target, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        let live = TempFile::create(dir.path()).unwrap();
        assert!(!is_stale_temp(&live.path));
        let path = live.path.clone();
        drop(live);
        assert!(is_stale_temp(&path));
    }
}
