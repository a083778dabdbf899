//! Garbage collection: deleting blobs no tag reaches, and removing images.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{atomic, Store, StoreError};
use crate::digest::Digest;
use crate::manifest::{descriptor_digest, ManifestDocument, MAX_MANIFEST_SIZE};
use crate::media_types::MediaKind;
use crate::reference::ImageReference;

/// What a prune deleted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// The blobs deleted.
    pub removed_blobs: Vec<Digest>,
    /// Their total size.
    pub bytes_freed: u64,
    /// Temporary files left by interrupted writes, deleted.
    pub removed_temp_files: usize,
}

/// What removing an image did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RemoveReport {
    /// The references untagged.
    pub untagged: Vec<ImageReference>,
    /// The prune that followed.
    pub pruned: PruneReport,
}

impl Store {
    /// Every blob reachable from `index.json`: each entry's manifest, its config and layers,
    /// and for an index the manifests it lists that are present, recursively. A manifest that
    /// is present but corrupt or unparsable is an error: deleting "its" blobs blindly could
    /// delete an image that is still wanted.
    pub(crate) fn reachable(&self) -> Result<BTreeSet<Digest>, StoreError> {
        let index = self.read_index()?;
        let mut seen = BTreeSet::new();
        let mut pending: Vec<(Digest, String)> = index
            .manifests
            .into_iter()
            .map(|e| (e.digest, e.media_type))
            .collect();
        while let Some((digest, media_type)) = pending.pop() {
            if !seen.insert(digest.clone()) {
                continue;
            }
            let kind = MediaKind::of(&media_type);
            if !matches!(kind, MediaKind::Manifest | MediaKind::Index) || !self.has_blob(&digest) {
                continue;
            }
            let bytes = self.read_blob(&digest, MAX_MANIFEST_SIZE)?;
            let document =
                ManifestDocument::parse(&bytes, Some(&media_type)).map_err(|source| {
                    StoreError::Manifest {
                        digest: digest.clone(),
                        source,
                    }
                })?;
            for child in document.children() {
                let child_digest =
                    descriptor_digest(child).map_err(|source| StoreError::Manifest {
                        digest: digest.clone(),
                        source,
                    })?;
                pending.push((child_digest, child.media_type().to_string()));
            }
        }
        Ok(seen)
    }

    /// Deletes every blob that no tag reaches and every stale temporary file, and reports what
    /// it freed. Waits for running imports/loads (holders of [`Store::lease`]) to finish.
    pub fn prune(&self) -> Result<PruneReport, StoreError> {
        let _collection = self.lock_collection()?;
        let _metadata = self.lock_metadata()?;
        let reachable = self.reachable()?;
        let scan = self.scan_blobs()?;
        let mut report = PruneReport::default();
        for digest in scan.blobs {
            if reachable.contains(&digest) {
                continue;
            }
            let size = self.blob_size(&digest).unwrap_or(0);
            self.remove_blob(&digest)?;
            tracing::debug!(%digest, size, "pruned blob");
            report.bytes_freed += size;
            report.removed_blobs.push(digest);
        }
        for path in scan.temp_files {
            if atomic::is_stale_temp(&path) {
                if let Ok(meta) = std::fs::metadata(&path) {
                    report.bytes_freed += meta.len();
                }
                std::fs::remove_file(&path).map_err(|source| StoreError::Remove {
                    path: path.clone(),
                    source,
                })?;
                report.removed_temp_files += 1;
            }
        }
        for algorithm in crate::digest::DigestAlgorithm::all() {
            let dir = self.algorithm_dir(algorithm);
            if dir.is_dir() {
                atomic::sync_dir(&dir)?;
            }
        }
        Ok(report)
    }

    /// Untags `reference` and prunes what that leaves unreachable. A missing image is an error.
    pub fn remove_image(&self, reference: &ImageReference) -> Result<RemoveReport, StoreError> {
        if !self.untag(reference)? {
            return Err(StoreError::ImageNotFound {
                reference: Box::new(reference.clone()),
            });
        }
        Ok(RemoveReport {
            untagged: vec![reference.clone()],
            pruned: self.prune()?,
        })
    }

    /// Removes every tag pointing at manifest `digest`, then prunes.
    pub fn remove_image_by_digest(&self, digest: &Digest) -> Result<RemoveReport, StoreError> {
        let untagged = self.untag_digest(digest)?;
        if untagged.is_empty() {
            return Err(StoreError::BlobNotFound {
                digest: digest.clone(),
            });
        }
        Ok(RemoveReport {
            untagged,
            pruned: self.prune()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_types;

    #[test]
    fn prune_keeps_reachable_and_frees_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let layer = store.put_blob_bytes(b"layer").unwrap();
        let config = store.put_blob_bytes(b"{}").unwrap();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":2,"digest":"{config}"}},"layers":[{{"mediaType":"{}","size":5,"digest":"{layer}"}}]}}"#,
            media_types::OCI_MANIFEST,
            media_types::OCI_CONFIG,
            media_types::OCI_LAYER_GZIP
        );
        let manifest = store.put_blob_bytes(manifest.as_bytes()).unwrap();
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","size":1,"digest":"{manifest}"}},{{"mediaType":"{}","size":1,"digest":"{}"}}]}}"#,
            media_types::OCI_INDEX,
            media_types::OCI_MANIFEST,
            media_types::OCI_MANIFEST,
            Digest::of(b"absent platform")
        );
        let index = store.put_blob_bytes(index.as_bytes()).unwrap();
        let garbage = store.put_blob_bytes(b"garbage!").unwrap();
        let name = ImageReference::parse("multi").unwrap();
        store.tag(&name, &index).unwrap();
        let report = store.prune().unwrap();
        assert_eq!(report.removed_blobs, vec![garbage]);
        assert_eq!(report.bytes_freed, 8);
        for kept in [&layer, &config, &manifest, &index] {
            assert!(store.has_blob(kept));
        }
        let removed = store.remove_image(&name).unwrap();
        assert_eq!(removed.pruned.removed_blobs.len(), 4);
        assert!(store.scan_blobs().unwrap().blobs.is_empty());
        assert!(matches!(
            store.remove_image(&name),
            Err(StoreError::ImageNotFound { .. })
        ));
    }

    #[test]
    fn prune_removes_stale_temp_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let live = store
            .blob_writer(crate::digest::DigestAlgorithm::Sha256, None)
            .unwrap();
        let stale = store
            .algorithm_dir(crate::digest::DigestAlgorithm::Sha256)
            .join(".tmp-crashed");
        std::fs::write(&stale, b"half a blob").unwrap();
        let report = store.prune().unwrap();
        assert_eq!(report.removed_temp_files, 1);
        assert!(!stale.exists());
        assert_eq!(store.scan_blobs().unwrap().temp_files.len(), 1);
        drop(live);
        assert!(store.scan_blobs().unwrap().temp_files.is_empty());
    }
}
