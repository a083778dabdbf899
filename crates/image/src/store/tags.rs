//! Tags: the store's `index.json`, one entry per reference.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

use super::{atomic, Store, StoreError};
use crate::digest::Digest;
use crate::manifest::{ManifestDocument, MAX_MANIFEST_SIZE};
use crate::media_types;
use crate::reference::ImageReference;

/// The OCI annotation naming an entry of an image layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd reads the image name from (also written, for `ctr import`).
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// One tagged image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaggedImage {
    /// The full reference (`docker.io/library/busybox:latest`, or `name@digest`).
    pub reference: ImageReference,
    /// The manifest (or index) digest.
    pub digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's size.
    pub size: u64,
}

/// `index.json` as the store reads and writes it (annotations sorted for stable output;
/// fields it does not know are kept).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LayoutIndex {
    pub(crate) schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    #[serde(default)]
    pub(crate) manifests: Vec<IndexEntry>,
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IndexEntry {
    pub(crate) media_type: String,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, serde_json::Value>,
}

impl IndexEntry {
    pub(crate) fn new(
        reference: Option<&ImageReference>,
        digest: Digest,
        media_type: String,
        size: u64,
    ) -> Self {
        let mut annotations = BTreeMap::new();
        if let Some(reference) = reference {
            annotations.insert(REF_NAME_ANNOTATION.to_owned(), reference.to_string());
            annotations.insert(CONTAINERD_NAME_ANNOTATION.to_owned(), reference.to_string());
        }
        Self {
            media_type,
            digest,
            size,
            annotations,
            other: BTreeMap::new(),
        }
    }

    /// The entry's reference, if its name annotation is a valid one.
    pub(crate) fn reference(&self) -> Option<ImageReference> {
        let name = self.annotations.get(REF_NAME_ANNOTATION)?;
        ImageReference::parse(name).ok()
    }
}

impl LayoutIndex {
    pub(crate) fn empty() -> Self {
        Self {
            schema_version: 2,
            media_type: Some(media_types::OCI_INDEX.to_owned()),
            manifests: Vec::new(),
            other: BTreeMap::new(),
        }
    }
}

/// The key under which a reference is tagged: `name:tag` when it has a tag (a digest next to
/// it is only a check), `name@digest` otherwise.
fn tag_key(reference: &ImageReference) -> ImageReference {
    if reference.tag().is_some() {
        reference.without_digest()
    } else {
        reference.clone()
    }
}

impl Store {
    pub(crate) fn ensure_index(&self) -> Result<(), StoreError> {
        if self.index_path().exists() {
            return Ok(());
        }
        let _lock = self.lock_metadata()?;
        if self.index_path().exists() {
            return Ok(());
        }
        self.write_index(&LayoutIndex::empty())
    }

