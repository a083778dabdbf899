//! Writing, reading and verifying blobs.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::atomic::{self, TempFile};
use super::{Store, StoreError};
use crate::digest::{Digest, DigestAlgorithm, DigestError, Hasher, VerifyingReader};

/// Blob files are read-only once in place.
const BLOB_MODE: u32 = 0o444;
const COPY_BUFFER: usize = 64 * 1024;

/// A blob being written: bytes go to a locked temporary file in the blob directory and are
/// hashed on the way. [`BlobWriter::commit`] checks digest and size and only then moves the
/// file to its final path; dropping the writer without committing removes the file.
#[derive(Debug)]
pub struct BlobWriter {
    temp: Option<TempFile>,
    store: Store,
    hasher: Hasher,
    written: u64,
    limit: Option<u64>,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Checks the data and moves it into place. With `expected`, the data must hash to it
    /// (using its algorithm, chosen when the writer was made); with `expected_size`, it must
    /// have that length. On any mismatch nothing is kept.
    pub fn commit(
        mut self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<(Digest, u64), StoreError> {
        let Some(temp) = self.temp.take() else {
            return Err(StoreError::Write {
                path: self.store.root().to_owned(),
                source: io::Error::other("blob writer used after commit"),
            });
        };
        let hasher = std::mem::replace(&mut self.hasher, Hasher::new(DigestAlgorithm::Sha256));
        let actual = hasher.finish();
        let size = self.written;
        if let Some(expected_size) = expected_size {
            if size != expected_size {
                temp.discard();
                return Err(StoreError::SizeMismatch {
                    expected: expected_size,
                    actual: size,
                    exceeded: false,
                });
            }
        }
        if let Some(expected) = expected {
            if *expected != actual {
                temp.discard();
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let target = self.store.blob_path(&actual);
        // If the blob already exists this replaces it with identical, verified bytes (which also
        // repairs a blob that was corrupted on disk).
        temp.persist(&target, BLOB_MODE)?;
        Ok((actual, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(temp) = self.temp.as_mut() else {
            return Err(io::Error::other("blob writer used after commit"));
        };
        if let Some(limit) = self.limit {
            if self.written + buf.len() as u64 > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("blob is larger than the expected {limit} bytes"),
                ));
            }
        }
        let n = temp.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.temp.as_mut() {
            Some(temp) => temp.file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            temp.discard();
        }
    }
}

/// A stored blob opened for reading. It verifies while streaming: the read that reaches the
/// end fails with [`io::ErrorKind::InvalidData`] (wrapping [`StoreError::CorruptBlob`]) if the
/// file no longer hashes to its digest. Trust what was read only once a read returned `Ok(0)`.
#[derive(Debug)]
pub struct BlobReader {
    inner: VerifyingReader<BufReader<File>>,
    path: PathBuf,
    size: u64,
}

impl BlobReader {
    /// The blob's size on disk.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest being verified.
    pub fn digest(&self) -> &Digest {
        self.inner.expected()
    }

    /// The blob's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.kind() != io::ErrorKind::InvalidData {
                return e;
            }
            match e.into_inner().map(|inner| inner.downcast::<DigestError>()) {
                Some(Ok(source)) => io::Error::new(
                    io::ErrorKind::InvalidData,
                    StoreError::CorruptBlob {
                        digest: self.inner.expected().clone(),
                        path: self.path.clone(),
                        source: *source,
                    },
                ),
                Some(Err(other)) => io::Error::new(io::ErrorKind::InvalidData, other),
                None => io::Error::from(io::ErrorKind::InvalidData),
            }
        })
    }
}

impl Store {
    /// Starts writing a blob hashed with `algorithm`. With `expected_size`, writing more fails
    /// at once (a source cannot fill the disk past what it announced).
    pub fn blob_writer(
        &self,
        algorithm: DigestAlgorithm,
        expected_size: Option<u64>,
    ) -> Result<BlobWriter, StoreError> {
        let dir = self.algorithm_dir(algorithm);
        super::create_dir(&dir)?;
        Ok(BlobWriter {
            temp: Some(TempFile::create(&dir)?),
            store: self.clone(),
            hasher: Hasher::new(algorithm),
            written: 0,
            limit: expected_size,
        })
    }

