//! Where signatures come from: [`SignatureSource`], with implementations over a registry
//! ([`RegistrySource`]) and over Palisade's local signature cache ([`CachedSource`],
//! [`RecordingSource`]).
//!
//! A source is deliberately dumb: it hands back bytes. The verifier checks every manifest
//! and blob it asked for by digest against that digest, so a source (a registry, a cache
//! directory, the registry server's own storage) never has to be trusted.

use std::path::{Path, PathBuf};

use palisade_image::distribution::{DistributionError, RegistryClient};
use palisade_image::Digest;
use sha2::{Digest as _, Sha256};

use crate::error::TrustError;

/// Read access to one registry's manifests and blobs, for signature verification.
///
/// `repository` is the path within the registry (`team/app`); `reference` is a tag or a
/// digest (`sha256:...`). `Ok(None)` means "not there"; errors are for sources that could
/// not answer.
pub trait SignatureSource {
    /// The manifest (or index) bytes a tag or digest names.
    fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Vec<u8>>, TrustError>;

    /// The referrers API's image index for `subject`, or `None` when the source has no
    /// referrers API (then the verifier reads the referrers tag `sha256-<hex>`).
    fn referrers(&self, repository: &str, subject: &Digest) -> Result<Option<Vec<u8>>, TrustError>;

    /// A blob's bytes, at most `limit` of them.
    fn blob(
        &self,
        repository: &str,
        digest: &Digest,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, TrustError>;
}

/// A [`SignatureSource`] over a registry client.
#[derive(Debug)]
pub struct RegistrySource<'c> {
    pub(crate) client: &'c RegistryClient,
}

impl<'c> RegistrySource<'c> {
    /// Reads through `client`.
    pub fn new(client: &'c RegistryClient) -> Self {
        Self { client }
    }
}

fn source_error(error: DistributionError) -> TrustError {
    TrustError::Source(error.to_string())
}

impl SignatureSource for RegistrySource<'_> {
    fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Vec<u8>>, TrustError> {
        let expected = Digest::parse(reference).ok();
        match self
            .client
            .fetch_manifest(repository, reference, expected.as_ref())
        {
            Ok(fetched) => Ok(Some(fetched.bytes)),
            Err(DistributionError::ImageNotFound { .. }) => Ok(None),
            Err(e) => Err(source_error(e)),
        }
    }

    fn referrers(&self, repository: &str, subject: &Digest) -> Result<Option<Vec<u8>>, TrustError> {
        self.client
            .fetch_referrers(repository, subject, None)
            .map_err(source_error)
    }

    fn blob(
        &self,
        repository: &str,
        digest: &Digest,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, TrustError> {
        match self.client.fetch_blob_bytes(repository, digest, limit) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(DistributionError::BlobNotFound { .. }) => Ok(None),
            Err(e) => Err(source_error(e)),
        }
    }
}

/// The local signature cache: what a [`RecordingSource`] saw, read back without the network.
/// One file per answer, named by a hash of the question (so names carry no attacker text).
#[derive(Debug, Clone)]
pub struct CachedSource {
    dir: PathBuf,
}

impl CachedSource {
    /// The cache in `dir` (need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, kind: &str, repository: &str, reference: &str) -> PathBuf {
        let mut hasher = Sha256::new();
        for part in [kind, repository, reference] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        self.dir.join(hex::encode(hasher.finalize()))
    }

    fn read(&self, path: &Path, limit: u64) -> Result<Option<Vec<u8>>, TrustError> {
        match std::fs::metadata(path) {
            Ok(meta) if meta.len() > limit => Ok(None),
            Ok(_) => std::fs::read(path)
                .map(Some)
                .map_err(|e| TrustError::io(path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TrustError::io(path, e)),
        }
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), TrustError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| TrustError::io(&self.dir, e))?;
        let partial = path.with_extension(format!("partial-{}", std::process::id()));
        std::fs::write(&partial, bytes).map_err(|e| TrustError::io(&partial, e))?;
        std::fs::rename(&partial, path).map_err(|e| TrustError::io(path, e))
    }
}

/// The largest manifest or index the verifier reads.
pub(crate) const MANIFEST_LIMIT: u64 = 4 << 20;

impl SignatureSource for CachedSource {
    fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Vec<u8>>, TrustError> {
        self.read(
            &self.path("manifest", repository, reference),
            MANIFEST_LIMIT,
        )
    }

    fn referrers(&self, repository: &str, subject: &Digest) -> Result<Option<Vec<u8>>, TrustError> {
        self.read(
            &self.path("referrers", repository, &subject.to_string()),
            MANIFEST_LIMIT,
        )
    }

    fn blob(
        &self,
        repository: &str,
        digest: &Digest,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, TrustError> {
        self.read(&self.path("blob", repository, &digest.to_string()), limit)
    }
}

/// A source that answers from `inner` and keeps every answer in a [`CachedSource`], so a
/// later check of the same image works offline. A cache that cannot be written is logged,
/// never fatal.
#[derive(Debug)]
pub struct RecordingSource<'s, S: ?Sized> {
    inner: &'s S,
    cache: CachedSource,
}

impl<'s, S: SignatureSource + ?Sized> RecordingSource<'s, S> {
    /// Records `inner`'s answers into `cache`.
    pub fn new(inner: &'s S, cache: CachedSource) -> Self {
        Self { inner, cache }
    }

    fn keep(&self, path: PathBuf, answer: &Option<Vec<u8>>) {
        if let Some(bytes) = answer {
            if let Err(e) = self.cache.write(&path, bytes) {
                tracing::warn!(error = %e, "could not cache a signature document");
            }
        }
    }
}

impl<S: SignatureSource + ?Sized> SignatureSource for RecordingSource<'_, S> {
    fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Vec<u8>>, TrustError> {
        let answer = self.inner.manifest(repository, reference)?;
        self.keep(self.cache.path("manifest", repository, reference), &answer);
        Ok(answer)
    }

    fn referrers(&self, repository: &str, subject: &Digest) -> Result<Option<Vec<u8>>, TrustError> {
        let answer = self.inner.referrers(repository, subject)?;
        self.keep(
            self.cache
                .path("referrers", repository, &subject.to_string()),
            &answer,
        );
        Ok(answer)
    }

    fn blob(
        &self,
        repository: &str,
        digest: &Digest,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, TrustError> {
        let answer = self.inner.blob(repository, digest, limit)?;
        self.keep(
            self.cache.path("blob", repository, &digest.to_string()),
            &answer,
        );
        Ok(answer)
    }
}
