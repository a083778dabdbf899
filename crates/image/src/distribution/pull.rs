//! `pull`: a reference on a registry → manifest, config and layers in the store → a tag.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;

use oci_spec::image::ImageManifest;
use serde::Serialize;

use super::client::{FetchedManifest, RegistryClient};
use super::download::{download_blob, BlobTarget};
use super::error::DistributionError;
use super::parallel::run_concurrently;
use super::progress::{BlobKind, BlobOutcome, TransferProgress};
use super::ClientOptions;
use crate::digest::Digest;
use crate::manifest::{
    check_image_manifest, descriptor_digest, diff_ids, parse_config, select_platform,
    ManifestDocument, ManifestError, MAX_CONFIG_SIZE,
};
use crate::reference::ImageReference;
use crate::store::Store;

/// What a pull fetched and tagged.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    /// The reference tagged in the store.
    pub reference: ImageReference,
    /// The digest the reference now points at (an index's, for a multi-platform image).
    pub digest: Digest,
    /// The platform manifest's digest (equal to `digest` for a single-platform image).
    pub manifest_digest: Digest,
    /// The config's digest (the image id).
    pub config_digest: Digest,
    /// Every blob and what happened to it.
    pub blobs: Vec<PulledBlob>,
    /// Bytes that went over the wire for blobs.
    pub bytes_downloaded: u64,
}

/// One blob of a pull.
#[derive(Debug, Clone, Serialize)]
pub struct PulledBlob {
    /// Its digest.
    pub digest: Digest,
    /// Config or layer.
    pub kind: BlobKind,
    /// Its size.
    pub size: u64,
    /// What happened.
    #[serde(flatten)]
    pub outcome: BlobOutcome,
}

