//! OCI and Docker v2 manifests, indexes and image configurations, parsed strictly from
//! untrusted bytes, and choosing the host's platform from an index.
//!
//! The types are `oci-spec`'s: a Docker v2 schema 2 manifest and manifest list have the same
//! shape as an OCI manifest and index, and a Docker image config the same fields as an OCI one
//! (plus some this crate ignores). What this module adds is the checks a registry or archive
//! cannot be trusted to have done: size limits, `schemaVersion`, a declared media type that
//! agrees with the one the document was fetched as, digests Palisade accepts, and layer media
//! types it can unpack.
//!
//! A manifest is always stored and hashed as the bytes it came as; these types are views of
//! those bytes and are never re-serialised to compute a digest.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, Platform};
use serde::Deserialize;

use crate::digest::{Digest, DigestError};
use crate::media_types::{self, LayerCompression, MediaKind};

/// The largest manifest or index accepted (the distribution spec's recommended 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// The largest image configuration accepted.
pub const MAX_CONFIG_SIZE: u64 = 8 << 20;

/// Why a manifest, index or config is refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Larger than the limit for its kind.
    #[error("document is {size} bytes, the limit is {limit}")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Not valid JSON of the expected shape.
    #[error("invalid {what} JSON")]
    Json {
        /// "manifest", "index" or "image config".
        what: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A `schemaVersion` other than 2.
    #[error("unsupported manifest schemaVersion {found:?}: only 2 is supported")]
    SchemaVersion {
        /// The version found, if any.
        found: Option<u64>,
    },
    /// A Docker schema 1 manifest.
    #[error(
        "docker schema 1 manifests are not supported (push the image again with a current client)"
    )]
    LegacySchema,
    /// The document's own `mediaType` disagrees with the type it was fetched or described as.
    #[error("manifest declares media type {declared:?} but was described as {described:?}")]
    MediaTypeMismatch {
        /// The `mediaType` field.
        declared: String,
        /// The type from the descriptor or HTTP response.
        described: String,
    },
    /// Neither a manifest nor an index.
    #[error("unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        /// The media type.
        media_type: String,
    },
    /// A descriptor's digest is not one Palisade accepts.
    #[error("descriptor has an invalid digest")]
    Digest {
        /// Why.
        #[source]
        source: DigestError,
    },
    /// The manifest's config is not an image configuration.
    #[error("not a container image: config media type is {media_type:?}")]
    NotAnImage {
        /// The config's media type.
        media_type: String,
    },
    /// A layer of a type Palisade cannot unpack.
    #[error("layer {index} has unsupported media type {media_type:?}")]
    UnsupportedLayer {
        /// The layer's position in the manifest.
        index: usize,
        /// Its media type.
        media_type: String,
    },
    /// The config's `rootfs.diff_ids` do not pair up with the manifest's layers.
    #[error("image config lists {diff_ids} layer diff_ids but the manifest has {layers} layers")]
    LayerCountMismatch {
        /// Number of diff_ids.
        diff_ids: usize,
        /// Number of layers.
        layers: usize,
    },
    /// The config's `rootfs.type` is not `layers`.
    #[error("image config rootfs type is {found:?}, expected \"layers\"")]
    RootFsType {
        /// The type found.
        found: String,
    },
    /// No manifest in an index fits the wanted platform.
    #[error("no image for platform {wanted} in the index (it has: {available})")]
    NoMatchingPlatform {
        /// The wanted platform.
        wanted: String,
        /// The platforms the index offers, comma-separated.
        available: String,
    },
    /// A platform string that is not `os/arch[/variant]`.
    #[error("invalid platform {input:?}: expected os/arch[/variant], such as linux/amd64")]
    InvalidPlatform {
        /// The input.
        input: String,
    },
}

