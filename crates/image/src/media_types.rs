//! The media types of OCI and Docker v2 (schema 2) images, and what each means to Palisade.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image configuration.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, uncompressed tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip-compressed tar.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd-compressed tar.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable layer, uncompressed (deprecated by the spec, still met).
pub const OCI_LAYER_NONDISTRIBUTABLE_TAR: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable layer, gzip.
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable layer, zstd.
pub const OCI_LAYER_NONDISTRIBUTABLE_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// The `oci-layout` file's media type.
pub const OCI_LAYOUT_HEADER: &str = "application/vnd.oci.layout.header.v1+json";

/// Docker v2 schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image configuration.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, gzip-compressed tar.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker layer, uncompressed tar.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker foreign layer (Windows base layers; never present in a Linux image).
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker v2 schema 1 manifests, which Palisade refuses (unsigned content, no digests).
pub const DOCKER_MANIFEST_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Signed Docker v2 schema 1 manifest, refused as well.
pub const DOCKER_MANIFEST_SCHEMA1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The manifest media types Palisade accepts, in the order to put in an `Accept` header.
pub const ACCEPTED_MANIFESTS: [&str; 4] = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

/// How a layer's tar stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerCompression {
    /// A plain tar.
    Uncompressed,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl LayerCompression {
    /// The compression of a layer media type, or `None` when it is not a layer type Palisade
    /// can unpack.
    pub fn of_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            OCI_LAYER_TAR | OCI_LAYER_NONDISTRIBUTABLE_TAR | DOCKER_LAYER_TAR => {
                Some(Self::Uncompressed)
            }
            OCI_LAYER_GZIP
            | OCI_LAYER_NONDISTRIBUTABLE_GZIP
            | DOCKER_LAYER_GZIP
            | DOCKER_FOREIGN_LAYER_GZIP => Some(Self::Gzip),
            OCI_LAYER_ZSTD | OCI_LAYER_NONDISTRIBUTABLE_ZSTD => Some(Self::Zstd),
            _ => None,
        }
    }

    /// Sniffs the compression from the first bytes of a layer.
    pub fn sniff(head: &[u8]) -> Self {
        match head {
            [0x1f, 0x8b, ..] => Self::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Self::Zstd,
            _ => Self::Uncompressed,
        }
    }
}

/// What a document with a given media type is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// A single-platform image manifest (OCI or Docker v2).
    Manifest,
    /// A multi-platform index (OCI index or Docker manifest list).
    Index,
    /// An image configuration.
    Config,
    /// A layer.
    Layer(LayerCompression),
    /// A Docker schema 1 manifest (refused).
    LegacyManifest,
    /// Anything else (artifacts, attestations, unknown types).
    Other,
}

impl MediaKind {
    /// Classifies a media type.
    pub fn of(media_type: &str) -> Self {
        match media_type {
            OCI_MANIFEST | DOCKER_MANIFEST => Self::Manifest,
            OCI_INDEX | DOCKER_MANIFEST_LIST => Self::Index,
            OCI_CONFIG | DOCKER_CONFIG => Self::Config,
            DOCKER_MANIFEST_SCHEMA1 | DOCKER_MANIFEST_SCHEMA1_SIGNED => Self::LegacyManifest,
            other => match LayerCompression::of_media_type(other) {
                Some(compression) => Self::Layer(compression),
                None => Self::Other,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert_eq!(MediaKind::of(OCI_MANIFEST), MediaKind::Manifest);
        assert_eq!(MediaKind::of(DOCKER_MANIFEST), MediaKind::Manifest);
        assert_eq!(MediaKind::of(DOCKER_MANIFEST_LIST), MediaKind::Index);
        assert_eq!(MediaKind::of(DOCKER_CONFIG), MediaKind::Config);
        assert_eq!(
            MediaKind::of(DOCKER_LAYER_GZIP),
            MediaKind::Layer(LayerCompression::Gzip)
        );
        assert_eq!(
            MediaKind::of(OCI_LAYER_ZSTD),
            MediaKind::Layer(LayerCompression::Zstd)
        );
        assert_eq!(
            MediaKind::of(DOCKER_MANIFEST_SCHEMA1_SIGNED),
            MediaKind::LegacyManifest
        );
        assert_eq!(
            MediaKind::of("application/vnd.in-toto+json"),
            MediaKind::Other
        );
    }

    #[test]
    fn sniffs_compression() {
        assert_eq!(
            LayerCompression::sniff(&[0x1f, 0x8b, 8]),
            LayerCompression::Gzip
        );
        assert_eq!(
            LayerCompression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            LayerCompression::Zstd
        );
        assert_eq!(
            LayerCompression::sniff(b"bin/"),
            LayerCompression::Uncompressed
        );
    }

    #[test]
    fn oci_spec_agrees() {
        use oci_spec::image::{MediaType, ToDockerV2S2};
        assert_eq!(MediaType::ImageManifest.to_string(), OCI_MANIFEST);
        assert_eq!(MediaType::ImageIndex.to_string(), OCI_INDEX);
        assert_eq!(MediaType::ImageLayerGzip.to_string(), OCI_LAYER_GZIP);
        assert_eq!(
            MediaType::ImageManifest.to_docker_v2s2().unwrap(),
            DOCKER_MANIFEST
        );
        assert_eq!(
            MediaType::ImageIndex.to_docker_v2s2().unwrap(),
            DOCKER_MANIFEST_LIST
        );
    }
}
