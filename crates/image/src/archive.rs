//! `save` and `load`: images in and out of OCI archives (a tar of an OCI image layout).
//!
//! `save` writes `oci-layout`, `index.json` (one entry per reference, named with
//! `org.opencontainers.image.ref.name` and `io.containerd.image.name`), a Docker-style
//! `manifest.json` (so `docker load` takes the archive too) and every blob the references
//! reach, read through verifying readers: a corrupt store cannot produce an archive.
//!
//! `load` reads an OCI archive (plain or gzip), or a `docker save` archive in the older
//! `manifest.json` + `<id>/layer.tar` format, and trusts none of it: every blob is checked
//! against the digest its path names while it is stored, every manifest is parsed strictly,
//! every descriptor must point at a blob of the right size, and a Docker archive's layers must
//! hash to its config's `diff_ids`. Only when everything checks out are the images tagged, in
//! one atomic update; a tampered archive leaves no tag behind (verified blobs it brought are
//! left for `prune`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestAlgorithm};
use crate::manifest::{
    check_image_manifest, descriptor_digest, diff_ids, parse_config, ManifestDocument,
    ManifestError, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE,
};
use crate::media_types::{self, LayerCompression, MediaKind};
use crate::reference::ImageReference;
use crate::store::{Store, StoreError, CONTAINERD_NAME_ANNOTATION, REF_NAME_ANNOTATION};

/// The largest metadata file (`index.json`, `manifest.json`, ...) read from an archive.
const MAX_METADATA_SIZE: u64 = 16 << 20;