/// A parsed manifest or index.
#[derive(Debug, Clone)]
pub enum ManifestDocument {
    /// A single-platform image manifest (OCI or Docker v2 schema 2).
    Image(Box<ImageManifest>),
    /// A multi-platform index (OCI index or Docker manifest list).
    Index(Box<ImageIndex>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
    config: Option<serde::de::IgnoredAny>,
}

impl ManifestDocument {
    /// Parses a manifest or index from untrusted bytes. `described_as` is the media type the
    /// document was fetched or referenced as (HTTP `Content-Type`, a descriptor's
    /// `mediaType`); when both it and the document's own `mediaType` are present they must
    /// agree.
    pub fn parse(bytes: &[u8], described_as: Option<&str>) -> Result<Self, ManifestError> {
        check_size(bytes.len(), MAX_MANIFEST_SIZE)?;
        let probe: Probe = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "manifest",
            source,
        })?;
        let version = probe
            .schema_version
            .as_ref()
            .and_then(serde_json::Value::as_u64);
        if version == Some(1) {
            return Err(ManifestError::LegacySchema);
        }
        if version != Some(2) {
            return Err(ManifestError::SchemaVersion { found: version });
        }
        // An empty or generic Content-Type (`application/json`) says nothing.
        let described = described_as.filter(|m| MediaKind::of(m) != MediaKind::Other);
        if let (Some(declared), Some(described)) = (&probe.media_type, described) {
            if declared != described {
                return Err(ManifestError::MediaTypeMismatch {
                    declared: declared.clone(),
                    described: described.to_owned(),
                });
            }
        }
        let kind = match probe.media_type.as_deref().or(described) {
            Some(media_type) => match MediaKind::of(media_type) {
                MediaKind::Manifest => MediaKind::Manifest,
                MediaKind::Index => MediaKind::Index,
                MediaKind::LegacyManifest => return Err(ManifestError::LegacySchema),
                _ => {
                    return Err(ManifestError::UnsupportedMediaType {
                        media_type: media_type.to_owned(),
                    })
                }
            },
            // No media type anywhere: the OCI spec lets the shape decide.
            None if probe.manifests.is_some() => MediaKind::Index,
            None if probe.config.is_some() => MediaKind::Manifest,
            None => {
                return Err(ManifestError::UnsupportedMediaType {
                    media_type: String::new(),
                })
            }
        };
        let document = if kind == MediaKind::Index {
            let index: ImageIndex =
                serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
                    what: "index",
                    source,
                })?;
            for descriptor in index.manifests() {
                descriptor_digest(descriptor)?;
            }
            Self::Index(Box::new(index))
        } else {
            let manifest: ImageManifest =
                serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
                    what: "manifest",
                    source,
                })?;
            descriptor_digest(manifest.config())?;
            for layer in manifest.layers() {
                descriptor_digest(layer)?;
            }
            Self::Image(Box::new(manifest))
        };
        Ok(document)
    }

    /// The media type to describe this document with: its own `mediaType`, or the OCI type of
    /// its kind when it declares none.
    pub fn media_type(&self) -> String {
        let (declared, default) = match self {
            Self::Image(m) => (m.media_type().as_ref(), media_types::OCI_MANIFEST),
            Self::Index(i) => (i.media_type().as_ref(), media_types::OCI_INDEX),
        };
        declared.map_or_else(|| default.to_owned(), ToString::to_string)
    }

    /// Every descriptor this document references directly (config and layers, or the index's
    /// manifests).
    pub fn children(&self) -> Vec<&Descriptor> {
        match self {
            Self::Image(m) => std::iter::once(m.config()).chain(m.layers()).collect(),
            Self::Index(i) => i.manifests().iter().collect(),
        }
    }
}

fn check_size(size: usize, limit: u64) -> Result<(), ManifestError> {
    let size = size as u64;
    if size > limit {
        return Err(ManifestError::TooLarge { size, limit });
    }
    Ok(())
}