/// Pulls `reference` into `store`: the manifest (the options' platform from an index), the
/// config and the layers (up to `options.concurrency` at once; ones the store has are
/// skipped), each verified, and tags it last. On any error nothing is tagged; blobs already
/// verified stay in the store (prune collects them) and an interrupted download is resumed by
/// the next pull.
pub fn pull(
    store: &Store,
    reference: &ImageReference,
    options: &ClientOptions,
    progress: &dyn TransferProgress,
) -> Result<PullReport, DistributionError> {
    let client = RegistryClient::for_reference(reference, options)?;
    let repository = reference.path();
    // Keep prune from deleting the new blobs before the tag points at them.
    let _lease = store.lease()?;
    let wanted = match (reference.digest(), reference.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.to_owned(),
        (None, None) => crate::reference::DEFAULT_TAG.to_owned(),
    };
    let top = client.fetch_manifest(repository, &wanted, reference.digest())?;
    let document = parse_document(&client, &top, top.media_type.as_deref())?;
    // (digest, bytes) of manifests to store, children first.
    let mut manifests: Vec<(Digest, Vec<u8>)> = Vec::new();
    let (manifest_digest, manifest) = match document {
        ManifestDocument::Image(manifest) => (top.digest.clone(), *manifest),
        ManifestDocument::Index(index) => {
            let chosen = select_platform(&index, &options.platform).map_err(|source| {
                DistributionError::Manifest {
                    host: client.registry().to_owned(),
                    what: "index",
                    source,
                }
            })?;
            let digest =
                descriptor_digest(chosen).map_err(|source| DistributionError::Manifest {
                    host: client.registry().to_owned(),
                    what: "index",
                    source,
                })?;
            let child = client.fetch_manifest(repository, &digest.to_string(), Some(&digest))?;
            if child.bytes.len() as u64 != chosen.size() {
                return Err(DistributionError::SizeMismatch {
                    host: client.registry().to_owned(),
                    what: "manifest",
                    digest,
                    expected: chosen.size(),
                    actual: child.bytes.len() as u64,
                    exceeded: child.bytes.len() as u64 > chosen.size(),
                });
            }
            let described = chosen.media_type().to_string();
            let ManifestDocument::Image(manifest) =
                parse_document(&client, &child, Some(&described))?
            else {
                return Err(DistributionError::Manifest {
                    host: client.registry().to_owned(),
                    what: "index",
                    source: ManifestError::UnsupportedMediaType {
                        media_type: "nested index".to_owned(),
                    },
                });
            };
            manifests.push((child.digest.clone(), child.bytes));
            (child.digest, *manifest)
        }
    };
    manifests.push((top.digest.clone(), top.bytes));
    let invalid = |source| DistributionError::Manifest {
        host: client.registry().to_owned(),
        what: "manifest",
        source,
    };
    check_image_manifest(&manifest).map_err(invalid)?;

    // The config first: it is small and must agree with the manifest before layers are worth
    // fetching.
    let config_digest = descriptor_digest(manifest.config()).map_err(invalid)?;
    let config_size = manifest.config().size();
    if config_size > MAX_CONFIG_SIZE {
        return Err(invalid(ManifestError::TooLarge {
            size: config_size,
            limit: MAX_CONFIG_SIZE,
        }));
    }
    let never = AtomicBool::new(false);
    let config_target = BlobTarget {
        repository,
        digest: &config_digest,
        size: config_size,
        kind: BlobKind::Config,
    };
    let config_outcome = download_blob(&client, store, &config_target, progress, &never)
        .inspect_err(|e| progress.blob_failed(&config_digest, e))?
        .unwrap_or(BlobOutcome::AlreadyPresent);
    let config_bytes = store.read_blob(&config_digest, MAX_CONFIG_SIZE)?;
    let config = parse_config(&config_bytes).map_err(|source| DistributionError::Manifest {
        host: client.registry().to_owned(),
        what: "image config",
        source,
    })?;
    diff_ids(&manifest, &config).map_err(invalid)?;

    let layers = layer_targets(&manifest).map_err(invalid)?;
    let targets: Vec<BlobTarget<'_>> = layers
        .iter()
        .map(|(digest, size)| BlobTarget {
            repository,
            digest,
            size: *size,
            kind: BlobKind::Layer,
        })
        .collect();
    let outcomes = download_all(&client, store, &targets, options.concurrency, progress)?;

    for (digest, bytes) in &manifests {
        store.put_blob(&bytes[..], Some(digest), Some(bytes.len() as u64))?;
    }
    store.tag(reference, &top.digest)?;
    tracing::info!(reference = %reference, digest = %top.digest, "pulled");

    let mut blobs = vec![PulledBlob {
        digest: config_digest.clone(),
        kind: BlobKind::Config,
        size: config_size,
        outcome: config_outcome,
    }];
    for (target, outcome) in targets.iter().zip(outcomes) {
        blobs.push(PulledBlob {
            digest: target.digest.clone(),
            kind: BlobKind::Layer,
            size: target.size,
            outcome,
        });
    }
    let bytes_downloaded = blobs
        .iter()
        .map(|b| match b.outcome {
            BlobOutcome::Downloaded { resumed_from } => b.size - resumed_from.min(b.size),
            _ => 0,
        })
        .sum();
    Ok(PullReport {
        reference: reference.clone(),
        digest: top.digest,
        manifest_digest,
        config_digest,
        blobs,
        bytes_downloaded,
    })
}

fn parse_document(
    client: &RegistryClient,
    fetched: &FetchedManifest,
    described_as: Option<&str>,
) -> Result<ManifestDocument, DistributionError> {
    ManifestDocument::parse(&fetched.bytes, described_as).map_err(|source| {
        DistributionError::Manifest {
            host: client.registry().to_owned(),
            what: "manifest",
            source,
        }
    })
}

/// Each distinct layer once, in manifest order.
fn layer_targets(manifest: &ImageManifest) -> Result<Vec<(Digest, u64)>, ManifestError> {
    let mut seen = BTreeSet::new();
    let mut layers = Vec::new();
    for layer in manifest.layers() {
        let digest = descriptor_digest(layer)?;
        if seen.insert(digest.clone()) {
            layers.push((digest, layer.size()));
        }
    }
    Ok(layers)
}

/// Downloads `targets`, up to `concurrency` at once; the first failure stops the others
/// (their partial downloads are kept for the next pull).
fn download_all(
    client: &RegistryClient,
    store: &Store,
    targets: &[BlobTarget<'_>],
    concurrency: usize,
    progress: &dyn TransferProgress,
) -> Result<Vec<BlobOutcome>, DistributionError> {
    run_concurrently(targets, concurrency, |target, cancel| {
        download_blob(client, store, target, progress, cancel)
            .inspect_err(|error| progress.blob_failed(target.digest, error))
    })
}
