//! Resumable blob downloads.
//!
//! A blob is downloaded into `<store>/downloads/<algorithm>-<hex>`, a file locked with
//! `flock` by its downloader (a second process wanting the same blob waits, then finds it in
//! the store). If the transfer breaks off, or the process is killed, the file stays; the next
//! attempt asks for the rest with `Range: bytes=<have>-`. When the file has the descriptor's
//! size it is handed to [`Store::put_blob`], which hashes it while copying it into place: a
//! digest or size mismatch keeps nothing (the partial file is deleted too, since some of its
//! bytes are wrong), so only verified blobs ever reach the store's final paths.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::fs::{flock, FlockOperation};

use super::client::{header, io_reason, RegistryClient};
use super::error::DistributionError;
use super::progress::{BlobKind, BlobOutcome, TransferProgress};
use crate::digest::Digest;
use crate::store::{Store, StoreError};

/// The directory under the store root holding interrupted downloads.
pub const PARTIAL_DIR: &str = "downloads";

/// Attempts per blob when the connection breaks mid-transfer.
const ATTEMPTS: u32 = 3;
const BUFFER: usize = 256 * 1024;

/// A blob to fetch.
pub(crate) struct BlobTarget<'a> {
    pub(crate) repository: &'a str,
    pub(crate) digest: &'a Digest,
    pub(crate) size: u64,
    pub(crate) kind: BlobKind,
}

impl BlobTarget<'_> {
    fn what(&self) -> &'static str {
        match self.kind {
            BlobKind::Config => "config",
            BlobKind::Layer => "layer",
        }
    }
}

fn partial_path(store: &Store, digest: &Digest) -> PathBuf {
    store
        .root()
        .join(PARTIAL_DIR)
        .join(format!("{}-{}", digest.algorithm(), digest.hex()))
}

fn file_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DistributionError {
    let path = path.to_owned();
    move |source| DistributionError::File {
        action,
        path,
        source,
    }
}

/// Whether the store holds the blob with the expected size (final paths hold only verified
/// content, so presence and size are enough).
fn present(store: &Store, digest: &Digest, size: u64) -> bool {
    store.blob_size(digest).is_ok_and(|s| s == size)
}

/// Opens and locks the partial file, making sure the locked file is still the one at `path`
/// (another process may have finished and removed it while we waited for the lock).
fn open_locked(path: &Path) -> Result<File, DistributionError> {
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(file_error("open", path))?;
        flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| file_error("lock", path)(e.into()))?;
        let locked = file.metadata().map_err(file_error("stat", path))?;
        match fs::metadata(path) {
            Ok(current) if current.ino() == locked.ino() && current.dev() == locked.dev() => {
                return Ok(file)
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(file_error("stat", path)(e)),
        }
    }
}

fn remove_partial(path: &Path) {
    if let Err(error) = fs::remove_file(path) {
        if error.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), %error, "failed to remove a partial download");
        }
    }
}

/// Downloads one blob into the store, resuming an earlier partial download. Returns `None`
/// when `cancel` was raised (the partial data is kept for the next attempt).
pub(crate) fn download_blob(
    client: &RegistryClient,
    store: &Store,
    target: &BlobTarget<'_>,
    progress: &dyn TransferProgress,
    cancel: &AtomicBool,
) -> Result<Option<BlobOutcome>, DistributionError> {
    let digest = target.digest;
    if present(store, digest, target.size) {
        progress.blob_started(digest, target.kind, target.size, target.size);
        progress.blob_finished(digest, &BlobOutcome::AlreadyPresent);
        return Ok(Some(BlobOutcome::AlreadyPresent));
    }
    let dir = store.root().join(PARTIAL_DIR);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(file_error("create directory", &dir))?;
    let path = partial_path(store, digest);
    let mut file = open_locked(&path)?;
    if present(store, digest, target.size) {
        // Another process finished it while we waited for the lock.
        remove_partial(&path);
        progress.blob_started(digest, target.kind, target.size, target.size);
        progress.blob_finished(digest, &BlobOutcome::AlreadyPresent);
        return Ok(Some(BlobOutcome::AlreadyPresent));
    }
    let mut offset = file.metadata().map_err(file_error("stat", &path))?.len();
    if offset > target.size {
        file.set_len(0).map_err(file_error("truncate", &path))?;
        offset = 0;
    }
    let resumed_from = offset;
    if resumed_from > 0 {
        tracing::info!(%digest, resumed_from, size = target.size, "resuming download");
    }
    progress.blob_started(digest, target.kind, target.size, offset);
    let mut failures = 0;
    while offset < target.size {
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match fetch_rest(
            client,
            target,
            &mut file,
            &path,
            &mut offset,
            progress,
            cancel,
        ) {
            Ok(()) => {}
            Err(error) if error.is_transient() && failures + 1 < ATTEMPTS => {
                failures += 1;
                tracing::warn!(%digest, offset, %error, "transfer broke off; resuming");
                std::thread::sleep(Duration::from_millis(200 * u64::from(failures)));
            }
            Err(error) => {
                if matches!(
                    error,
                    DistributionError::SizeMismatch { .. }
                        | DistributionError::DigestMismatch { .. }
                ) {
                    remove_partial(&path);
                }
                return Err(error);
            }
        }
    }
    if cancel.load(Ordering::Relaxed) {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(0))
        .map_err(file_error("read", &path))?;
    match store.put_blob(
        BufReader::with_capacity(BUFFER, &file),
        Some(digest),
        Some(target.size),
    ) {
        Ok(_) => {
            remove_partial(&path);
            let outcome = BlobOutcome::Downloaded { resumed_from };
            progress.blob_finished(digest, &outcome);
            Ok(Some(outcome))
        }
        Err(StoreError::DigestMismatch { expected, actual }) => {
            remove_partial(&path);
            Err(DistributionError::DigestMismatch {
                host: client.registry().to_owned(),
                what: target.what(),
                expected,
                actual,
            })
        }
        Err(StoreError::SizeMismatch {
            expected,
            actual,
            exceeded,
        }) => {
            remove_partial(&path);
            Err(DistributionError::SizeMismatch {
                host: client.registry().to_owned(),
                what: target.what(),
                digest: digest.clone(),
                expected,
                actual,
                exceeded,
            })
        }
        Err(other) => Err(other.into()),
    }
}