/// A descriptor's digest, checked strictly (sha256/sha512, lowercase, right length).
pub fn descriptor_digest(descriptor: &Descriptor) -> Result<Digest, ManifestError> {
    Digest::try_from(descriptor.digest()).map_err(|source| ManifestError::Digest { source })
}

/// Checks that a manifest describes a runnable container image: an image config and layers of
/// types Palisade can unpack. Returns each layer's compression.
pub fn check_image_manifest(
    manifest: &ImageManifest,
) -> Result<Vec<LayerCompression>, ManifestError> {
    let config_type = manifest.config().media_type().to_string();
    if MediaKind::of(&config_type) != MediaKind::Config {
        return Err(ManifestError::NotAnImage {
            media_type: config_type,
        });
    }
    manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(index, layer)| {
            let media_type = layer.media_type().to_string();
            LayerCompression::of_media_type(&media_type)
                .ok_or(ManifestError::UnsupportedLayer { index, media_type })
        })
        .collect()
}

/// Parses an image configuration from untrusted bytes and checks its `rootfs`.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration, ManifestError> {
    check_size(bytes.len(), MAX_CONFIG_SIZE)?;
    let config: ImageConfiguration =
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "image config",
            source,
        })?;
    if config.rootfs().typ() != "layers" {
        return Err(ManifestError::RootFsType {
            found: config.rootfs().typ().clone(),
        });
    }
    Ok(config)
}

/// The config's diff_ids as strict digests, checked to pair up one-to-one with the manifest's
/// layers.
pub fn diff_ids(
    manifest: &ImageManifest,
    config: &ImageConfiguration,
) -> Result<Vec<Digest>, ManifestError> {
    let ids = config.rootfs().diff_ids();
    if ids.len() != manifest.layers().len() {
        return Err(ManifestError::LayerCountMismatch {
            diff_ids: ids.len(),
            layers: manifest.layers().len(),
        });
    }
    ids.iter()
        .map(|id| Digest::parse(id).map_err(|source| ManifestError::Digest { source }))
        .collect()
}

/// An `os/architecture[/variant]` triple, normalised the way containerd does (`aarch64` is
/// `arm64`, `arm64/v8` is `arm64`, `arm` alone is `arm/v7`, `amd64/v1` is `amd64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlatformSpec {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl PlatformSpec {
    /// A normalised platform.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let os = os.to_ascii_lowercase();
        let (architecture, variant) = normalise_arch(
            &architecture.to_ascii_lowercase(),
            variant.map(str::to_ascii_lowercase).as_deref(),
        );
        Self {
            os,
            architecture,
            variant,
        }
    }

    /// The platform this process runs on (`linux/amd64`, `linux/arm64`, ...).
    pub fn host() -> Self {
        Self::new(std::env::consts::OS, std::env::consts::ARCH, None)
    }

    /// The platform of an index entry.
    pub fn of(platform: &Platform) -> Self {
        Self::new(
            &platform.os().to_string(),
            &platform.architecture().to_string(),
            platform.variant().as_deref(),
        )
    }

    /// The operating system (`linux`).
    pub fn os(&self) -> &str {
        &self.os
    }

    /// The architecture in OCI/Go spelling (`amd64`, `arm64`, `arm`, `386`).
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The variant, if the architecture has one that is not its default (`v7` for arm).
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// How well an image for `candidate` fits a host of this platform: `None` when it cannot
    /// run, a higher rank for a closer fit (an arm/v7 host prefers v7 over v6 over v5).
    pub fn rank(&self, candidate: &PlatformSpec) -> Option<u32> {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return None;
        }
        if self.variant == candidate.variant {
            return Some(u32::MAX);
        }
        let default = match self.architecture.as_str() {
            "amd64" => 1,
            "arm" => 7,
            "arm64" => 8,
            _ => return None,
        };
        let level = |variant: &Option<String>| -> Option<u32> {
            match variant {
                None => Some(default),
                Some(v) => v.strip_prefix('v')?.parse().ok(),
            }
        };
        let host = level(&self.variant)?;
        let image = level(&candidate.variant)?;
        (image <= host).then_some(image)
    }
}

