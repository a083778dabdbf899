//! [`MemoryRegistry`]: a registry in memory that is both a [`SignatureSource`] and a
//! [`SignatureSink`], with or without the referrers API. For tests, and as the model of what a
//! registry's own storage implements.

use std::collections::BTreeMap;
use std::sync::Mutex;

use palisade_image::Digest;

use crate::error::TrustError;
use crate::formats::{Descriptor, Index, Manifest, OCI_INDEX};
use crate::sign::SignatureSink;
use crate::source::SignatureSource;

/// (repository, tag or digest) → (media type, bytes).
type Manifests = BTreeMap<(String, String), (String, Vec<u8>)>;

/// Manifests by (repository, tag or digest) and blobs by (repository, digest).
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    referrers_api: bool,
    manifests: Mutex<Manifests>,
    blobs: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl MemoryRegistry {
    /// An empty registry; `referrers_api` says whether it answers the referrers API.
    pub fn new(referrers_api: bool) -> Self {
        Self {
            referrers_api,
            ..Self::default()
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores an image manifest by digest (and `tag`); returns its digest.
    pub fn add_image(&self, repository: &str, tag: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::of(bytes);
        let mut manifests = Self::lock(&self.manifests);
        let value = (crate::formats::OCI_MANIFEST.to_owned(), bytes.to_vec());
        manifests.insert((repository.into(), digest.to_string()), value.clone());
        manifests.insert((repository.into(), tag.into()), value);
        digest
    }

    /// Replaces what a manifest reference holds (tests that tamper).
    pub fn set_manifest(&self, repository: &str, reference: &str, bytes: Vec<u8>) {
        let mut manifests = Self::lock(&self.manifests);
        let media_type = manifests
            .get(&(repository.to_owned(), reference.to_owned()))
            .map(|(m, _)| m.clone())
            .unwrap_or_default();
        manifests.insert((repository.into(), reference.into()), (media_type, bytes));
    }

    /// Replaces a blob's bytes (tests that tamper).
    pub fn set_blob(&self, repository: &str, digest: &str, bytes: Vec<u8>) {
        Self::lock(&self.blobs).insert((repository.into(), digest.into()), bytes);
    }

    /// A manifest's bytes.
    pub fn get_manifest(&self, repository: &str, reference: &str) -> Option<Vec<u8>> {
        Self::lock(&self.manifests)
            .get(&(repository.to_owned(), reference.to_owned()))
            .map(|(_, b)| b.clone())
    }

    /// A blob's bytes.
    pub fn get_blob(&self, repository: &str, digest: &str) -> Option<Vec<u8>> {
        Self::lock(&self.blobs)
            .get(&(repository.to_owned(), digest.to_owned()))
            .cloned()
    }
}

impl SignatureSource for MemoryRegistry {
    fn manifest(&self, repository: &str, reference: &str) -> Result<Option<Vec<u8>>, TrustError> {
        Ok(self.get_manifest(repository, reference))
    }

    fn referrers(&self, repository: &str, subject: &Digest) -> Result<Option<Vec<u8>>, TrustError> {
        if !self.referrers_api {
            return Ok(None);
        }
        let manifests = Self::lock(&self.manifests);
        let mut index = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_owned()),
            manifests: Vec::new(),
        };
        for ((repo, reference), (media_type, bytes)) in manifests.iter() {
            if repo != repository || Digest::parse(reference).is_err() {
                continue;
            }
            let Ok(manifest) = serde_json::from_slice::<Manifest>(bytes) else {
                continue;
            };
            if manifest.subject.as_ref().map(|s| s.digest.as_str())
                == Some(subject.to_string().as_str())
            {
                let mut entry = Descriptor::of(media_type, bytes);
                entry.artifact_type = manifest.artifact_type.clone();
                entry.annotations = manifest.annotations.clone();
                index.manifests.push(entry);
            }
        }
        serde_json::to_vec(&index)
            .map(Some)
            .map_err(|e| TrustError::Source(e.to_string()))
    }

    fn blob(
        &self,
        repository: &str,
        digest: &Digest,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, TrustError> {
        Ok(self
            .get_blob(repository, &digest.to_string())
            .filter(|b| b.len() as u64 <= limit))
    }
}

impl SignatureSink for MemoryRegistry {
    fn push_blob(&self, repository: &str, bytes: &[u8]) -> Result<Digest, TrustError> {
        let digest = Digest::of(bytes);
        self.set_blob(repository, &digest.to_string(), bytes.to_vec());
        Ok(digest)
    }

    fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<bool, TrustError> {
        let mut manifests = Self::lock(&self.manifests);
        let value = (media_type.to_owned(), bytes.to_vec());
        manifests.insert(
            (repository.into(), Digest::of(bytes).to_string()),
            value.clone(),
        );
        manifests.insert((repository.into(), reference.into()), value);
        Ok(self.referrers_api)
    }
}
