//! `push`: an image in the store → blobs and manifest on a registry.
//!
//! Per blob: `HEAD` first (skip what the destination has), then a cross-repository mount
//! (`POST /v2/<dest>/blobs/uploads/?mount=<digest>&from=<repo>`) from any repository of the
//! same registry that a local tag says holds the blob, then an upload: one `PUT` for blobs up
//! to [`ClientOptions::monolithic_upload_limit`], `PATCH` chunks with `Content-Range`
//! otherwise. Blobs are read from the store through its verifying reader, so a blob corrupted
//! on local disk fails the push instead of being published. The manifest goes last, by tag.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use ureq::http::Method;

use super::challenge::Scope;
use super::client::{header, percent_encode, RegistryClient, RegistryRequest, RequestBody};
use super::error::DistributionError;
use super::parallel::run_concurrently;
use super::progress::{BlobKind, BlobOutcome, TransferProgress};
use super::ClientOptions;
use crate::digest::Digest;
use crate::manifest::{descriptor_digest, select_platform, ManifestDocument, MAX_MANIFEST_SIZE};
use crate::media_types::MediaKind;
use crate::reference::ImageReference;
use crate::store::{BlobReader, Store, StoreError};

/// Mount sources tried per blob.
const MAX_MOUNT_SOURCES: usize = 3;

/// What a push sent.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// Where the image went.
    pub destination: ImageReference,
    /// The digest the destination tag now points at.
    pub digest: Digest,
    /// Every blob and what happened to it.
    pub blobs: Vec<PushedBlob>,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
}

