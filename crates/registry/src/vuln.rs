//! The vulnerability [`Scanner`] behind scan on push: `palisade-scan` over the pushed
//! manifest's layers, read through the registry's [`RegistryView`].
//!
//! The advisory database is opened for every scan, so a rebuilt database is used from the next
//! scan on, and the verdict names the database build it was made with.

use std::path::{Path, PathBuf};

use palisade_image::digest::Digest;
use palisade_image::media_types::LayerCompression;
use palisade_scan::db::Database;
use palisade_scan::inventory;
use palisade_scan::policy::VulnPolicy;
use serde::Deserialize;

use crate::gate::RegistryView;
use crate::name::RepositoryName;
use crate::scan::{ScanVerdict, Scanner};

/// The largest layer blob scanned, unless configured otherwise (a larger layer fails the scan).
pub const DEFAULT_MAX_LAYER_BYTES: u64 = 1 << 30;

/// Why the scanner could not be built.
#[derive(Debug, thiserror::Error)]
pub enum VulnScannerError {
    /// The advisory database.
    #[error("scan: advisory database {path}: {message}")]
    Database { path: PathBuf, message: String },
    /// The vulnerability policy.
    #[error("scan: vulnerability policy: {0}")]
    Policy(String),
}

/// Scans pushed images with `palisade-scan`.
#[derive(Debug)]
pub struct VulnScanner {
    database: PathBuf,
    policy: VulnPolicy,
    max_layer_bytes: u64,
}

impl VulnScanner {
    /// Checks that the database at `database` opens and loads the policy at `policy`.
    pub fn load(
        database: &Path,
        policy: &Path,
        max_layer_bytes: u64,
    ) -> Result<Self, VulnScannerError> {
        Database::open(database).map_err(|e| VulnScannerError::Database {
            path: database.to_owned(),
            message: e.to_string(),
        })?;
        let policy =
            VulnPolicy::load(policy).map_err(|e| VulnScannerError::Policy(e.to_string()))?;
        Ok(Self::new(database, policy, max_layer_bytes))
    }

    /// A scanner with an already loaded policy.
    pub fn new(database: &Path, policy: VulnPolicy, max_layer_bytes: u64) -> Self {
        Self {
            database: database.to_owned(),
            policy,
            max_layer_bytes,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest {
    #[serde(default)]
    layers: Vec<LayerRef>,
    #[serde(default)]
    manifests: Vec<LayerRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayerRef {
    media_type: String,
    digest: String,
}

impl Scanner for VulnScanner {
    fn scan(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        view: &dyn RegistryView,
    ) -> Result<ScanVerdict, String> {
        self.scan_manifest(repository, digest, view)
    }

    /// The database file's size and modification time: `palisade db import` rewrites it.
    fn database_version(&self) -> Option<String> {
        let m = std::fs::metadata(&self.database).ok()?;
        let modified = m
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(format!("{}:{}", m.len(), modified.as_nanos()))
    }
}

impl VulnScanner {
    fn scan_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        view: &dyn RegistryView,
    ) -> Result<ScanVerdict, String> {
        let bytes = view
            .manifest(repository, digest)
            .ok_or_else(|| format!("manifest {digest} is not readable"))?;
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| format!("manifest {digest}: {e}"))?;
        let db = Database::open(&self.database)
            .map_err(|e| format!("advisory database {}: {e}", self.database.display()))?;
        let scanner = format!("palisade-scan (database built {})", db.meta().built);
        if !manifest.manifests.is_empty() {
            // An index: its platform manifests are pushed (and scanned) on their own.
            return Ok(ScanVerdict {
                passed: true,
                summary: format!(
                    "image index: its {} manifests are scanned one by one",
                    manifest.manifests.len()
                ),
                scanner,
            });
        }
        let mut blobs = Vec::new();
        for layer in &manifest.layers {
            // Non-filesystem layers (signature payloads, artifacts) hold no packages.
            let Some(compression) = LayerCompression::of_media_type(&layer.media_type) else {
                continue;
            };
            let d = Digest::parse(&layer.digest)
                .map_err(|e| format!("layer digest {:?}: {e}", layer.digest))?;
            let blob = view
                .blob(repository, &d, self.max_layer_bytes)
                .ok_or_else(|| {
                    format!(
                        "layer {d} is missing or larger than the scan limit of {} bytes",
                        self.max_layer_bytes
                    )
                })?;
            blobs.push((compression, blob));
        }
        let readers = blobs
            .iter()
            .map(|(c, b)| inventory::decompress(*c, &b[..]))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("decompressing a layer: {e}"))?;
        let inv = inventory::scan_layers(readers).map_err(|e| format!("reading layers: {e}"))?;
        let mut report = db
            .match_inventory(&inv)
            .map_err(|e| format!("matching advisories: {e}"))?;
        report.target = format!("{repository}@{digest}");
        let verdict = self.policy.evaluate(&report);
        Ok(ScanVerdict {
            passed: verdict.allowed,
            summary: verdict.message(),
            scanner,
        })
    }
}
