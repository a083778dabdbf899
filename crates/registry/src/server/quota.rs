//! Byte quotas per namespace (the first path component of a repository name).
//!
//! Usage is the sum of the sizes of the blobs and manifests linked into the namespace's
//! repositories, computed from storage on first use and then kept up to date as content is
//! linked; a deletion drops the cached figure so it is recomputed. Content linked into two
//! repositories of one namespace counts twice (conservative).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use palisade_image::digest::Digest;

use super::Registry;
use crate::error::{internal, ApiError, ErrorCode};
use crate::name::RepositoryName;
use crate::storage::{LinkKind, Storage};

/// Quotas and cached usage.
#[derive(Debug, Default)]
pub(super) struct Quotas {
    limits: RwLock<Arc<BTreeMap<String, u64>>>,
    usage: Mutex<HashMap<String, u64>>,
}

impl<S: Storage> Registry<S> {
    /// Sets the byte quota per namespace (at start and on reload).
    pub fn with_quotas(self, quotas: BTreeMap<String, u64>) -> Self {
        self.set_quotas(quotas);
        self
    }

    /// Replaces the quotas.
    pub fn set_quotas(&self, quotas: BTreeMap<String, u64>) {
        if let Ok(mut l) = self.quotas.limits.write() {
            *l = Arc::new(quotas);
        }
    }

    fn quota_of(&self, ns: &str) -> Option<u64> {
        self.quotas.limits.read().ok()?.get(ns).copied()
    }

    async fn namespace_usage(&self, ns: &str) -> Result<u64, ApiError> {
        if let Some(u) = self
            .quotas
            .usage
            .lock()
            .ok()
            .and_then(|m| m.get(ns).copied())
        {
            return Ok(u);
        }
        let mut total = 0u64;
        for r in self.storage.repositories().await.map_err(internal)? {
            let Ok(repo) = RepositoryName::parse(&r) else {
                continue;
            };
            if repo.namespace() != ns {
                continue;
            }
            for kind in [LinkKind::Blob, LinkKind::Manifest] {
                for d in self.storage.links(&repo, kind).await.map_err(internal)? {
                    total += self
                        .storage
                        .blob_size(&d)
                        .await
                        .map_err(internal)?
                        .unwrap_or(0);
                }
            }
        }
        if let Ok(mut m) = self.quotas.usage.lock() {
            m.insert(ns.to_owned(), total);
        }
        Ok(total)
    }

    /// Refuses adding `size` bytes to `repo`'s namespace when that would pass its quota.
    pub(super) async fn quota_check(
        &self,
        repo: &RepositoryName,
        size: u64,
    ) -> Result<(), ApiError> {
        let ns = repo.namespace();
        let Some(limit) = self.quota_of(ns) else {
            return Ok(());
        };
        let used = self.namespace_usage(ns).await?;
        if used.saturating_add(size) > limit {
            return Err(ApiError::new(
                ErrorCode::Denied,
                format!(
                    "quota exceeded for namespace {ns}: {used} bytes used + {size} > {limit}; delete images or raise quotas.{ns}"
                ),
            ));
        }
        Ok(())
    }

    /// Records `size` more bytes linked into `repo` (when `d` was not linked there before).
    pub(super) fn quota_add(&self, repo: &RepositoryName, _d: &Digest, size: u64) {
        if let Ok(mut m) = self.quotas.usage.lock() {
            if let Some(u) = m.get_mut(repo.namespace()) {
                *u += size;
            }
        }
    }

    /// Forgets cached usage of `repo`'s namespace (after deletions).
    pub(super) fn quota_forget(&self, repo: &RepositoryName) {
        if let Ok(mut m) = self.quotas.usage.lock() {
            m.remove(repo.namespace());
        }
    }
}