/// One blob of a push.
#[derive(Debug, Clone, Serialize)]
pub struct PushedBlob {
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

/// A stored manifest to push.
struct LocalManifest {
    digest: Digest,
    bytes: Vec<u8>,
    media_type: String,
}

struct BlobJob {
    digest: Digest,
    size: u64,
    kind: BlobKind,
    mount_from: Vec<String>,
}

/// Pushes the image `source` names in `store` to `destination`. A multi-platform image is
/// pushed whole when the store has every platform's manifest, otherwise only the options'
/// platform is (under the destination tag).
pub fn push(
    store: &Store,
    source: &ImageReference,
    destination: &ImageReference,
    options: &ClientOptions,
    progress: &dyn TransferProgress,
) -> Result<PushReport, DistributionError> {
    // Keep prune away while the blobs are read.
    let _lease = store.lease()?;
    let top_digest = store.resolve_required(source)?;
    let top = read_manifest(store, &top_digest)?;
    let (images, tagged) = match parse(&top)? {
        ManifestDocument::Image(_) => (vec![top], None),
        ManifestDocument::Index(index) => {
            let mut children = Vec::new();
            let mut missing = false;
            for descriptor in index.manifests() {
                let digest =
                    descriptor_digest(descriptor).map_err(|source| StoreError::Manifest {
                        digest: top.digest.clone(),
                        source,
                    })?;
                if !store.has_blob(&digest) {
                    missing = true;
                    continue;
                }
                if MediaKind::of(descriptor.media_type().as_ref()) == MediaKind::Manifest {
                    children.push(read_manifest(store, &digest)?);
                }
            }
            if missing {
                let chosen = select_platform(&index, &options.platform).map_err(|source| {
                    StoreError::Manifest {
                        digest: top.digest.clone(),
                        source,
                    }
                })?;
                let digest = descriptor_digest(chosen).map_err(|source| StoreError::Manifest {
                    digest: top.digest.clone(),
                    source,
                })?;
                tracing::warn!(
                    index = %top.digest,
                    manifest = %digest,
                    "the store lacks some platforms of this index; pushing {} only",
                    options.platform
                );
                (vec![read_manifest(store, &digest)?], None)
            } else {
                (children, Some(top))
            }
        }
    };
    let pushed_digest = tagged
        .as_ref()
        .map_or_else(|| images[0].digest.clone(), |t| t.digest.clone());
    if let Some(pinned) = destination.digest() {
        if *pinned != pushed_digest {
            return Err(DistributionError::Destination {
                destination: destination.to_string(),
                reason: format!("it pins {pinned} but the image is {pushed_digest}"),
            });
        }
    }

    let jobs = blob_jobs(store, &images, destination)?;
    let client = RegistryClient::for_reference(destination, options)?;
    let repository = destination.path();
    client.authorize(&[Scope::push(repository)])?;
    let outcomes = run_concurrently(&jobs, options.concurrency, |job, cancel| {
        upload_blob(&client, store, repository, job, progress, cancel)
            .inspect_err(|error| progress.blob_failed(&job.digest, error))
    })?;

    match &tagged {
        Some(index) => {
            for image in &images {
                put_manifest(&client, repository, &image.digest.to_string(), image)?;
            }
            put_manifest(
                &client,
                repository,
                &reference_part(destination, index),
                index,
            )?;
        }
        None => put_manifest(
            &client,
            repository,
            &reference_part(destination, &images[0]),
            &images[0],
        )?,
    }
    tracing::info!(destination = %destination, digest = %pushed_digest, "pushed");

    let blobs: Vec<PushedBlob> = jobs
        .iter()
        .zip(outcomes)
        .map(|(job, outcome)| PushedBlob {
            digest: job.digest.clone(),
            kind: job.kind,
            size: job.size,
            outcome,
        })
        .collect();
    let bytes_uploaded = blobs
        .iter()
        .filter(|b| matches!(b.outcome, BlobOutcome::Uploaded { .. }))
        .map(|b| b.size)
        .sum();
    Ok(PushReport {
        destination: destination.clone(),
        digest: pushed_digest,
        blobs,
        bytes_uploaded,
    })
}

fn read_manifest(store: &Store, digest: &Digest) -> Result<LocalManifest, DistributionError> {
    let bytes = store.read_blob(digest, MAX_MANIFEST_SIZE)?;
    let document =
        ManifestDocument::parse(&bytes, None).map_err(|source| StoreError::Manifest {
            digest: digest.clone(),
            source,
        })?;
    Ok(LocalManifest {
        digest: digest.clone(),
        media_type: document.media_type(),
        bytes,
    })
}

fn parse(manifest: &LocalManifest) -> Result<ManifestDocument, DistributionError> {
    ManifestDocument::parse(&manifest.bytes, Some(&manifest.media_type)).map_err(|source| {
        DistributionError::Store(StoreError::Manifest {
            digest: manifest.digest.clone(),
            source,
        })
    })
}

/// The tag (or, for a digest-only destination, the digest) to put the manifest under.
fn reference_part(destination: &ImageReference, manifest: &LocalManifest) -> String {
    match destination.tag() {
        Some(tag) => tag.to_owned(),
        None => manifest.digest.to_string(),
    }
}

/// Every distinct blob of `images` (configs first), checked to be in the store with the size
/// the manifests give, with the repositories of the destination's registry that hold it.
fn blob_jobs(
    store: &Store,
    images: &[LocalManifest],
    destination: &ImageReference,
) -> Result<Vec<BlobJob>, DistributionError> {
    let sources = mount_sources(store, destination);
    let mut seen = BTreeSet::new();
    let mut configs = Vec::new();
    let mut layers = Vec::new();
    for image in images {
        let ManifestDocument::Image(manifest) = parse(image)? else {
            continue;
        };
        let descriptors = std::iter::once((manifest.config(), BlobKind::Config))
            .chain(manifest.layers().iter().map(|l| (l, BlobKind::Layer)));
        for (descriptor, kind) in descriptors {
            let digest = descriptor_digest(descriptor).map_err(|source| StoreError::Manifest {
                digest: image.digest.clone(),
                source,
            })?;
            if !seen.insert(digest.clone()) {
                continue;
            }
            let stored = store.blob_size(&digest)?;
            if stored != descriptor.size() {
                return Err(StoreError::SizeMismatch {
                    expected: descriptor.size(),
                    actual: stored,
                    exceeded: stored > descriptor.size(),
                }
                .into());
            }
            let job = BlobJob {
                mount_from: sources.get(&digest).cloned().unwrap_or_default(),
                digest,
                size: descriptor.size(),
                kind,
            };
            match kind {
                BlobKind::Config => configs.push(job),
                BlobKind::Layer => layers.push(job),
            }
        }
    }
    configs.extend(layers);
    Ok(configs)
}

/// For each blob, the other repositories on the destination's registry that local tags say
/// hold it (the image was pulled from or pushed to them): candidates for a mount.
fn mount_sources(store: &Store, destination: &ImageReference) -> BTreeMap<Digest, Vec<String>> {
    let mut sources: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    let Ok(images) = store.list_images() else {
        return sources;
    };
    for image in images {
        let reference = &image.reference;
        if reference.domain() != destination.domain() || reference.path() == destination.path() {
            continue;
        }
        let mut pending = vec![image.digest.clone()];
        let mut visited = BTreeSet::new();
        while let Some(digest) = pending.pop() {
            if !visited.insert(digest.clone()) {
                continue;
            }
            let Ok(bytes) = store.read_blob(&digest, MAX_MANIFEST_SIZE) else {
                continue;
            };
            let Ok(document) = ManifestDocument::parse(&bytes, None) else {
                continue;
            };
            for child in document.children() {
                let Ok(child_digest) = descriptor_digest(child) else {
                    continue;
                };
                let kind = MediaKind::of(child.media_type().as_ref());
                if matches!(kind, MediaKind::Manifest | MediaKind::Index) {
                    if store.has_blob(&child_digest) {
                        pending.push(child_digest);
                    }
                    continue;
                }
                let repositories = sources.entry(child_digest).or_default();
                if !repositories.iter().any(|r| r == reference.path()) {
                    repositories.push(reference.path().to_owned());
                }
            }
        }
    }
    sources
}

/// Reads a blob from the store and reports progress.
struct ProgressReader<'a> {
    inner: &'a mut BlobReader,
    digest: &'a Digest,
    progress: &'a dyn TransferProgress,
}

