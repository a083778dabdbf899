//! Scan on push: a background queue hands each pushed manifest to a [`Scanner`] and stores the
//! verdict beside the content (`<root>/verdicts/<alg>/<hex>.json`); [`ScanGate`] turns stored
//! verdicts into pull decisions. The vulnerability scanner crate implements [`Scanner`]; the
//! registry only runs it.

use std::path::PathBuf;
use std::sync::Arc;

use palisade_image::digest::Digest;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::gate::{Gate, GateContext, GateVerdict, RegistryView};
use crate::name::RepositoryName;

/// The outcome of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanVerdict {
    /// Within the vulnerability policy.
    pub passed: bool,
    /// One line for humans (`"2 critical: CVE-…"`), shown in a denied pull's error.
    pub summary: String,
    /// Which scanner (and advisory database revision) produced it.
    pub scanner: String,
}

/// A vulnerability scanner.
pub trait Scanner: Send + Sync + 'static {
    /// Scans the manifest `digest` of `repository`, reading content through `view`. An `Err`
    /// is recorded as a failed verdict (fail closed).
    fn scan(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        view: &dyn RegistryView,
    ) -> Result<ScanVerdict, String>;

    /// A fingerprint of what verdicts depend on besides the image (the advisory database);
    /// when it changes, the server rescans every stored manifest. `None`: never rescan.
    fn database_version(&self) -> Option<String> {
        None
    }
}

/// Stored verdicts.
#[derive(Debug, Clone)]
pub struct VerdictStore {
    root: PathBuf,
}

impl VerdictStore {
    /// Verdicts under `<storage root>/verdicts`.
    pub fn new(storage_root: impl Into<PathBuf>) -> Self {
        Self {
            root: storage_root.into().join("verdicts"),
        }
    }

    fn path(&self, d: &Digest) -> PathBuf {
        self.root
            .join(d.algorithm().name())
            .join(format!("{}.json", d.hex()))
    }

    /// The verdict for `d`, if scanned.
    pub fn get(&self, d: &Digest) -> Option<ScanVerdict> {
        serde_json::from_slice(&std::fs::read(self.path(d)).ok()?).ok()
    }

    /// Records a verdict (atomically).
    pub fn put(&self, d: &Digest, v: &ScanVerdict) -> std::io::Result<()> {
        let p = self.path(d);
        let dir = p
            .parent()
            .ok_or_else(|| std::io::Error::other("no parent"))?;
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".tmp-{}", hex::encode(rand::random::<[u8; 8]>())));
        std::fs::write(&tmp, serde_json::to_vec(v).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, p)
    }
}

/// Called after each stored verdict.
pub type OnVerdict = Arc<dyn Fn(&RepositoryName, &Digest, &ScanVerdict) + Send + Sync>;

/// The background scan queue.
#[derive(Debug, Clone)]
pub struct ScanQueue {
    tx: mpsc::UnboundedSender<(RepositoryName, Digest)>,
}

impl ScanQueue {
    /// Starts the worker on the current tokio runtime; `on_verdict` runs after each stored
    /// verdict (the server uses it to drop cached gate decisions).
    pub fn start(
        scanner: Arc<dyn Scanner>,
        view: Arc<dyn RegistryView>,
        store: VerdictStore,
        on_verdict: OnVerdict,
    ) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(RepositoryName, Digest)>();
        tokio::spawn(async move {
            while let Some((repo, d)) = rx.recv().await {
                let (scanner, view, store, cb) = (
                    Arc::clone(&scanner),
                    Arc::clone(&view),
                    store.clone(),
                    Arc::clone(&on_verdict),
                );
                let r = tokio::task::spawn_blocking(move || {
                    let v = scanner.scan(&repo, &d, &*view).unwrap_or_else(|e| ScanVerdict {
                        passed: false,
                        summary: format!("scan failed: {e}"),
                        scanner: "error".into(),
                    });
                    if let Err(e) = store.put(&d, &v) {
                        tracing::error!(manifest = %d, error = %e, "storing the scan verdict failed");
                    }
                    tracing::info!(target: "palisade_registry::audit", repository = %repo, manifest = %d, passed = v.passed, summary = %v.summary, "scan verdict");
                    cb(&repo, &d, &v);
                })
                .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, "scan task failed");
                }
            }
        });
        Self { tx }
    }

    /// Queues a manifest for scanning (pushes, and rescans when the advisory database changes).
    pub fn enqueue(&self, repository: RepositoryName, digest: Digest) {
        let _ = self.tx.send((repository, digest));
    }
}

/// Denies manifests without a passing stored verdict.
#[derive(Debug, Clone)]
pub struct ScanGate {
    store: VerdictStore,
}

impl ScanGate {
    /// A gate over `store`.
    pub fn new(store: VerdictStore) -> Self {
        Self { store }
    }
}

impl Gate for ScanGate {
    fn name(&self) -> &str {
        "scan"
    }

    fn check(&self, ctx: &GateContext<'_>) -> GateVerdict {
        match self.store.get(ctx.digest) {
            Some(v) if v.passed => GateVerdict::Allow,
            Some(v) => GateVerdict::Deny {
                reason: format!("vulnerability policy failed: {}", v.summary),
            },
            None => GateVerdict::Deny {
                reason: "not scanned yet; retry after the scan finishes".into(),
            },
        }
    }
}
