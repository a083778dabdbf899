//! Online garbage collection and repository deletion.
//!
//! Mark: every manifest linked in any repository, the blobs and child manifests it references,
//! and anything written within the grace period (uploads whose manifest is not pushed yet).
//! Sweep: blob links no manifest of their repository references (older than the grace period)
//! are removed, then blobs nothing references are deleted. Pushes that link content (upload
//! commit, mount, manifest put) hold the GC lock shared; the collection holds it exclusively,
//! so no push can link a blob between its mark and its sweep.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use palisade_image::digest::Digest;

use super::Registry;
use crate::error::{internal, ApiError};
use crate::name::RepositoryName;
use crate::storage::{LinkKind, Storage};

/// What a collection did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub deleted_blobs: usize,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Repository blob links removed.
    pub removed_links: usize,
}

impl<S: Storage> Registry<S> {
    /// Collects unreferenced blobs written more than `grace` ago, while the registry serves.
    pub async fn garbage_collect(&self, grace: Duration) -> Result<GcReport, ApiError> {
        let _exclusive = self.gc_lock.write().await;
        let now = SystemTime::now();
        let old = |t: SystemTime| now.duration_since(t).is_ok_and(|age| age > grace);
        let blobs = self.storage.blob_list().await.map_err(internal)?;
        let recent: HashSet<Digest> = blobs
            .iter()
            .filter(|(_, _, t)| !old(*t))
            .map(|(d, _, _)| d.clone())
            .collect();
        let mut keep: HashSet<Digest> = recent.clone();
        let mut report = GcReport::default();
        for r in self.storage.repositories().await.map_err(internal)? {
            let Ok(repo) = RepositoryName::parse(&r) else {
                continue;
            };
            let mut used_here: HashSet<Digest> = HashSet::new();
            for m in self
                .storage
                .links(&repo, LinkKind::Manifest)
                .await
                .map_err(internal)?
            {
                keep.insert(m.clone());
                if let Some(stored) = self.load_manifest(&m).await? {
                    used_here.extend(stored.parsed.blobs.iter().cloned());
                    keep.extend(stored.parsed.manifests.iter().cloned());
                }
            }
            for b in self
                .storage
                .links(&repo, LinkKind::Blob)
                .await
                .map_err(internal)?
            {
                if used_here.contains(&b) || recent.contains(&b) {
                    keep.insert(b);
                } else if self
                    .storage
                    .unlink(&repo, LinkKind::Blob, &b)
                    .await
                    .map_err(internal)?
                {
                    report.removed_links += 1;
                }
            }
            keep.extend(used_here);
            self.quota_forget(&repo);
        }
        for (d, size, _) in blobs {
            if !keep.contains(&d) {
                self.storage.blob_delete(&d).await.map_err(internal)?;
                report.deleted_blobs += 1;
                report.freed_bytes += size;
            }
        }
        self.metrics.gc_deleted.fetch_add(
            report.deleted_blobs as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        tracing::info!(target: "palisade_registry::audit", deleted = report.deleted_blobs, freed = report.freed_bytes,
            unlinked = report.removed_links, "garbage collection");
        Ok(report)
    }

    /// Deletes a repository: its tags, links and referrers (its content goes at the next
    /// garbage collection). `false` when it did not exist.
    pub async fn delete_repository(&self, repo: &RepositoryName) -> Result<bool, ApiError> {
        let _exclusive = self.gc_lock.write().await;
        let existed = self
            .storage
            .repository_delete(repo)
            .await
            .map_err(internal)?;
        self.quota_forget(repo);
        tracing::info!(target: "palisade_registry::audit", repository = %repo, existed, "repository deleted");
        Ok(existed)
    }
}