fn normalise_arch(architecture: &str, variant: Option<&str>) -> (String, Option<String>) {
    let variant = variant.filter(|v| !v.is_empty());
    let (architecture, variant) = match (architecture, variant) {
        ("x86_64" | "x86-64" | "amd64", Some("v1")) | ("x86_64" | "x86-64" | "amd64", None) => {
            ("amd64", None)
        }
        ("x86_64" | "x86-64", v) => ("amd64", v),
        ("aarch64" | "arm64", Some("8" | "v8" | "v8.0") | None) => ("arm64", None),
        ("aarch64", v) => ("arm64", v),
        ("armhf", _) => ("arm", Some("v7")),
        ("armel", _) => ("arm", Some("v6")),
        ("arm", None) => ("arm", Some("v7")),
        ("arm", Some(v @ ("5" | "6" | "7" | "8"))) => {
            return ("arm".to_owned(), Some(format!("v{v}")));
        }
        ("i386" | "i486" | "i586" | "i686" | "x86", v) => ("386", v),
        (a, v) => (a, v),
    };
    (architecture.to_owned(), variant.map(str::to_owned))
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for PlatformSpec {
    type Err = ManifestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ManifestError::InvalidPlatform {
            input: s.chars().take(80).collect(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Self::new(os, arch, None)),
            [os, arch, variant] => Ok(Self::new(os, arch, Some(variant))),
            _ => Err(bad()),
        }
    }
}

