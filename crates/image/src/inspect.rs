//! Reading a stored image back: its manifest (the host platform's, for an index), config and
//! layers, for `image ls`, `inspect`, `history`, and for whoever unpacks or runs it.

use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde::Serialize;

use crate::digest::Digest;
use crate::manifest::{
    check_image_manifest, descriptor_digest, diff_ids, parse_config, select_platform,
    ManifestDocument, PlatformSpec, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE,
};
use crate::media_types::LayerCompression;
use crate::reference::ImageReference;
use crate::store::{Store, StoreError};
use crate::timestamp;

/// One layer of a stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerInfo {
    /// The stored (usually compressed) blob.
    pub digest: Digest,
    /// The uncompressed tar's digest, from the config.
    pub diff_id: Digest,
    /// The layer's media type.
    pub media_type: String,
    /// How it is compressed.
    #[serde(skip)]
    pub compression: LayerCompression,
    /// The blob's size.
    pub size: u64,
}

/// A stored, runnable image: checked manifest and config, for the wanted platform.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// The reference it was opened by.
    pub reference: ImageReference,
    /// The digest the reference resolves to (an index's digest for a multi-platform image).
    pub digest: Digest,
    /// The platform manifest's digest (equal to `digest` for a single-platform image).
    pub manifest_digest: Digest,
    /// The manifest's bytes as stored.
    pub manifest_bytes: Vec<u8>,
    /// The parsed manifest.
    pub manifest: ImageManifest,
    /// The config's digest (Docker's "image id").
    pub config_digest: Digest,
    /// The config's bytes as stored.
    pub config_bytes: Vec<u8>,
    /// The parsed config.
    pub config: ImageConfiguration,
    /// The layers, lowest first.
    pub layers: Vec<LayerInfo>,
}

