//! Errors of the audit log: file access, locking, encoding.
//!
//! A log whose content is damaged is not an error of [`crate::verify`]: damage is what the
//! verifier reports in its [`crate::VerifyReport`]. Errors are what stops it from looking.

use std::path::PathBuf;

/// Something went wrong opening, reading, writing or rotating an audit log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The log's directory could not be created.
    #[error("failed to create audit log directory {path:?}")]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The log file could not be opened or created.
    #[error("failed to open audit log {path:?}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The path exists but is not a regular file.
    #[error("audit log {path:?} is not a regular file")]
    NotRegularFile {
        /// The path.
        path: PathBuf,
    },
    /// `flock` failed.
    #[error("failed to lock audit log {path:?}")]
    Lock {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::errno::Errno,
    },
    /// The path kept being replaced (rotated) while this process tried to lock it.
    #[error("audit log {path:?} was replaced {attempts} times while locking it")]
    Unstable {
        /// The file.
        path: PathBuf,
        /// How many times it tried.
        attempts: u32,
    },
    /// Reading the log failed.
    #[error("failed to read audit log {path:?}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing or syncing the log failed.
    #[error("failed to write audit log {path:?}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Rotation failed. The log's path still names a complete file; if `cleanup` is set, a
    /// leftover temporary file or `archive` link may remain.
    #[error(
        "failed to rotate audit log {path:?} to {archive:?}{}",
        .cleanup.as_ref().map(|error| format!(" (and cleaning up failed too: {error})")).unwrap_or_default()
    )]
    Rotate {
        /// The log file.
        path: PathBuf,
        /// Where it was to be archived.
        archive: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
        /// Why undoing the partial rotation failed, if it did.
        cleanup: Option<std::io::Error>,
    },
    /// An event could not be serialized (e.g. a map with non-string keys in `Other`).
    #[error("failed to serialize audit event of kind {kind}")]
    Serialize {
        /// The event's kind.
        kind: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A record would exceed [`crate::MAX_LINE_BYTES`].
    #[error("audit record of kind {kind} is {size} bytes, over the {limit}-byte limit")]
    RecordTooLarge {
        /// The event's kind.
        kind: &'static str,
        /// Its encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The sequence number reached `u64::MAX`.
    #[error("audit log {path:?} has no sequence numbers left")]
    SequenceExhausted {
        /// The file.
        path: PathBuf,
    },
    /// A checkpoint was asked for but the log has no signer.
    #[error("audit log {path:?} has no checkpoint signer configured")]
    NoSigner {
        /// The file.
        path: PathBuf,
    },
    /// The checkpoint signer failed; nothing was written.
    #[error("failed to sign a checkpoint for audit log {path:?}")]
    Sign {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: crate::checkpoint::SignError,
    },
    /// A line read by [`crate::Records`] is not a record this version understands.
    #[error("audit log {path:?} line {line} is not a readable record: {reason}")]
    UnreadableRecord {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
}