    /// Stores everything `reader` yields and returns its digest and size. With `expected` the
    /// data must hash to it, with `expected_size` it must have that length; otherwise nothing is
    /// kept. A reader that fails midway leaves nothing either.
    pub fn put_blob(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<(Digest, u64), StoreError> {
        let algorithm = expected.map_or(DigestAlgorithm::Sha256, Digest::algorithm);
        let mut writer = self.blob_writer(algorithm, expected_size)?;
        let mut buf = vec![0u8; COPY_BUFFER];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(StoreError::Source { source }),
            };
            if let Some(limit) = expected_size {
                if writer.written() + n as u64 > limit {
                    return Err(StoreError::SizeMismatch {
                        expected: limit,
                        actual: writer.written() + n as u64,
                        exceeded: true,
                    });
                }
            }
            if let Err(source) = writer.write_all(&buf[..n]) {
                let path = writer
                    .temp
                    .as_ref()
                    .map_or_else(|| self.root().to_owned(), |t| t.path.clone());
                return Err(StoreError::Write { path, source });
            }
        }
        writer.commit(expected, expected_size)
    }

    /// Stores an in-memory blob (a manifest or config) and returns its digest.
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let expected = Digest::of(bytes);
        if self.verify_blob(&expected).is_ok() {
            return Ok(expected);
        }
        self.put_blob(bytes, Some(&expected), Some(bytes.len() as u64))
            .map(|(digest, _)| digest)
    }

    /// Whether a blob with this digest is present (not whether it is intact: see
    /// [`Store::verify_blob`]).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The size of a stored blob.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64, StoreError> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(meta.len()),
            Ok(_) => Err(StoreError::BlobNotFound {
                digest: digest.clone(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::BlobNotFound {
                digest: digest.clone(),
            }),
            Err(source) => Err(StoreError::Read { path, source }),
        }
    }

    /// Opens a blob for reading through a verifying reader.
    pub fn open_blob(&self, digest: &Digest) -> Result<BlobReader, StoreError> {
        let path = self.blob_path(digest);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::BlobNotFound {
                    digest: digest.clone(),
                })
            }
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        let size = file
            .metadata()
            .map_err(|source| StoreError::Read {
                path: path.clone(),
                source,
            })?
            .len();
        Ok(BlobReader {
            inner: VerifyingReader::new(BufReader::new(file), digest.clone(), None),
            path,
            size,
        })
    }

    /// Reads a whole blob into memory after checking it is at most `limit` bytes, and verifies
    /// it.
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, StoreError> {
        let size = self.blob_size(digest)?;
        if size > limit {
            return Err(StoreError::BlobTooLarge {
                digest: digest.clone(),
                size,
                limit,
            });
        }
        let mut reader = self.open_blob(digest)?;
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .by_ref()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| read_error(e, reader.path()))?;
        // Reach end of data so the reader verifies (read_to_end already did unless the file
        // grew past the limit since the size check).
        if bytes.len() as u64 > limit {
            return Err(StoreError::BlobTooLarge {
                digest: digest.clone(),
                size: bytes.len() as u64,
                limit,
            });
        }
        Ok(bytes)
    }

    /// Re-hashes a stored blob; `Err(CorruptBlob)` if it does not match its digest.
    pub fn verify_blob(&self, digest: &Digest) -> Result<u64, StoreError> {
        let mut reader = self.open_blob(digest)?;
        io::copy(&mut reader, &mut io::sink()).map_err(|e| read_error(e, reader.path()))
    }

    /// Deletes a blob (prune and repair only).
    pub(crate) fn remove_blob(&self, digest: &Digest) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Remove { path, source }),
        }
    }

    /// Every digest in `blobs/<alg>/`, plus names that are not digests (temporary files and
    /// strays), sorted.
    pub(crate) fn scan_blobs(&self) -> Result<BlobScan, StoreError> {
        let mut scan = BlobScan::default();
        for algorithm in DigestAlgorithm::all() {
            let dir = self.algorithm_dir(algorithm);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(StoreError::Read { path: dir, source }),
            };
            for entry in entries {
                let entry = entry.map_err(|source| StoreError::Read {
                    path: dir.clone(),
                    source,
                })?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(atomic::TEMP_PREFIX) {
                    scan.temp_files.push(entry.path());
                } else {
                    match Digest::from_parts(algorithm, &name) {
                        Ok(digest) => scan.blobs.push(digest),
                        Err(_) => scan.strays.push(entry.path()),
                    }
                }
            }
        }
        scan.blobs.sort();
        scan.temp_files.sort();
        scan.strays.sort();
        Ok(scan)
    }
}