/// One request for the bytes from `offset` on, appended to the partial file.
fn fetch_rest(
    client: &RegistryClient,
    target: &BlobTarget<'_>,
    file: &mut File,
    path: &Path,
    offset: &mut u64,
    progress: &dyn TransferProgress,
    cancel: &AtomicBool,
) -> Result<(), DistributionError> {
    let digest = target.digest;
    let operation = format!("pull {} {digest}", target.what());
    let mut response = client.blob_response(target.repository, digest, *offset, &operation)?;
    let transfer = |reason: String| DistributionError::Transfer {
        host: client.registry().to_owned(),
        operation: operation.clone(),
        reason,
    };
    let size_mismatch = |actual: u64, exceeded: bool| DistributionError::SizeMismatch {
        host: client.registry().to_owned(),
        what: target.what(),
        digest: digest.clone(),
        expected: target.size,
        actual,
        exceeded,
    };
    let length = header(&response, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    match response.status().as_u16() {
        206 => {
            let range = header(&response, "content-range").and_then(parse_content_range);
            match range {
                Some((start, _, total)) if start == *offset => {
                    if total.is_some_and(|t| t != target.size) {
                        return Err(size_mismatch(total.unwrap_or_default(), false));
                    }
                }
                _ => {
                    // A range we did not ask for: start over.
                    file.set_len(0).map_err(file_error("truncate", path))?;
                    *offset = 0;
                    return Err(transfer(
                        "the registry answered with another range than asked".to_owned(),
                    ));
                }
            }
        }
        200 => {
            if *offset > 0 {
                tracing::debug!(%digest, "the registry ignored the Range request; starting over");
                file.set_len(0).map_err(file_error("truncate", path))?;
                *offset = 0;
            }
            if let Some(length) = length {
                if length != target.size {
                    return Err(size_mismatch(length, length > target.size));
                }
            }
        }
        _ => {
            // 416: what we have does not fit the blob; start over.
            file.set_len(0).map_err(file_error("truncate", path))?;
            *offset = 0;
            return Err(transfer(
                "the registry refused the range of a partial download".to_owned(),
            ));
        }
    }
    file.seek(SeekFrom::Start(*offset))
        .map_err(file_error("write", path))?;
    let mut reader = response.body_mut().as_reader();
    let mut buffer = vec![0u8; BUFFER];
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(transfer(io_reason(&e))),
        };
        if *offset + n as u64 > target.size {
            return Err(size_mismatch(*offset + n as u64, true));
        }
        file.write_all(&buffer[..n])
            .map_err(file_error("write", path))?;
        *offset += n as u64;
        progress.blob_advanced(digest, n as u64);
    }
    if *offset < target.size {
        return Err(transfer(format!(
            "the connection closed after {} of {} bytes",
            *offset, target.size
        )));
    }
    Ok(())
}

/// `bytes <start>-<end>/<total or *>`.
fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.trim().split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, end.trim().parse().ok()?, total))
}

/// Deletes partial downloads no process is working on. Returns how many were removed.
pub fn clean_partial_downloads(store: &Store) -> Result<usize, DistributionError> {
    let dir = store.root().join(PARTIAL_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(file_error("read directory", &dir)(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry.map_err(file_error("read directory", &dir))?.path();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            fs::remove_file(&path).map_err(file_error("remove", &path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_ranges() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, 99, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, 0, None)));
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn cleans_only_unlocked_partials() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(clean_partial_downloads(&store).unwrap(), 0);
        fs::create_dir_all(store.root().join(PARTIAL_DIR)).unwrap();
        let busy = partial_path(&store, &Digest::of(b"busy"));
        let _held = open_locked(&busy).unwrap();
        fs::write(partial_path(&store, &Digest::of(b"stale")), b"x").unwrap();
        assert_eq!(clean_partial_downloads(&store).unwrap(), 1);
        assert!(busy.exists());
    }
}