/// Chooses the manifest for `wanted` from an index: same os and architecture, the closest
/// compatible variant, the first such entry on a tie. Entries that are not image manifests
/// (attestations, nested indexes) are skipped. An index whose only image manifest has no
/// platform at all yields that manifest.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    wanted: &PlatformSpec,
) -> Result<&'a Descriptor, ManifestError> {
    let images: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| MediaKind::of(d.media_type().as_ref()) == MediaKind::Manifest)
        .collect();
    let mut best: Option<(u32, &Descriptor)> = None;
    for descriptor in &images {
        let Some(platform) = descriptor.platform() else {
            continue;
        };
        if let Some(rank) = wanted.rank(&PlatformSpec::of(platform)) {
            if best.is_none_or(|(best_rank, _)| rank > best_rank) {
                best = Some((rank, descriptor));
            }
        }
    }
    if let Some((_, descriptor)) = best {
        return Ok(descriptor);
    }
    if let [only] = images.as_slice() {
        if only.platform().is_none() {
            return Ok(only);
        }
    }
    let available = images
        .iter()
        .filter_map(|d| {
            d.platform()
                .as_ref()
                .map(|p| PlatformSpec::of(p).to_string())
        })
        .collect::<Vec<_>>()
        .join(", ");
    Err(ManifestError::NoMatchingPlatform {
        wanted: wanted.to_string(),
        available: if available.is_empty() {
            "none".to_owned()
        } else {
            available
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_types::*;

    fn digest(n: u8) -> String {
        Digest::of(&[n]).to_string()
    }

    fn index_json(entries: &[(&str, &str, Option<&str>)]) -> String {
        let manifests: Vec<String> = entries
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let variant = variant.map_or(String::new(), |v| format!(r#","variant":"{v}""#));
                format!(
                    r#"{{"mediaType":"{OCI_MANIFEST}","size":10,"digest":"{}","platform":{{"os":"{os}","architecture":"{arch}"{variant}}}}}"#,
                    digest(i as u8)
                )
            })
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            manifests.join(",")
        )
    }

    fn pick(entries: &[(&str, &str, Option<&str>)], wanted: &str) -> Option<usize> {
        let doc = ManifestDocument::parse(index_json(entries).as_bytes(), None).unwrap();
        let ManifestDocument::Index(index) = doc else {
            panic!("not an index")
        };
        let wanted: PlatformSpec = wanted.parse().unwrap();
        let chosen = select_platform(&index, &wanted).ok()?;
        index.manifests().iter().position(|d| d == chosen)
    }

    #[test]
    fn selects_host_platform_with_variants() {
        let entries = [
            ("linux", "arm", Some("v6")),
            ("linux", "arm", Some("v7")),
            ("linux", "arm64", Some("v8")),
            ("linux", "amd64", None),
            ("windows", "amd64", None),
        ];
        assert_eq!(pick(&entries, "linux/amd64"), Some(3));
        assert_eq!(pick(&entries, "linux/arm64"), Some(2));
        assert_eq!(pick(&entries, "linux/aarch64/v8"), Some(2));
        assert_eq!(pick(&entries, "linux/arm/v7"), Some(1));
        assert_eq!(pick(&entries, "linux/arm"), Some(1));
        assert_eq!(pick(&entries, "linux/arm/v6"), Some(0));
        assert_eq!(pick(&entries, "linux/arm/v5"), None);
        assert_eq!(pick(&entries, "windows/amd64"), Some(4));
        assert_eq!(pick(&entries, "linux/s390x"), None);
        // arm64 without a variant matches a host that names v8, and an amd64/v2 host runs v1.
        assert_eq!(pick(&[("linux", "arm64", None)], "linux/arm64/v8"), Some(0));
        assert_eq!(
            pick(
                &[("linux", "amd64", Some("v3")), ("linux", "amd64", None)],
                "linux/amd64/v2"
            ),
            Some(1)
        );
        assert_eq!(
            pick(
                &[("linux", "amd64", Some("v2")), ("linux", "amd64", None)],
                "linux/amd64/v3"
            ),
            Some(0)
        );
    }

    #[test]
    fn host_platform_is_normalised() {
        let host = PlatformSpec::host();
        assert_eq!(host.os(), "linux");
        assert!(
            ["amd64", "arm64", "arm", "386", "riscv64", "s390x", "ppc64le"]
                .contains(&host.architecture())
        );
        assert_eq!(
            PlatformSpec::new("linux", "x86_64", Some("v1")).to_string(),
            "linux/amd64"
        );
    }

    #[test]
    fn no_match_lists_what_is_there() {
        let doc = ManifestDocument::parse(
            index_json(&[("linux", "arm64", None)]).as_bytes(),
            Some(OCI_INDEX),
        )
        .unwrap();
        let ManifestDocument::Index(index) = doc else {
            panic!()
        };
        let err = select_platform(&index, &"linux/amd64".parse().unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no image for platform linux/amd64 in the index (it has: linux/arm64)"
        );
    }

    fn manifest_json(media_type: Option<&str>, config_type: &str, layer_type: &str) -> String {
        let mt = media_type.map_or(String::new(), |m| format!(r#""mediaType":"{m}","#));
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"{config_type}","size":2,"digest":"{}"}},"layers":[{{"mediaType":"{layer_type}","size":3,"digest":"{}"}}]}}"#,
            digest(1),
            digest(2)
        )
    }

    #[test]
    fn parses_oci_and_docker_manifests() {
        for (mt, ct, lt) in [
            (Some(OCI_MANIFEST), OCI_CONFIG, OCI_LAYER_GZIP),
            (None, OCI_CONFIG, OCI_LAYER_TAR),
            (Some(DOCKER_MANIFEST), DOCKER_CONFIG, DOCKER_LAYER_GZIP),
        ] {
            let json = manifest_json(mt, ct, lt);
            let ManifestDocument::Image(m) =
                ManifestDocument::parse(json.as_bytes(), None).unwrap()
            else {
                panic!("not a manifest")
            };
            assert_eq!(check_image_manifest(&m).unwrap().len(), 1);
        }
        let docker = manifest_json(Some(DOCKER_MANIFEST), DOCKER_CONFIG, DOCKER_LAYER_GZIP);
        let doc = ManifestDocument::parse(docker.as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(doc.media_type(), DOCKER_MANIFEST);
        assert_eq!(doc.children().len(), 2);
    }

    #[test]
    fn refuses_bad_manifests() {
        let ok = manifest_json(Some(OCI_MANIFEST), OCI_CONFIG, OCI_LAYER_GZIP);
        let err = ManifestDocument::parse(ok.as_bytes(), Some(OCI_INDEX)).unwrap_err();
        assert!(
            matches!(err, ManifestError::MediaTypeMismatch { .. }),
            "{err}"
        );
        // A generic content type says nothing and is not a mismatch.
        assert!(ManifestDocument::parse(ok.as_bytes(), Some("application/json")).is_ok());
        let v1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert!(matches!(
            ManifestDocument::parse(v1.as_bytes(), None),
            Err(ManifestError::LegacySchema)
        ));
        let v3 = ok.replace("\"schemaVersion\":2", "\"schemaVersion\":3");
        assert!(matches!(
            ManifestDocument::parse(v3.as_bytes(), None),
            Err(ManifestError::SchemaVersion { found: Some(3) })
        ));
        let bad_digest = ok.replace(&digest(2), "sha256:0000");
        assert!(ManifestDocument::parse(bad_digest.as_bytes(), None).is_err());
        let md5 = ok.replace(&digest(2), "md5:d41d8cd98f00b204e9800998ecf8427e");
        assert!(matches!(
            ManifestDocument::parse(md5.as_bytes(), None),
            Err(ManifestError::Digest { .. })
        ));
        let huge = vec![b' '; (MAX_MANIFEST_SIZE + 1) as usize];
        assert!(matches!(
            ManifestDocument::parse(&huge, None),
            Err(ManifestError::TooLarge { .. })
        ));
        assert!(ManifestDocument::parse(b"not json", None).is_err());
        let artifact = manifest_json(
            Some(OCI_MANIFEST),
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            OCI_LAYER_GZIP,
        );
        let ManifestDocument::Image(m) =
            ManifestDocument::parse(artifact.as_bytes(), None).unwrap()
        else {
            panic!()
        };
        assert!(matches!(
            check_image_manifest(&m),
            Err(ManifestError::NotAnImage { .. })
        ));
        let weird_layer = manifest_json(Some(OCI_MANIFEST), OCI_CONFIG, "application/x-executable");
        let ManifestDocument::Image(m) =
            ManifestDocument::parse(weird_layer.as_bytes(), None).unwrap()
        else {
            panic!()
        };
        assert!(matches!(
            check_image_manifest(&m),
            Err(ManifestError::UnsupportedLayer { index: 0, .. })
        ));
    }

    #[test]
    fn parses_docker_config_and_checks_diff_ids() {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","container_config":{{"Hostname":"x"}},"config":{{"Env":["PATH=/bin"],"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            digest(9)
        );
        let config = parse_config(config.as_bytes()).unwrap();
        let json = manifest_json(Some(DOCKER_MANIFEST), DOCKER_CONFIG, DOCKER_LAYER_GZIP);
        let ManifestDocument::Image(m) = ManifestDocument::parse(json.as_bytes(), None).unwrap()
        else {
            panic!()
        };
        assert_eq!(diff_ids(&m, &config).unwrap(), vec![Digest::of(&[9])]);
        let bad =
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"tarball","diff_ids":[]}}"#;
        assert!(matches!(
            parse_config(bad.as_bytes()),
            Err(ManifestError::RootFsType { .. })
        ));
        let two =
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let two = parse_config(two.as_bytes()).unwrap();
        assert!(matches!(
            diff_ids(&m, &two),
            Err(ManifestError::LayerCountMismatch { .. })
        ));
    }
}