/// What is in the blob directories.
#[derive(Debug, Default)]
pub(crate) struct BlobScan {
    pub(crate) blobs: Vec<Digest>,
    pub(crate) temp_files: Vec<PathBuf>,
    pub(crate) strays: Vec<PathBuf>,
}

/// Turns an error from a [`BlobReader`] back into the [`StoreError`] it carries.
pub(crate) fn read_error(error: io::Error, path: &Path) -> StoreError {
    if error.kind() == io::ErrorKind::InvalidData
        && error
            .get_ref()
            .is_some_and(|inner| inner.is::<StoreError>())
    {
        if let Some(Ok(store_error)) = error.into_inner().map(|e| e.downcast::<StoreError>()) {
            return *store_error;
        }
        return StoreError::Read {
            path: path.to_owned(),
            source: io::Error::from(io::ErrorKind::InvalidData),
        };
    }
    StoreError::Read {
        path: path.to_owned(),
        source: error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn put_and_read_back() {
        let (_dir, store) = store();
        let data = b"hello blob".to_vec();
        let (digest, size) = store.put_blob(&data[..], None, None).unwrap();
        assert_eq!(digest, Digest::of(&data));
        assert_eq!(size, 10);
        assert!(store.has_blob(&digest));
        assert_eq!(store.blob_size(&digest).unwrap(), 10);
        assert_eq!(store.read_blob(&digest, 100).unwrap(), data);
        let mut out = Vec::new();
        store
            .open_blob(&digest)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        assert_eq!(store.verify_blob(&digest).unwrap(), 10);
        assert!(matches!(
            store.read_blob(&digest, 5),
            Err(StoreError::BlobTooLarge { .. })
        ));
        // Same content again is fine and idempotent.
        store.put_blob(&data[..], Some(&digest), Some(10)).unwrap();
        assert_eq!(store.put_blob_bytes(&data).unwrap(), digest);
    }

    #[test]
    fn sha512_blobs() {
        let (_dir, store) = store();
        let expected = Digest::of_with(DigestAlgorithm::Sha512, b"x");
        let (digest, _) = store.put_blob(&b"x"[..], Some(&expected), None).unwrap();
        assert_eq!(digest, expected);
        assert!(store
            .blob_path(&digest)
            .starts_with(store.root().join("blobs/sha512")));
    }

    #[test]
    fn mismatches_keep_nothing() {
        let (_dir, store) = store();
        let wrong = Digest::of(b"other");
        assert!(matches!(
            store.put_blob(&b"data"[..], Some(&wrong), None),
            Err(StoreError::DigestMismatch { .. })
        ));
        assert!(matches!(
            store.put_blob(&b"data"[..], None, Some(3)),
            Err(StoreError::SizeMismatch { exceeded: true, .. })
        ));
        assert!(matches!(
            store.put_blob(&b"data"[..], None, Some(5)),
            Err(StoreError::SizeMismatch {
                exceeded: false,
                ..
            })
        ));
        let scan = store.scan_blobs().unwrap();
        assert!(
            scan.blobs.is_empty() && scan.temp_files.is_empty(),
            "{scan:?}"
        );
    }

    #[test]
    fn missing_blob_is_typed() {
        let (_dir, store) = store();
        let d = Digest::of(b"absent");
        assert!(!store.has_blob(&d));
        assert!(matches!(
            store.open_blob(&d),
            Err(StoreError::BlobNotFound { .. })
        ));
        assert!(matches!(
            store.blob_size(&d),
            Err(StoreError::BlobNotFound { .. })
        ));
    }

    #[test]
    fn corrupt_blob_fails_on_read() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, store) = store();
        let (digest, _) = store.put_blob(&b"original"[..], None, None).unwrap();
        let path = store.blob_path(&digest);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, b"tampered").unwrap();
        let err = store.read_blob(&digest, 100).unwrap_err();
        assert!(matches!(err, StoreError::CorruptBlob { .. }), "{err:?}");
        assert!(matches!(
            store.verify_blob(&digest),
            Err(StoreError::CorruptBlob { .. })
        ));
        let mut reader = store.open_blob(&digest).unwrap();
        let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("corrupt"), "{err}");
    }
}