impl Read for ProgressReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.blob_advanced(self.digest, n as u64);
        Ok(n)
    }
}

/// After the last byte was sent: reads on to end of data so the store's reader checks the
/// digest (a blob corrupted on local disk fails the push here).
fn finish_verified(reader: &mut BlobReader) -> Result<(), DistributionError> {
    let mut extra = [0u8; 1];
    match reader.read(&mut extra) {
        Ok(0) => Ok(()),
        Ok(_) => Err(StoreError::SizeMismatch {
            expected: reader.size(),
            actual: reader.size() + 1,
            exceeded: true,
        }
        .into()),
        Err(error) => {
            // The store's reader carries its own error (a corrupt blob) inside the io::Error.
            if error.get_ref().is_some_and(|e| e.is::<StoreError>()) {
                let path = reader.path().to_owned();
                return Err(
                    match error.into_inner().map(|e| e.downcast::<StoreError>()) {
                        Some(Ok(inner)) => *inner,
                        Some(Err(other)) => StoreError::Read {
                            path,
                            source: std::io::Error::other(other),
                        },
                        None => StoreError::Read {
                            path,
                            source: std::io::ErrorKind::InvalidData.into(),
                        },
                    }
                    .into(),
                );
            }
            Err(StoreError::Read {
                path: reader.path().to_owned(),
                source: error,
            }
            .into())
        }
    }
}

fn upload_blob(
    client: &RegistryClient,
    store: &Store,
    repository: &str,
    job: &BlobJob,
    progress: &dyn TransferProgress,
    cancel: &AtomicBool,
) -> Result<Option<BlobOutcome>, DistributionError> {
    let digest = &job.digest;
    if let Some(size) = client.blob_exists(repository, digest)? {
        if size == job.size || size == 0 {
            progress.blob_started(digest, job.kind, job.size, job.size);
            progress.blob_finished(digest, &BlobOutcome::AlreadyExists);
            return Ok(Some(BlobOutcome::AlreadyExists));
        }
        tracing::warn!(%digest, size, expected = job.size, "registry reports another size; uploading again");
    }
    let base = client.base()?;
    let uploads = format!("{base}/v2/{repository}/blobs/uploads/");
    let mut location = None;
    for from in job.mount_from.iter().take(MAX_MOUNT_SOURCES) {
        let operation = format!("mount {digest} from {from} into {repository}");
        let scopes = [Scope::push(repository), Scope::pull(from)];
        let url = format!(
            "{uploads}?mount={}&from={}",
            percent_encode(&digest.to_string()),
            percent_encode(from)
        );
        let response = client.send(RegistryRequest::new(Method::POST, url, &scopes, &operation))?;
        match response.status().as_u16() {
            201 => {
                tracing::debug!(%digest, %from, "mounted");
                let outcome = BlobOutcome::Mounted { from: from.clone() };
                progress.blob_started(digest, job.kind, job.size, job.size);
                progress.blob_finished(digest, &outcome);
                return Ok(Some(outcome));
            }
            202 => {
                // No mount, but an upload session was opened: use it.
                location = Some(upload_location(client, &response, &base, &operation)?);
                break;
            }
            401 | 403 | 404 => {
                tracing::debug!(%digest, %from, status = response.status().as_u16(), "mount refused");
            }
            _ => return Err(client.status_error(response, &operation)),
        }
    }
    let start_operation = format!("start upload of {digest} to {repository}");
    let scopes = [Scope::push(repository)];
    let mut url = match location {
        Some(url) => url,
        None => {
            let response = client.send(RegistryRequest::new(
                Method::POST,
                uploads,
                &scopes,
                &start_operation,
            ))?;
            if response.status().as_u16() != 202 {
                return Err(client.status_error(response, &start_operation));
            }
            upload_location(client, &response, &base, &start_operation)?
        }
    };
    progress.blob_started(digest, job.kind, job.size, 0);
    let mut reader = store.open_blob(digest)?;
    let operation = format!("upload {digest} to {repository}");
    let chunks;
    if job.size <= client.options().monolithic_upload_limit {
        let mut body = ProgressReader {
            inner: &mut reader,
            digest,
            progress,
        };
        let mut limited = (&mut body).take(job.size);
        let response = client.send(
            RegistryRequest::new(Method::PUT, with_digest(&url, digest), &scopes, &operation)
                .header("Content-Type", "application/octet-stream")
                .body(RequestBody::Stream {
                    reader: &mut limited,
                    length: job.size,
                }),
        )?;
        finish_verified(&mut reader)?;
        check_created(client, response, digest, &operation)?;
        chunks = 1;
    } else {
        let chunk_size = client.options().chunk_size.max(1);
        let mut offset = 0u64;
        let mut sent = 0u32;
        while offset < job.size {
            if cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let length = chunk_size.min(job.size - offset);
            let end = offset + length - 1;
            let mut body = ProgressReader {
                inner: &mut reader,
                digest,
                progress,
            };
            let mut limited = (&mut body).take(length);
            let response = client.send(
                RegistryRequest::new(Method::PATCH, url.clone(), &scopes, &operation)
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Range", format!("{offset}-{end}"))
                    .body(RequestBody::Stream {
                        reader: &mut limited,
                        length,
                    }),
            )?;
            if response.status().as_u16() != 202 {
                return Err(client.status_error(response, &operation));
            }
            if let Some(range) = header(&response, "range") {
                let confirmed = range
                    .trim()
                    .trim_start_matches("bytes=")
                    .split_once('-')
                    .and_then(|(_, e)| e.trim().parse::<u64>().ok());
                if confirmed != Some(end) {
                    return Err(DistributionError::Protocol {
                        host: client.registry().to_owned(),
                        operation,
                        reason: format!("the registry confirmed range {range:?} after sending bytes up to {end}"),
                    });
                }
            }
            url = upload_location(client, &response, &base, &operation)?;
            offset += length;
            sent += 1;
        }
        finish_verified(&mut reader)?;
        let response = client.send(RegistryRequest::new(
            Method::PUT,
            with_digest(&url, digest),
            &scopes,
            &operation,
        ))?;
        check_created(client, response, digest, &operation)?;
        chunks = sent;
    }
    let outcome = BlobOutcome::Uploaded { chunks };
    progress.blob_finished(digest, &outcome);
    Ok(Some(outcome))
}