/// Why saving or loading an archive failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive could not be read as a tar (or tar.gz).
    #[error("failed to read the archive")]
    Read {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The archive could not be written.
    #[error("failed to write the archive")]
    Write {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An entry with a name or type the archive format does not allow.
    #[error("invalid archive entry {path:?}: {reason}")]
    InvalidEntry {
        /// The entry's path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A blob whose content does not match the digest its path names, or that could not be
    /// stored.
    #[error("blob {path:?} in the archive was refused")]
    Blob {
        /// The entry's path.
        path: String,
        /// The cause.
        #[source]
        source: Box<StoreError>,
    },
    /// Neither `index.json` nor `manifest.json`.
    #[error("not an OCI or docker archive: it has neither index.json nor manifest.json")]
    NoIndex,
    /// A metadata file that cannot be parsed.
    #[error("invalid {name} in the archive")]
    Metadata {
        /// The file.
        name: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A metadata file larger than [`MAX_METADATA_SIZE`].
    #[error("{name} in the archive is larger than {MAX_METADATA_SIZE} bytes")]
    MetadataTooLarge {
        /// The file.
        name: String,
    },
    /// A blob the images need that the archive (and store) does not have.
    #[error("the archive is incomplete: {role} {digest} is missing")]
    MissingBlob {
        /// What the blob is.
        role: String,
        /// Its digest.
        digest: Digest,
    },
    /// A file a Docker `manifest.json` names that the archive does not have.
    #[error("the archive is incomplete: {path:?} is missing")]
    MissingFile {
        /// The path.
        path: String,
    },
    /// A descriptor whose size disagrees with its blob.
    #[error(
        "size mismatch for {digest}: the descriptor says {expected} bytes, the blob has {actual}"
    )]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The blob's size.
        actual: u64,
    },
    /// A Docker archive layer that does not hash to its config's diff_id.
    #[error("layer {index} does not match the image config: diff_id {expected}, layer {actual}")]
    DiffIdMismatch {
        /// The layer's position.
        index: usize,
        /// The config's diff_id.
        expected: Digest,
        /// The layer's uncompressed digest.
        actual: Digest,
    },
    /// A manifest, index or config that does not parse.
    #[error("invalid manifest or config {digest}")]
    Manifest {
        /// The document.
        digest: Digest,
        /// The cause.
        #[source]
        source: ManifestError,
    },
    /// A name in the archive that is not a valid reference.
    #[error("invalid image name {name:?} in the archive")]
    Name {
        /// The name.
        name: String,
        /// The cause.
        #[source]
        source: crate::reference::ReferenceError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a save wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SaveReport {
    /// Each reference and the manifest digest saved for it.
    pub images: Vec<SavedImage>,
    /// Number of blobs written.
    pub blobs: usize,
    /// Their total size.
    pub bytes: u64,
}

/// One image in an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavedImage {
    /// The name (none for an unnamed entry of a loaded archive).
    pub reference: Option<ImageReference>,
    /// The manifest (or index) digest.
    pub digest: Digest,
}

/// What a load stored and tagged.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The images found, tagged when named.
    pub images: Vec<SavedImage>,
    /// Number of blobs stored.
    pub blobs: usize,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchiveIndex {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<ArchiveEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchiveEntry {
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

// ------------------------------------------------------------------------------------------
// save

/// Writes the images `references` name, and everything they need, to `out` as an OCI archive.
pub fn save<W: Write>(
    store: &Store,
    references: &[ImageReference],
    out: W,
) -> Result<(W, SaveReport), ArchiveError> {
    // Keep prune away while blobs are read.
    let _lease = store.lease()?;
    let mut entries = Vec::new();
    let mut docker = Vec::new();
    let mut blobs = BTreeSet::new();
    for reference in references {
        let digest = store.resolve_required(reference)?;
        let bytes = store.read_blob(&digest, MAX_MANIFEST_SIZE)?;
        let document =
            ManifestDocument::parse(&bytes, None).map_err(|source| ArchiveError::Manifest {
                digest: digest.clone(),
                source,
            })?;
        let media_type = document.media_type();
        collect_tree(
            store,
            &digest,
            &media_type,
            bytes.len() as u64,
            true,
            &mut blobs,
        )?;
        if let ManifestDocument::Image(manifest) = &document {
            let path = |d: &Digest| format!("blobs/{}/{}", d.algorithm(), d.hex());
            let layers = manifest
                .layers()
                .iter()
                .map(|l| descriptor_digest(l).map(|d| path(&d)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| ArchiveError::Manifest {
                    digest: digest.clone(),
                    source,
                })?;
            let config =
                descriptor_digest(manifest.config()).map_err(|source| ArchiveError::Manifest {
                    digest: digest.clone(),
                    source,
                })?;
            docker.push(DockerManifestEntry {
                config: path(&config),
                repo_tags: reference
                    .tag()
                    .map(|_| vec![reference.without_digest().familiar()]),
                layers,
            });
        }
        let name = if reference.tag().is_some() {
            reference.without_digest()
        } else {
            reference.with_digest(digest.clone())
        };
        let mut annotations = BTreeMap::new();
        annotations.insert(REF_NAME_ANNOTATION.to_owned(), name.to_string());
        annotations.insert(CONTAINERD_NAME_ANNOTATION.to_owned(), name.to_string());
        entries.push(ArchiveEntry {
            media_type,
            size: bytes.len() as u64,
            digest: digest.clone(),
            annotations,
        });
    }
    let index = ArchiveIndex {
        schema_version: 2,
        media_type: Some(media_types::OCI_INDEX.to_owned()),
        manifests: entries,
    };
    let mut builder = tar::Builder::new(out);
    let write_err = |source| ArchiveError::Write { source };
    append_file(
        &mut builder,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .map_err(write_err)?;
    append_file(&mut builder, "index.json", &to_json(&index)?).map_err(write_err)?;
    append_file(&mut builder, "manifest.json", &to_json(&docker)?).map_err(write_err)?;
    append_dir(&mut builder, "blobs").map_err(write_err)?;
    let mut report = SaveReport {
        images: index
            .manifests
            .iter()
            .zip(references)
            .map(|(e, r)| SavedImage {
                reference: Some(r.clone()),
                digest: e.digest.clone(),
            })
            .collect(),
        blobs: 0,
        bytes: 0,
    };
    for algorithm in DigestAlgorithm::all() {
        let mut of_algorithm = blobs
            .iter()
            .filter(|d| d.algorithm() == algorithm)
            .peekable();
        if of_algorithm.peek().is_none() {
            continue;
        }
        append_dir(&mut builder, &format!("blobs/{algorithm}")).map_err(write_err)?;
        for digest in of_algorithm {
            let reader = store.open_blob(digest)?;
            let size = reader.size();
            let mut header = tar_header(tar::EntryType::Regular, 0o644, size);
            let path = format!("blobs/{}/{}", digest.algorithm(), digest.hex());
            builder
                .append_data(&mut header, &path, reader)
                .map_err(blob_copy_error)?;
            report.blobs += 1;
            report.bytes += size;
        }
    }
    let out = builder.into_inner().map_err(write_err)?;
    Ok((out, report))
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ArchiveError> {
    serde_json::to_vec(value).map_err(|source| ArchiveError::Metadata {
        name: "archive metadata".to_owned(),
        source,
    })
}

/// A blob that fails verification while it is copied surfaces as an I/O error carrying the
/// store's error: give that back as it was.
fn blob_copy_error(error: io::Error) -> ArchiveError {
    if error
        .get_ref()
        .is_some_and(|inner| inner.is::<StoreError>())
    {
        if let Some(Ok(store_error)) = error.into_inner().map(|e| e.downcast::<StoreError>()) {
            return ArchiveError::Store(*store_error);
        }
        return ArchiveError::Write {
            source: io::Error::other("failed to read a blob"),
        };
    }
    ArchiveError::Write { source: error }
}

fn tar_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn append_file<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let mut header = tar_header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
    builder.append_data(&mut header, path, bytes)
}

fn append_dir<W: Write>(builder: &mut tar::Builder<W>, path: &str) -> io::Result<()> {
    let mut header = tar_header(tar::EntryType::Directory, 0o755, 0);
    builder.append_data(&mut header, format!("{path}/"), io::empty())
}

/// Checks a manifest or index tree in the store and collects its digests. Image manifests need
/// every blob; an index needs at least one complete platform manifest (platforms that were
/// never fetched may be absent). Returns whether the tree is complete.
fn collect_tree(
    store: &Store,
    digest: &Digest,
    media_type: &str,
    expected_size: u64,
    required: bool,
    blobs: &mut BTreeSet<Digest>,
) -> Result<bool, ArchiveError> {
    let size = match store.blob_size(digest) {
        Ok(size) => size,
        Err(StoreError::BlobNotFound { .. }) if !required => return Ok(false),
        Err(StoreError::BlobNotFound { .. }) => {
            return Err(ArchiveError::MissingBlob {
                role: "manifest".to_owned(),
                digest: digest.clone(),
            })
        }
        Err(error) => return Err(error.into()),
    };
    if size != expected_size {
        return Err(ArchiveError::SizeMismatch {
            digest: digest.clone(),
            expected: expected_size,
            actual: size,
        });
    }
    let bytes = store.read_blob(digest, MAX_MANIFEST_SIZE)?;
    let manifest_error = |source| ArchiveError::Manifest {
        digest: digest.clone(),
        source,
    };
    let document = ManifestDocument::parse(&bytes, Some(media_type)).map_err(manifest_error)?;
    match &document {
        ManifestDocument::Index(index) => {
            let mut found = BTreeSet::new();
            let mut any = false;
            for child in index.manifests() {
                if MediaKind::of(child.media_type().as_ref()) != MediaKind::Manifest {
                    continue;
                }
                let child_digest = descriptor_digest(child).map_err(manifest_error)?;
                any |= collect_tree(
                    store,
                    &child_digest,
                    child.media_type().as_ref(),
                    child.size(),
                    false,
                    &mut found,
                )?;
            }
            if !any {
                return Err(ArchiveError::MissingBlob {
                    role: "every platform manifest of index".to_owned(),
                    digest: digest.clone(),
                });
            }
            blobs.extend(found);
        }
        ManifestDocument::Image(manifest) => {
            check_image_manifest(manifest).map_err(manifest_error)?;
            let config = manifest.config();
            let layers = manifest
                .layers()
                .iter()
                .enumerate()
                .map(|(i, l)| (format!("layer {i}"), l));
            for (role, descriptor) in std::iter::once(("config".to_owned(), config)).chain(layers) {
                let blob = descriptor_digest(descriptor).map_err(manifest_error)?;
                match store.blob_size(&blob) {
                    Ok(size) if size == descriptor.size() => {}
                    Ok(size) => {
                        return Err(ArchiveError::SizeMismatch {
                            digest: blob,
                            expected: descriptor.size(),
                            actual: size,
                        })
                    }
                    Err(StoreError::BlobNotFound { .. }) => {
                        return Err(ArchiveError::MissingBlob { role, digest: blob })
                    }
                    Err(error) => return Err(error.into()),
                }
                blobs.insert(blob);
            }
            let config_digest = descriptor_digest(config).map_err(manifest_error)?;
            let config_bytes = store.read_blob(&config_digest, MAX_CONFIG_SIZE)?;
            let parsed = parse_config(&config_bytes).map_err(|source| ArchiveError::Manifest {
                digest: config_digest.clone(),
                source,
            })?;
            diff_ids(manifest, &parsed).map_err(|source| ArchiveError::Manifest {
                digest: config_digest,
                source,
            })?;
        }
    }
    blobs.insert(digest.clone());
    Ok(true)
}

// ------------------------------------------------------------------------------------------
// load

/// Reads an OCI archive (or a `docker save` archive), plain or gzip, into `store` and tags its
/// named images. Nothing is tagged unless everything verifies.
pub fn load<R: Read>(store: &Store, input: R) -> Result<LoadReport, ArchiveError> {
    let _lease = store.lease()?;
    let mut buffered = BufReader::new(input);
    let head = buffered
        .fill_buf()
        .map_err(|source| ArchiveError::Read { source })?;
    let reader: Box<dyn Read> = match LayerCompression::sniff(head) {
        LayerCompression::Gzip => Box::new(flate2::read::GzDecoder::new(buffered)),
        _ => Box::new(buffered),
    };
    let mut archive = tar::Archive::new(reader);
    let mut contents = ArchiveContents::default();
    let read_err = |source| ArchiveError::Read { source };
    for entry in archive.entries().map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        contents.add(store, entry)?;
    }
    let images = if let Some(index) = contents.metadata.get("index.json") {
        let index: ArchiveIndex =
            serde_json::from_slice(index).map_err(|source| ArchiveError::Metadata {
                name: "index.json".to_owned(),
                source,
            })?;
        oci_images(store, &index)?
    } else if let Some(manifest) = contents.metadata.get("manifest.json") {
        let manifest: Vec<DockerManifestEntry> =
            serde_json::from_slice(manifest).map_err(|source| ArchiveError::Metadata {
                name: "manifest.json".to_owned(),
                source,
            })?;
        docker_images(store, &contents, &manifest)?
    } else {
        return Err(ArchiveError::NoIndex);
    };
    let tags: Vec<(ImageReference, Digest)> = images
        .iter()
        .filter_map(|i| Some((i.reference.clone()?, i.digest.clone())))
        .collect();
    store.tag_many(&tags)?;
    Ok(LoadReport {
        images,
        blobs: contents.blobs,
    })
}

#[derive(Default)]
struct ArchiveContents {
    /// Small metadata files by name.
    metadata: HashMap<String, Vec<u8>>,
    /// Other regular files (Docker's legacy layout), stored as blobs, by path.
    files: HashMap<String, (Digest, u64)>,
    /// Symbolic and hard links, by path, to the path they point at.
    links: HashMap<String, String>,
    blobs: usize,
}

/// Normalises an entry path: relative, no `..`, no `.` components.
fn clean_path(raw: &Path) -> Result<String, String> {
    let mut parts = Vec::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err("path escapes the archive".to_owned());
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute path".to_owned());
            }
        }
    }
    Ok(parts.join("/"))
}

impl ArchiveContents {
    fn add<R: Read>(
        &mut self,
        store: &Store,
        mut entry: tar::Entry<'_, R>,
    ) -> Result<(), ArchiveError> {
        let raw = entry
            .path()
            .map_err(|source| ArchiveError::Read { source })?
            .into_owned();
        let invalid = |reason: String| ArchiveError::InvalidEntry {
            path: raw.display().to_string(),
            reason,
        };
        let path = clean_path(&raw).map_err(invalid)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() || kind.is_pax_global_extensions() {
            return Ok(());
        }
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|source| ArchiveError::Read { source })?
                .ok_or_else(|| invalid("link without a target".to_owned()))?
                .into_owned();
            // Symlink targets are relative to the link's directory, hard link targets to the
            // archive root.
            let base = if kind.is_symlink() {
                Path::new(&path)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
            } else {
                PathBuf::new()
            };
            let target = clean_path(&base.join(target)).map_err(invalid)?;
            self.links.insert(path, target);
            return Ok(());
        }
        if !kind.is_file() && kind != tar::EntryType::Continuous {
            return Err(invalid(format!("unexpected entry type {kind:?}")));
        }
        let size = entry
            .header()
            .size()
            .map_err(|source| ArchiveError::Read { source })?;
        let parts: Vec<&str> = path.split('/').collect();
        if let ["blobs", algorithm, hex] = parts.as_slice() {
            let algorithm = DigestAlgorithm::from_name(algorithm)
                .ok_or_else(|| invalid(format!("unsupported digest algorithm {algorithm:?}")))?;
            let digest = Digest::from_parts(algorithm, hex).map_err(|e| invalid(e.to_string()))?;
            store
                .put_blob(&mut entry, Some(&digest), Some(size))
                .map_err(|source| ArchiveError::Blob {
                    path: path.clone(),
                    source: Box::new(source),
                })?;
            self.files.insert(path, (digest, size));
            self.blobs += 1;
            return Ok(());
        }
        if matches!(
            path.as_str(),
            "index.json" | "manifest.json" | "oci-layout" | "repositories"
        ) {
            if size > MAX_METADATA_SIZE {
                return Err(ArchiveError::MetadataTooLarge { name: path });
            }
            let mut bytes = Vec::with_capacity(size as usize);
            entry
                .by_ref()
                .take(MAX_METADATA_SIZE)
                .read_to_end(&mut bytes)
                .map_err(|source| ArchiveError::Read { source })?;
            self.metadata.insert(path, bytes);
            return Ok(());
        }
        // Docker's legacy layout keeps layers and configs under other names; store them as
        // blobs by their computed digest and let manifest.json decide what they are.
        let (digest, size) = store
            .put_blob(&mut entry, None, Some(size))
            .map_err(|source| ArchiveError::Blob {
                path: path.clone(),
                source: Box::new(source),
            })?;
        self.files.insert(path, (digest, size));
        self.blobs += 1;
        Ok(())
    }

    /// The blob stored for `path`, following links (a bounded number of times).
    fn file(&self, path: &str) -> Result<&(Digest, u64), ArchiveError> {
        let mut current =
            clean_path(Path::new(path)).map_err(|reason| ArchiveError::InvalidEntry {
                path: path.to_owned(),
                reason,
            })?;
        for _ in 0..16 {
            if let Some(found) = self.files.get(&current) {
                return Ok(found);
            }
            match self.links.get(&current) {
                Some(target) => current = target.clone(),
                None => break,
            }
        }
        Err(ArchiveError::MissingFile {
            path: path.to_owned(),
        })
    }
}

