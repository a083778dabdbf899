//! What an unpack did, and what it left out.

use std::path::PathBuf;

/// The compression a layer was detected to use, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// A plain tar stream.
    #[default]
    Uncompressed,
    /// gzip (one or more members).
    Gzip,
    /// zstd (one or more frames).
    Zstd,
}

/// What an unpack extracted, and everything it changed or dropped on the way: callers log this
/// to the audit trail, so nothing is left out silently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// How the layer was compressed.
    pub compression: Compression,
    /// Bytes read from the layer's source.
    pub compressed_bytes: u64,
    /// Bytes of the uncompressed tar stream.
    pub uncompressed_bytes: u64,
    /// Tar entries seen (after long-name and PAX headers are merged into their entry).
    pub entries: u64,
    /// Whiteouts applied (`.wh.<name>`).
    pub whiteouts: u64,
    /// Opaque directory markers applied (`.wh..wh..opq`).
    pub opaque_directories: u64,
    /// Device nodes left out under [`DevicePolicy::Drop`](super::DevicePolicy::Drop).
    pub dropped_devices: Vec<PathBuf>,
    /// Entries whose setuid or setgid bit was cleared.
    pub dropped_setuid: Vec<PathBuf>,
    /// Extended attributes not written, with the reason.
    pub dropped_xattrs: Vec<DroppedXattr>,
    /// Entries skipped as harmless: PAX global headers and aufs metadata (`.wh..wh.*`).
    pub skipped: Vec<PathBuf>,
}

/// An extended attribute that was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedXattr {
    /// The entry that carried it.
    pub path: PathBuf,
    /// The attribute's name (lossily decoded if it is not UTF-8).
    pub name: String,
    /// Why it was dropped.
    pub reason: &'static str,
}