    pub(crate) fn read_index(&self) -> Result<LayoutIndex, StoreError> {
        let path = self.index_path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LayoutIndex::empty()),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Metadata { path, source })
    }

    fn write_index(&self, index: &LayoutIndex) -> Result<(), StoreError> {
        let path = self.index_path();
        let mut bytes =
            serde_json::to_vec_pretty(index).map_err(|source| StoreError::Metadata {
                path: path.clone(),
                source,
            })?;
        bytes.push(b'\n');
        atomic::write_file(&path, &bytes, 0o644)
    }

    /// Runs a read-modify-write of `index.json` under the metadata lock.
    pub(crate) fn update_index<T>(
        &self,
        change: impl FnOnce(&mut LayoutIndex) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _lock = self.lock_metadata()?;
        let mut index = self.read_index()?;
        let result = change(&mut index)?;
        self.write_index(&index)?;
        Ok(result)
    }

    /// The index entry for `manifest`: reads the stored manifest (verified) for its media type.
    fn entry_for(
        &self,
        reference: &ImageReference,
        manifest: &Digest,
    ) -> Result<IndexEntry, StoreError> {
        if let Some(pinned) = reference.digest() {
            if pinned != manifest {
                return Err(StoreError::DigestConflict {
                    reference: Box::new(reference.clone()),
                    pinned: pinned.clone(),
                    actual: manifest.clone(),
                });
            }
        }
        let bytes = self.read_blob(manifest, MAX_MANIFEST_SIZE)?;
        let document =
            ManifestDocument::parse(&bytes, None).map_err(|source| StoreError::Manifest {
                digest: manifest.clone(),
                source,
            })?;
        let key = tag_key(reference);
        Ok(IndexEntry::new(
            Some(&key),
            manifest.clone(),
            document.media_type(),
            bytes.len() as u64,
        ))
    }

    /// Points `reference` at the stored manifest (or index) `manifest`, replacing what it
    /// pointed at. The manifest must be in the store and valid.
    pub fn tag(&self, reference: &ImageReference, manifest: &Digest) -> Result<(), StoreError> {
        self.tag_many(&[(reference.clone(), manifest.clone())])
    }

    /// Tags several references in one atomic update of `index.json`: all or none.
    pub fn tag_many(&self, tags: &[(ImageReference, Digest)]) -> Result<(), StoreError> {
        let entries = tags
            .iter()
            .map(|(reference, digest)| self.entry_for(reference, digest))
            .collect::<Result<Vec<_>, _>>()?;
        self.update_index(|index| {
            for entry in entries {
                let name = entry.annotations.get(REF_NAME_ANNOTATION).cloned();
                match index
                    .manifests
                    .iter_mut()
                    .find(|e| e.annotations.get(REF_NAME_ANNOTATION) == name.as_ref())
                {
                    Some(existing) => *existing = entry,
                    None => index.manifests.push(entry),
                }
            }
            Ok(())
        })
    }

    /// The manifest digest `reference` names: its pinned digest if that is in the store,
    /// otherwise what its tag points at.
    pub fn resolve(&self, reference: &ImageReference) -> Result<Option<Digest>, StoreError> {
        if let Some(digest) = reference.digest() {
            return Ok(self.has_blob(digest).then(|| digest.clone()));
        }
        let key = tag_key(reference);
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .find(|e| e.reference().as_ref() == Some(&key))
            .map(|e| e.digest))
    }

    /// Like [`Store::resolve`], but a missing image is an error.
    pub fn resolve_required(&self, reference: &ImageReference) -> Result<Digest, StoreError> {
        self.resolve(reference)?
            .ok_or_else(|| StoreError::ImageNotFound {
                reference: Box::new(reference.clone()),
            })
    }

    /// Every tagged image, sorted by reference. Entries written by other tools without a valid
    /// name are left out (but still protect their blobs from prune).
    pub fn list_images(&self) -> Result<Vec<TaggedImage>, StoreError> {
        let mut images: Vec<TaggedImage> = self
            .read_index()?
            .manifests
            .into_iter()
            .filter_map(|e| {
                Some(TaggedImage {
                    reference: e.reference()?,
                    digest: e.digest,
                    media_type: e.media_type,
                    size: e.size,
                })
            })
            .collect();
        images.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(images)
    }

    /// Removes a tag. Returns whether it existed. For a digest-only reference (`name@digest`)
    /// every tag of that repository pointing at the digest goes. Blobs stay until
    /// [`Store::prune`].
    pub fn untag(&self, reference: &ImageReference) -> Result<bool, StoreError> {
        let key = tag_key(reference);
        self.update_index(|index| {
            let before = index.manifests.len();
            index.manifests.retain(|e| {
                let Some(existing) = e.reference() else {
                    return true;
                };
                if existing == key {
                    return false;
                }
                // name@digest also removes name:tag entries of the same repository at that digest.
                !(key.tag().is_none()
                    && key.digest() == Some(&e.digest)
                    && existing.repository() == key.repository())
            });
            Ok(index.manifests.len() != before)
        })
    }

    /// Removes every tag pointing at `manifest`. Returns the references removed.
    pub fn untag_digest(&self, manifest: &Digest) -> Result<Vec<ImageReference>, StoreError> {
        self.update_index(|index| {
            let mut removed = Vec::new();
            index.manifests.retain(|e| {
                if &e.digest == manifest {
                    if let Some(reference) = e.reference() {
                        removed.push(reference);
                        return false;
                    }
                }
                true
            });
            Ok(removed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(store: &Store, n: u8) -> Digest {
        let config = store.put_blob_bytes(&[n]).unwrap();
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":1,"digest":"{config}"}},"layers":[]}}"#,
            media_types::OCI_MANIFEST,
            media_types::OCI_CONFIG
        );
        store.put_blob_bytes(json.as_bytes()).unwrap()
    }

    fn r(s: &str) -> ImageReference {
        ImageReference::parse(s).unwrap()
    }

    #[test]
    fn tag_resolve_list_untag() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m1 = manifest(&store, 1);
        let m2 = manifest(&store, 2);
        store.tag(&r("busybox"), &m1).unwrap();
        store.tag(&r("localhost:5000/a/b:v1"), &m1).unwrap();
        assert_eq!(
            store.resolve(&r("busybox:latest")).unwrap(),
            Some(m1.clone())
        );
        assert_eq!(store.resolve(&r("busybox:other")).unwrap(), None);
        // Retagging moves the tag.
        store.tag(&r("busybox"), &m2).unwrap();
        assert_eq!(store.resolve(&r("busybox")).unwrap(), Some(m2.clone()));
        let images = store.list_images().unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(
            images[0].reference.to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(images[0].media_type, media_types::OCI_MANIFEST);
        // Resolve by digest.
        let pinned = r("busybox").with_digest(m1.clone());
        assert_eq!(store.resolve(&pinned).unwrap(), Some(m1.clone()));
        // A reference pinning another digest is refused.
        let conflict = r(&format!("busybox:x@{m1}"));
        assert!(matches!(
            store.tag(&conflict, &m2),
            Err(StoreError::DigestConflict { .. })
        ));
        // A tag pointing at something that is not in the store is refused.
        assert!(store.tag(&r("x"), &Digest::of(b"nope")).is_err());
        assert!(store.untag(&r("busybox")).unwrap());
        assert!(!store.untag(&r("busybox")).unwrap());
        assert_eq!(
            store.untag_digest(&m1).unwrap(),
            vec![r("localhost:5000/a/b:v1")]
        );
        assert!(store.list_images().unwrap().is_empty());
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.index_path()).unwrap()).unwrap();
        assert_eq!(raw["manifests"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn index_json_is_an_oci_index_with_ref_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m = manifest(&store, 1);
        store.tag(&r("busybox:1"), &m).unwrap();
        let bytes = std::fs::read(store.index_path()).unwrap();
        let index: oci_spec::image::ImageIndex = serde_json::from_slice(&bytes).unwrap();
        let entry = &index.manifests()[0];
        assert_eq!(
            entry.annotations().as_ref().unwrap()[REF_NAME_ANNOTATION],
            "docker.io/library/busybox:1"
        );
        assert_eq!(entry.size(), store.blob_size(&m).unwrap());
    }

    #[test]
    fn keeps_foreign_entries_and_fields() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m = manifest(&store, 1);
        let foreign = format!(
            r#"{{"schemaVersion":2,"x-extra":1,"manifests":[{{"mediaType":"{}","digest":"{m}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            media_types::OCI_MANIFEST
        );
        std::fs::write(store.index_path(), foreign).unwrap();
        store.tag(&r("a"), &m).unwrap();
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.index_path()).unwrap()).unwrap();
        assert_eq!(raw["x-extra"], 1);
        assert_eq!(raw["manifests"][0]["platform"]["os"], "linux");
        assert_eq!(store.list_images().unwrap().len(), 1);
    }
}
