//! What the registry needs to know about a pushed manifest: its media type, the blobs and
//! manifests it references, and its subject (for the referrers API).

use std::collections::BTreeMap;

use palisade_image::digest::Digest;
use palisade_image::media_types as mt;
use serde::{Deserialize, Serialize};

/// The largest manifest accepted by default (the spec suggests registries accept at least 4 MiB).
pub const DEFAULT_MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Manifest media types the registry stores.
pub const SUPPORTED: [&str; 4] = [
    mt::OCI_MANIFEST,
    mt::OCI_INDEX,
    mt::DOCKER_MANIFEST,
    mt::DOCKER_MANIFEST_LIST,
];

/// Why a manifest is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON or not the shape of a manifest.
    #[error("manifest is not valid JSON of an image manifest or index: {0}")]
    Malformed(String),
    /// A media type we do not store.
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    /// `mediaType` field and `Content-Type` disagree.
    #[error("manifest mediaType {field:?} does not match Content-Type {header:?}")]
    MediaTypeMismatch { field: String, header: String },
    /// A descriptor with an invalid digest or size.
    #[error("invalid descriptor: {0}")]
    Descriptor(String),
}

/// An OCI content descriptor as it appears in manifests and referrer lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Its digest (validated after parsing).
    pub digest: String,
    /// Its size in bytes.
    pub size: i64,
    /// External URLs (non-distributable layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Artifact type (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    blobs: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// A parsed, validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The media type it is stored and served as.
    pub media_type: String,
    /// Its artifact type (for referrer descriptors): `artifactType`, else the config media type.
    pub artifact_type: Option<String>,
    /// Blobs it references that must exist in the repository (config and layers without URLs).
    pub blobs: Vec<Digest>,
    /// Manifests it references (an index's children).
    pub manifests: Vec<Digest>,
    /// Its subject, if it is a referrer.
    pub subject: Option<Digest>,
    /// Its annotations.
    pub annotations: Option<BTreeMap<String, String>>,
}

fn digest_of(d: &Descriptor) -> Result<Digest, ManifestError> {
    if d.size < 0 {
        return Err(ManifestError::Descriptor(format!(
            "negative size for {}",
            d.digest
        )));
    }
    Digest::parse(&d.digest).map_err(|e| ManifestError::Descriptor(e.to_string()))
}

impl Manifest {
    /// This manifest (stored as `size` bytes under `digest`) as an entry of a referrers list,
    /// or `None` when an `artifactType` filter leaves it out.
    pub fn referrer_entry(
        &self,
        digest: &Digest,
        size: usize,
        artifact_type: Option<&str>,
    ) -> Option<Descriptor> {
        if artifact_type.is_some_and(|a| self.artifact_type.as_deref() != Some(a)) {
            return None;
        }
        Some(Descriptor {
            media_type: self.media_type.clone(),
            digest: digest.to_string(),
            size: size as i64,
            urls: None,
            artifact_type: self.artifact_type.clone(),
            annotations: self.annotations.clone(),
        })
    }

    /// Parses `bytes` sent with `content_type` (the request's `Content-Type`, if any).
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self, ManifestError> {
        let raw: Raw =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        let header = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim())
            .filter(|c| !c.is_empty() && *c != "application/json");
        let media_type = match (&raw.media_type, header) {
            (Some(f), Some(h)) if f != h => {
                return Err(ManifestError::MediaTypeMismatch {
                    field: f.clone(),
                    header: h.into(),
                })
            }
            (Some(f), _) => f.clone(),
            (None, Some(h)) => h.to_owned(),
            (None, None) if raw.manifests.is_some() => mt::OCI_INDEX.to_owned(),
            (None, None) => mt::OCI_MANIFEST.to_owned(),
        };
        if !SUPPORTED.contains(&media_type.as_str()) {
            return Err(ManifestError::MediaType(media_type));
        }
        if raw.schema_version != Some(2) {
            return Err(ManifestError::Malformed("schemaVersion must be 2".into()));
        }
        let is_index = media_type == mt::OCI_INDEX || media_type == mt::DOCKER_MANIFEST_LIST;
        let mut blobs = Vec::new();
        let mut manifests = Vec::new();
        if is_index {
            let list = raw
                .manifests
                .as_ref()
                .ok_or_else(|| ManifestError::Malformed("an index needs \"manifests\"".into()))?;
            for d in list {
                manifests.push(digest_of(d)?);
            }
        } else {
            let config = raw.config.as_ref().ok_or_else(|| {
                ManifestError::Malformed("an image manifest needs \"config\"".into())
            })?;
            blobs.push(digest_of(config)?);
            let layers = raw.layers.as_ref().ok_or_else(|| {
                ManifestError::Malformed("an image manifest needs \"layers\"".into())
            })?;
            for d in layers.iter().chain(raw.blobs.iter().flatten()) {
                let digest = digest_of(d)?;
                // non-distributable layers live elsewhere
                if d.urls.as_ref().is_none_or(|u| u.is_empty()) {
                    blobs.push(digest);
                }
            }
        }
        let subject = raw.subject.as_ref().map(digest_of).transpose()?;
        let artifact_type = raw.artifact_type.clone().or_else(|| {
            (!is_index)
                .then(|| raw.config.as_ref().map(|c| c.media_type.clone()))
                .flatten()
        });
        Ok(Self {
            media_type,
            artifact_type,
            blobs,
            manifests,
            subject,
            annotations: raw.annotations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_manifest() {
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": mt::OCI_MANIFEST, "artifactType": "application/x.sig",
            "config": {"mediaType": mt::OCI_CONFIG, "digest": d('a'), "size": 2},
            "layers": [{"mediaType": mt::OCI_LAYER_GZIP, "digest": d('b'), "size": 3},
                       {"mediaType": mt::OCI_LAYER_GZIP, "digest": d('c'), "size": 3, "urls": ["http://x"]}],
            "subject": {"mediaType": mt::OCI_MANIFEST, "digest": d('e'), "size": 5}
        });
        let p = Manifest::parse(m.to_string().as_bytes(), Some(mt::OCI_MANIFEST)).unwrap();
        assert_eq!(p.blobs.len(), 2);
        assert_eq!(p.subject.unwrap().to_string(), d('e'));
        assert_eq!(p.artifact_type.as_deref(), Some("application/x.sig"));
    }

    #[test]
    fn refusals() {
        let bad = [
            (
                serde_json::json!({"schemaVersion": 2, "mediaType": mt::OCI_MANIFEST}),
                Some(mt::OCI_MANIFEST),
            ),
            (
                serde_json::json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": []}),
                Some(mt::OCI_MANIFEST),
            ),
            (
                serde_json::json!({"schemaVersion": 1}),
                Some("application/vnd.docker.distribution.manifest.v1+json"),
            ),
            (
                serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": "sha256:1", "size": 1}]}),
                Some(mt::OCI_INDEX),
            ),
            (
                serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "x", "digest": d('a'), "size": -1}]}),
                Some(mt::OCI_INDEX),
            ),
        ];
        for (m, ct) in bad {
            assert!(
                Manifest::parse(m.to_string().as_bytes(), ct).is_err(),
                "{m}"
            );
        }
        assert!(Manifest::parse(b"{", None).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Manifest::parse(&bytes, None);
        }
        #[test]
        fn json_shaped_inputs_never_panic(s in "\\{\"schemaVersion\":2,\"(config|layers|manifests|subject)\":\\PC{0,80}\\}") {
            let _ = Manifest::parse(s.as_bytes(), Some(mt::OCI_MANIFEST));
        }
    }
}