/// The name of an `index.json` entry: containerd's annotation, or the OCI `ref.name` when it is
/// a full reference (a bare tag such as `latest` names no repository, so the image is loaded
/// untagged).
fn entry_name(entry: &ArchiveEntry) -> Result<Option<ImageReference>, ArchiveError> {
    let name = match (
        entry.annotations.get(CONTAINERD_NAME_ANNOTATION),
        entry.annotations.get(REF_NAME_ANNOTATION),
    ) {
        (Some(name), _) => name,
        (None, Some(name)) if name.contains(['/', ':', '@']) => name,
        _ => return Ok(None),
    };
    ImageReference::parse(name)
        .map(Some)
        .map_err(|source| ArchiveError::Name {
            name: name.clone(),
            source,
        })
}

fn oci_images(store: &Store, index: &ArchiveIndex) -> Result<Vec<SavedImage>, ArchiveError> {
    let mut images = Vec::new();
    for entry in &index.manifests {
        let reference = entry_name(entry)?;
        collect_tree(
            store,
            &entry.digest,
            &entry.media_type,
            entry.size,
            true,
            &mut BTreeSet::new(),
        )?;
        images.push(SavedImage {
            reference,
            digest: entry.digest.clone(),
        });
    }
    Ok(images)
}

fn docker_images(
    store: &Store,
    contents: &ArchiveContents,
    manifest: &[DockerManifestEntry],
) -> Result<Vec<SavedImage>, ArchiveError> {
    let mut images = Vec::new();
    for item in manifest {
        let (config_digest, config_size) = contents.file(&item.config)?.clone();
        let config_bytes = store.read_blob(&config_digest, MAX_CONFIG_SIZE)?;
        let config = parse_config(&config_bytes).map_err(|source| ArchiveError::Manifest {
            digest: config_digest.clone(),
            source,
        })?;
        let ids = config.rootfs().diff_ids();
        if ids.len() != item.layers.len() {
            return Err(ArchiveError::Manifest {
                digest: config_digest,
                source: ManifestError::LayerCountMismatch {
                    diff_ids: ids.len(),
                    layers: item.layers.len(),
                },
            });
        }
        let mut layers = Vec::new();
        for (index, (path, id)) in item.layers.iter().zip(ids).enumerate() {
            let (digest, size) = contents.file(path)?.clone();
            let expected = Digest::parse(id).map_err(|source| ArchiveError::Manifest {
                digest: config_digest.clone(),
                source: ManifestError::Digest { source },
            })?;
            let (actual, media_type) = uncompressed_digest(store, &digest)?;
            if actual != expected {
                return Err(ArchiveError::DiffIdMismatch {
                    index,
                    expected,
                    actual,
                });
            }
            layers.push(serde_json::json!({
                "mediaType": media_type,
                "size": size,
                "digest": digest.to_string(),
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "config": {
                "mediaType": media_types::OCI_CONFIG,
                "size": config_size,
                "digest": config_digest.to_string(),
            },
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|source| ArchiveError::Metadata {
            name: "generated manifest".to_owned(),
            source,
        })?;
        let digest = store.put_blob_bytes(&bytes)?;
        let tags = item.repo_tags.clone().unwrap_or_default();
        if tags.is_empty() {
            images.push(SavedImage {
                reference: None,
                digest: digest.clone(),
            });
        }
        for tag in tags {
            let reference = ImageReference::parse(&tag).map_err(|source| ArchiveError::Name {
                name: tag.clone(),
                source,
            })?;
            images.push(SavedImage {
                reference: Some(reference),
                digest: digest.clone(),
            });
        }
    }
    Ok(images)
}

/// The digest of a stored layer's uncompressed tar, and the OCI media type for the layer as
/// stored.
fn uncompressed_digest(
    store: &Store,
    layer: &Digest,
) -> Result<(Digest, &'static str), ArchiveError> {
    let mut reader = BufReader::new(store.open_blob(layer)?);
    let head = reader
        .fill_buf()
        .map_err(|source| ArchiveError::Read { source })?;
    let compression = LayerCompression::sniff(head);
    let (mut source, media_type): (Box<dyn Read>, _) = match compression {
        LayerCompression::Gzip => (
            Box::new(flate2::read::GzDecoder::new(reader)),
            media_types::OCI_LAYER_GZIP,
        ),
        LayerCompression::Uncompressed => (Box::new(reader), media_types::OCI_LAYER_TAR),
        LayerCompression::Zstd => {
            return Err(ArchiveError::InvalidEntry {
                path: layer.to_string(),
                reason: "zstd layers in docker archives are not supported".to_owned(),
            })
        }
    };
    let mut hashing = crate::digest::DigestWriter::new(io::sink());
    io::copy(&mut source, &mut hashing).map_err(|source| ArchiveError::Read { source })?;
    let (_, digest, _) = hashing.finish();
    Ok((digest, media_type))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{import, ImportOptions};

    fn store_with_image() -> (tempfile::TempDir, Store, ImageReference, Digest) {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("etc")).unwrap();
        std::fs::write(src.path().join("etc/motd"), b"hello").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let reference = ImageReference::parse("example/motd:1").unwrap();
        let image = import(&store, src.path(), &reference, &ImportOptions::default()).unwrap();
        (dir, store, reference, image.manifest)
    }

    #[test]
    fn save_then_load_into_another_store() {
        let (dir, store, reference, manifest) = store_with_image();
        let (archive, report) = save(&store, std::slice::from_ref(&reference), Vec::new()).unwrap();
        assert_eq!(report.blobs, 3);
        let other = Store::open(dir.path().join("other")).unwrap();
        let loaded = load(&other, &archive[..]).unwrap();
        assert_eq!(
            loaded.images,
            vec![SavedImage {
                reference: Some(reference.clone()),
                digest: manifest.clone()
            }]
        );
        assert_eq!(other.resolve(&reference).unwrap(), Some(manifest));
        assert!(other.check(false).unwrap().is_clean());
        // The archive is deterministic.
        let (again, _) = save(&store, &[reference], Vec::new()).unwrap();
        assert_eq!(again, archive);
    }

    #[test]
    fn tampered_blob_is_refused_and_nothing_tagged() {
        let (dir, store, reference, _) = store_with_image();
        let (mut archive, _) = save(&store, std::slice::from_ref(&reference), Vec::new()).unwrap();
        // Flip a byte inside the largest blob's data (the layer), keeping the tar valid.
        let needle = b"blobs/sha256/";
        let mut offsets = Vec::new();
        let mut tar = tar::Archive::new(&archive[..]);
        for entry in tar.entries().unwrap() {
            let entry = entry.unwrap();
            if entry
                .path()
                .unwrap()
                .to_string_lossy()
                .starts_with(std::str::from_utf8(needle).unwrap())
                && entry.header().entry_type().is_file()
            {
                offsets.push((entry.raw_file_position(), entry.size()));
            }
        }
        let (offset, size) = offsets.into_iter().max_by_key(|(_, s)| *s).unwrap();
        archive[(offset + size / 2) as usize] ^= 0xff;
        let other = Store::open(dir.path().join("other")).unwrap();
        let err = load(&other, &archive[..]).unwrap_err();
        assert!(
            matches!(
                &err,
                ArchiveError::Blob { source, .. }
                    if matches!(**source, StoreError::DigestMismatch { .. })
            ),
            "{err:?}"
        );
        assert!(other.list_images().unwrap().is_empty());
    }

    #[test]
    fn incomplete_archive_is_refused() {
        let (dir, store, reference, _) = store_with_image();
        let (archive, _) = save(&store, &[reference], Vec::new()).unwrap();
        // Rebuild the archive without its layer (the largest blob).
        let mut entries: Vec<(tar::Header, String, Vec<u8>)> = Vec::new();
        let mut tar = tar::Archive::new(&archive[..]);
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            entries.push((
                entry.header().clone(),
                entry.path().unwrap().display().to_string(),
                data,
            ));
        }
        let largest = entries
            .iter()
            .enumerate()
            .max_by_key(|(_, e)| e.2.len())
            .unwrap()
            .0;
        entries.remove(largest);
        let mut builder = tar::Builder::new(Vec::new());
        for (mut header, path, data) in entries {
            builder.append_data(&mut header, path, &data[..]).unwrap();
        }
        let stripped = builder.into_inner().unwrap();
        let other = Store::open(dir.path().join("other")).unwrap();
        let err = load(&other, &stripped[..]).unwrap_err();
        assert!(matches!(err, ArchiveError::MissingBlob { .. }), "{err:?}");
        assert!(other.list_images().unwrap().is_empty());
    }

    #[test]
    fn loads_a_legacy_docker_archive() {
        let (dir, store, _, _) = store_with_image();
        // Build a `docker save` (pre-25) style archive by hand: uncompressed layer.tar, config
        // json named by id, manifest.json, and a symlinked duplicate layer.
        let layer_src = tempfile::tempdir().unwrap();
        std::fs::write(layer_src.path().join("file"), b"content").unwrap();
        let layer = crate::import::write_rootfs_tar(layer_src.path(), Vec::new()).unwrap();
        let diff_id = Digest::of(&layer);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}","{diff_id}"]}}}}"#
        );
        let config_id = Digest::of(config.as_bytes());
        let manifest = format!(
            r#"[{{"Config":"{}.json","RepoTags":["legacy:v1"],"Layers":["aaa/layer.tar","bbb/layer.tar"]}}]"#,
            config_id.hex()
        );
        let mut builder = tar::Builder::new(Vec::new());
        append_file(
            &mut builder,
            &format!("{}.json", config_id.hex()),
            config.as_bytes(),
        )
        .unwrap();
        append_file(&mut builder, "aaa/layer.tar", &layer).unwrap();
        let mut link = tar_header(tar::EntryType::Symlink, 0o777, 0);
        builder
            .append_link(&mut link, "bbb/layer.tar", "../aaa/layer.tar")
            .unwrap();
        append_file(&mut builder, "manifest.json", manifest.as_bytes()).unwrap();
        let archive = builder.into_inner().unwrap();
        let loaded = load(&store, &archive[..]).unwrap();
        let reference = ImageReference::parse("legacy:v1").unwrap();
        assert_eq!(loaded.images[0].reference.as_ref(), Some(&reference));
        assert!(store.resolve(&reference).unwrap().is_some());
        assert!(store.check(false).unwrap().is_clean());
        // A layer that does not match its diff_id is refused.
        let mut builder = tar::Builder::new(Vec::new());
        append_file(
            &mut builder,
            &format!("{}.json", config_id.hex()),
            config.as_bytes(),
        )
        .unwrap();
        append_file(&mut builder, "aaa/layer.tar", &layer[..layer.len() - 1024]).unwrap();
        append_file(&mut builder, "bbb/layer.tar", &layer).unwrap();
        append_file(
            &mut builder,
            "manifest.json",
            manifest.replace("legacy:v1", "legacy:v2").as_bytes(),
        )
        .unwrap();
        let bad = builder.into_inner().unwrap();
        let other = Store::open(dir.path().join("other")).unwrap();
        assert!(matches!(
            load(&other, &bad[..]),
            Err(ArchiveError::DiffIdMismatch { index: 0, .. })
        ));
        assert!(other.list_images().unwrap().is_empty());
    }

    #[test]
    fn refuses_entries_escaping_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut header = tar_header(tar::EntryType::Regular, 0o644, 1);
        // The tar crate refuses to write `..` itself; write the name into the header directly.
        header.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, &b"x"[..]).unwrap();
        let archive = builder.into_inner().unwrap();
        assert!(matches!(
            load(&store, &archive[..]),
            Err(ArchiveError::InvalidEntry { .. })
        ));
        assert!(matches!(load(&store, &b""[..]), Err(ArchiveError::NoIndex)));
    }
}