impl LocalImage {
    /// Opens the image `reference` names, choosing `platform` (the host's when `None`) from an
    /// index, and checks that its manifest and config are valid and agree.
    pub fn open(
        store: &Store,
        reference: &ImageReference,
        platform: Option<&PlatformSpec>,
    ) -> Result<Self, StoreError> {
        let digest = store.resolve_required(reference)?;
        let manifest_error = |digest: &Digest| {
            let digest = digest.clone();
            move |source| StoreError::Manifest { digest, source }
        };
        let mut manifest_digest = digest.clone();
        let mut bytes = store.read_blob(&digest, MAX_MANIFEST_SIZE)?;
        let mut document =
            ManifestDocument::parse(&bytes, None).map_err(manifest_error(&digest))?;
        if let ManifestDocument::Index(index) = &document {
            let host = PlatformSpec::host();
            let wanted = platform.unwrap_or(&host);
            let chosen = select_platform(index, wanted).map_err(manifest_error(&digest))?;
            manifest_digest = descriptor_digest(chosen).map_err(manifest_error(&digest))?;
            let media_type = chosen.media_type().to_string();
            bytes = store.read_blob(&manifest_digest, MAX_MANIFEST_SIZE)?;
            document = ManifestDocument::parse(&bytes, Some(&media_type))
                .map_err(manifest_error(&manifest_digest))?;
        }
        let ManifestDocument::Image(manifest) = document else {
            return Err(StoreError::Manifest {
                digest: manifest_digest,
                source: crate::manifest::ManifestError::UnsupportedMediaType {
                    media_type: "nested index".to_owned(),
                },
            });
        };
        let compressions =
            check_image_manifest(&manifest).map_err(manifest_error(&manifest_digest))?;
        let config_digest =
            descriptor_digest(manifest.config()).map_err(manifest_error(&manifest_digest))?;
        let config_bytes = store.read_blob(&config_digest, MAX_CONFIG_SIZE)?;
        let config = parse_config(&config_bytes).map_err(manifest_error(&config_digest))?;
        let ids = diff_ids(&manifest, &config).map_err(manifest_error(&config_digest))?;
        let layers = manifest
            .layers()
            .iter()
            .zip(ids)
            .zip(compressions)
            .map(|((layer, diff_id), compression)| {
                Ok(LayerInfo {
                    digest: descriptor_digest(layer).map_err(manifest_error(&manifest_digest))?,
                    diff_id,
                    media_type: layer.media_type().to_string(),
                    compression,
                    size: layer.size(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self {
            reference: reference.clone(),
            digest,
            manifest_digest,
            manifest_bytes: bytes,
            manifest: *manifest,
            config_digest,
            config_bytes,
            config,
            layers,
        })
    }

    /// Manifest, config and layers together, as stored.
    pub fn size(&self) -> u64 {
        self.manifest_bytes.len() as u64
            + self.config_bytes.len() as u64
            + self.layers.iter().map(|l| l.size).sum::<u64>()
    }

    /// The config's creation time in seconds since the epoch, if it has a valid one.
    pub fn created_unix(&self) -> Option<i64> {
        self.config
            .created()
            .as_deref()
            .and_then(timestamp::parse_rfc3339)
    }

    /// `os/architecture[/variant]` from the config.
    pub fn platform(&self) -> PlatformSpec {
        PlatformSpec::new(
            &self.config.os().to_string(),
            &self.config.architecture().to_string(),
            self.config.variant().as_deref(),
        )
    }

    /// The summary `image ls` shows.
    pub fn summary(&self) -> ImageSummary {
        ImageSummary {
            reference: self.reference.clone(),
            repository: self.reference.familiar_repository(),
            tag: self.reference.tag().map(str::to_owned),
            digest: self.digest.clone(),
            config_digest: Some(self.config_digest.clone()),
            size: Some(self.size()),
            created: self.config.created().clone(),
            created_unix: self.created_unix(),
            platform: Some(self.platform().to_string()),
            problem: None,
        }
    }

    /// The config's history, each entry that added a layer paired with that layer.
    pub fn history(&self) -> Vec<HistoryEntry> {
        let mut layers = self.layers.iter();
        self.config
            .history()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|h| {
                let empty_layer = h.empty_layer().unwrap_or(false);
                let layer = if empty_layer { None } else { layers.next() };
                HistoryEntry {
                    created: h.created().clone(),
                    created_unix: h.created().as_deref().and_then(timestamp::parse_rfc3339),
                    created_by: h.created_by().clone(),
                    comment: h.comment().clone(),
                    empty_layer,
                    layer: layer.map(|l| l.digest.clone()),
                    size: layer.map_or(0, |l| l.size),
                }
            })
            .collect()
    }
}

/// One line of `image ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    /// The full reference.
    pub reference: ImageReference,
    /// The repository as Docker shows it (`busybox`).
    pub repository: String,
    /// The tag.
    pub tag: Option<String>,
    /// The manifest (or index) digest.
    pub digest: Digest,
    /// The config digest (Docker's image id), if the image could be read.
    pub config_digest: Option<Digest>,
    /// Stored size of manifest, config and layers.
    pub size: Option<u64>,
    /// The config's creation time, as written.
    pub created: Option<String>,
    /// The same in seconds since the epoch.
    pub created_unix: Option<i64>,
    /// `os/arch[/variant]`.
    pub platform: Option<String>,
    /// Why the image could not be read, if it could not (see `palisade system check`).
    pub problem: Option<String>,
}

/// One entry of an image's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// When, as written.
    pub created: Option<String>,
    /// The same in seconds since the epoch.
    pub created_unix: Option<i64>,
    /// The command that made it.
    pub created_by: Option<String>,
    /// A comment.
    pub comment: Option<String>,
    /// Whether it added no layer.
    pub empty_layer: bool,
    /// The layer it added.
    pub layer: Option<Digest>,
    /// That layer's stored size.
    pub size: u64,
}

/// A summary of every tagged image; images that cannot be read are listed with the problem.
pub fn summaries(store: &Store) -> Result<Vec<ImageSummary>, StoreError> {
    Ok(store
        .list_images()?
        .into_iter()
        .map(
            |tagged| match LocalImage::open(store, &tagged.reference, None) {
                Ok(image) => image.summary(),
                Err(error) => ImageSummary {
                    repository: tagged.reference.familiar_repository(),
                    tag: tagged.reference.tag().map(str::to_owned),
                    reference: tagged.reference,
                    digest: tagged.digest,
                    config_digest: None,
                    size: None,
                    created: None,
                    created_unix: None,
                    platform: None,
                    problem: Some(error.to_string()),
                },
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{import, ImportOptions};

    #[test]
    fn opens_an_imported_image() {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("f"), b"x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let reference = ImageReference::parse("a/b:c").unwrap();
        let imported = import(&store, src.path(), &reference, &ImportOptions::default()).unwrap();
        let image = LocalImage::open(&store, &reference, None).unwrap();
        assert_eq!(image.manifest_digest, imported.manifest);
        assert_eq!(image.config_digest, imported.config);
        assert_eq!(image.layers.len(), 1);
        assert_eq!(image.layers[0].diff_id, imported.diff_id);
        assert_eq!(image.layers[0].compression, LayerCompression::Gzip);
        assert_eq!(image.platform(), PlatformSpec::host());
        let history = image.history();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].size, imported.layer_size);
        assert!(history[0]
            .created_by
            .as_deref()
            .unwrap()
            .starts_with("palisade image import"));
        let list = summaries(&store).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].repository, "a/b");
        assert_eq!(list[0].tag.as_deref(), Some("c"));
        assert!(list[0].created_unix.is_some());
        assert_eq!(list[0].size, Some(image.size()));
        // A broken image is listed with its problem rather than failing the listing.
        store.untag(&reference).unwrap();
        let broken = ImageReference::parse("broken").unwrap();
        store.tag(&broken, &imported.manifest).unwrap();
        std::fs::remove_file(store.blob_path(&imported.config)).unwrap();
        let list = summaries(&store).unwrap();
        assert!(list[0].problem.is_some());
        assert!(LocalImage::open(&store, &ImageReference::parse("nope").unwrap(), None).is_err());
    }
}