fn check_created(
    client: &RegistryClient,
    response: ureq::http::Response<ureq::Body>,
    digest: &Digest,
    operation: &str,
) -> Result<(), DistributionError> {
    if response.status().as_u16() != 201 {
        return Err(client.status_error(response, operation));
    }
    if let Some(stored) =
        header(&response, "docker-content-digest").and_then(|v| Digest::parse(v.trim()).ok())
    {
        if stored != *digest {
            return Err(DistributionError::Protocol {
                host: client.registry().to_owned(),
                operation: operation.to_owned(),
                reason: format!("the registry stored it as {stored}"),
            });
        }
    }
    Ok(())
}

/// The upload URL from `Location`: absolute, or a path on the registry.
fn upload_location(
    client: &RegistryClient,
    response: &ureq::http::Response<ureq::Body>,
    base: &str,
    operation: &str,
) -> Result<String, DistributionError> {
    let location = header(response, "location")
        .map(str::trim)
        .unwrap_or_default();
    if location.starts_with("https://") || location.starts_with("http://") {
        return Ok(location.to_owned());
    }
    if location.starts_with('/') {
        return Ok(format!("{base}{location}"));
    }
    Err(DistributionError::Protocol {
        host: client.registry().to_owned(),
        operation: operation.to_owned(),
        reason: "no usable Location for the upload".to_owned(),
    })
}

fn with_digest(url: &str, digest: &Digest) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{separator}digest={}",
        percent_encode(&digest.to_string())
    )
}

fn put_manifest(
    client: &RegistryClient,
    repository: &str,
    reference: &str,
    manifest: &LocalManifest,
) -> Result<(), DistributionError> {
    let base = client.base()?;
    let operation = format!(
        "put manifest {}/{repository}:{reference}",
        client.registry()
    );
    let scopes = [Scope::push(repository)];
    let response = client.send(
        RegistryRequest::new(
            Method::PUT,
            format!("{base}/v2/{repository}/manifests/{reference}"),
            &scopes,
            &operation,
        )
        .header("Content-Type", manifest.media_type.clone())
        .body(RequestBody::Bytes(&manifest.bytes)),
    )?;
    check_created(client, response, &manifest.digest, &operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_goes_into_the_query() {
        let d = Digest::of(b"x");
        assert_eq!(
            with_digest("http://r/v2/a/blobs/uploads/u?_state=s", &d),
            format!(
                "http://r/v2/a/blobs/uploads/u?_state=s&digest=sha256%3A{}",
                d.hex()
            )
        );
        assert!(with_digest("http://r/u", &d).starts_with("http://r/u?digest="));
    }
}
