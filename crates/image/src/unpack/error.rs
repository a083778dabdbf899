//! Why an unpack failed.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a layer could not be unpacked. Entry paths are the names from the layer, as bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    /// The target directory could not be opened or inspected.
    #[error("failed to open unpack target {path:?}")]
    OpenTarget {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `unpack_layer` extracts into an empty directory only.
    #[error("unpack target {path:?} is not an empty directory")]
    TargetNotEmpty { path: PathBuf },
    /// `unpack_layer_atomic` found its final directory already there.
    #[error("unpack target {path:?} already exists")]
    TargetExists { path: PathBuf },
    /// The options cannot be used as they are.
    #[error("invalid unpack options: {reason}")]
    InvalidOptions { reason: &'static str },
    /// Reading the layer from its source failed.
    #[error("failed to read the layer")]
    Read {
        #[source]
        source: io::Error,
    },
    /// The layer is compressed with a format Palisade does not read (xz, bzip2).
    #[error("layer is compressed with {format}, which is not supported (use gzip or zstd)")]
    UnsupportedCompression { format: &'static str },
    /// The compressed stream is corrupt.
    #[error("layer does not decompress")]
    Decompress {
        #[source]
        source: io::Error,
    },
    /// The stream ended early: in the compressed data, inside an entry, or before the tar
    /// end-of-archive marker.
    #[error("layer is truncated ({detail})")]
    Truncated { detail: &'static str },
    /// The tar structure is invalid (bad header checksum, size field, extension headers).
    #[error("layer is not a valid tar archive")]
    MalformedArchive {
        #[source]
        source: io::Error,
    },
    /// The uncompressed layer, or the file contents written, passed `max_total_bytes`.
    #[error("layer expands past the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The uncompressed stream grew more than `max_compression_ratio` times the compressed one.
    #[error("layer expands more than {limit} times its compressed size")]
    CompressionRatio { limit: u64 },
    /// More than `max_entries` entries.
    #[error("layer has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    /// One entry's headers (long names, PAX records) are larger than any sane header.
    #[error("an entry header in the layer is larger than {limit} bytes")]
    HeaderTooLarge { limit: u64 },
    /// Entry names, and what is kept about them, passed `max_metadata_bytes`.
    #[error("layer metadata passes the limit of {limit} bytes")]
    TooMuchMetadata { limit: u64 },
    /// An entry name or link target is longer than `max_path_len`, or a component longer than
    /// 255 bytes.
    #[error("entry {path:?} has a name longer than the limit of {limit} bytes")]
    NameTooLong { path: PathBuf, limit: usize },
    /// An entry name or link target contains a NUL byte.
    #[error("entry {path:?} has a NUL byte in its name or link target")]
    NulInName { path: PathBuf },
    /// An entry name is empty.
    #[error("layer has an entry with an empty name")]
    EmptyName,
    /// An entry name starts with `/`.
    #[error("entry {path:?} has an absolute path")]
    AbsolutePath { path: PathBuf },
    /// An entry name has a `..` component.
    #[error("entry {path:?} climbs out of its directory with '..'")]
    PathTraversal { path: PathBuf },
    /// An entry would be created through a symlink (which the layer, or an earlier one, made).
    #[error("entry {path:?} goes through the symlink {symlink:?}")]
    ThroughSymlink { path: PathBuf, symlink: PathBuf },
    /// A parent of an entry is a file, not a directory.
    #[error("entry {path:?} is below {parent:?}, which is not a directory")]
    ParentNotDirectory { path: PathBuf, parent: PathBuf },
    /// The same name appears twice in one layer.
    #[error("entry {path:?} appears more than once in the layer")]
    DuplicateEntry { path: PathBuf },
    /// A non-directory would replace a directory this same layer filled, or the layer root.
    #[error("entry {path:?} would replace a directory created by the same layer")]
    ReplacesDirectory { path: PathBuf },
    /// A hard link whose target is not a file extracted earlier from this layer.
    #[error("hard link {path:?} points to {target:?}: {problem}")]
    HardLink {
        path: PathBuf,
        target: PathBuf,
        problem: HardLinkProblem,
    },
    /// A device node, refused by [`DevicePolicy::Refuse`](super::DevicePolicy::Refuse).
    #[error("entry {path:?} is a device node ({major}:{minor}), refused by policy")]
    DeviceNode {
        path: PathBuf,
        major: u32,
        minor: u32,
    },
    /// The layer sets overlayfs's own xattrs, which would forge whiteouts or redirects.
    #[error("entry {path:?} sets the reserved xattr {name:?}")]
    ReservedXattr { path: PathBuf, name: String },
    /// A uid or gid outside the id shift's range, or not a valid id at all.
    #[error("entry {path:?} is owned by {kind} {id}, which cannot be mapped")]
    IdOutOfRange {
        path: PathBuf,
        kind: &'static str,
        id: u64,
    },
    /// A malformed whiteout (`.wh.` with no name, `.wh..`, a `.wh.` directory with children).
    #[error("entry {path:?} is not a valid whiteout")]
    InvalidWhiteout { path: PathBuf },
    /// An entry type Palisade does not extract (volume labels, multi-volume parts, PAX sparse).
    #[error("entry {path:?} has an unsupported type ({kind})")]
    UnsupportedEntry { path: PathBuf, kind: String },
    /// A filesystem operation in the target failed.
    #[error("failed to {operation} {path:?} in the unpack target")]
    Write {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// One layer of a stack failed.
    #[error("layer {index} of the stack cannot be applied")]
    Layer {
        index: usize,
        #[source]
        source: Box<UnpackError>,
    },
    /// The unpack failed, and removing the partial directory failed too.
    #[error("{error}; removing the partial directory {path:?} also failed: {cleanup}")]
    Cleanup {
        error: Box<UnpackError>,
        path: PathBuf,
        cleanup: io::Error,
    },
}

/// Why a hard link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardLinkProblem {
    /// The target is an absolute path.
    Absolute,
    /// The target climbs out with `..`.
    Traversal,
    /// The target is not an entry extracted earlier from this layer.
    NotInLayer,
    /// The target is a directory, symlink or device, not a regular file or FIFO.
    NotAFile,
}

impl fmt::Display for HardLinkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HardLinkProblem::Absolute => "the target is an absolute path",
            HardLinkProblem::Traversal => "the target climbs out with '..'",
            HardLinkProblem::NotInLayer => {
                "the target is not a file extracted earlier from this layer"
            }
            HardLinkProblem::NotAFile => "the target is not a regular file",
        })
    }
}

impl UnpackError {
    /// The error itself, or for [`UnpackError::Layer`] and [`UnpackError::Cleanup`] the error
    /// they wrap.
    pub fn innermost(&self) -> &UnpackError {
        match self {
            UnpackError::Layer { source, .. } => source.innermost(),
            UnpackError::Cleanup { error, .. } => error.innermost(),
            other => other,
        }
    }
}
