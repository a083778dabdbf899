//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong with keys, signatures and policies.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A key file or key text could not be used.
    #[error("key {what}: {reason}")]
    Key {
        /// Which key (a path or a description).
        what: String,
        /// Why.
        reason: String,
    },
    /// The password did not open an encrypted private key.
    #[error("key {what}: wrong password (or the file was altered)")]
    WrongPassword {
        /// Which key.
        what: String,
    },
    /// A signature did not verify, or its envelope is malformed.
    #[error("signature: {0}")]
    Signature(String),
    /// A signature source (a registry, a cache) failed.
    #[error("signature source: {0}")]
    Source(String),
    /// The policy file is wrong.
    #[error("trust policy {path}: {reason}")]
    Policy {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// The trust policy refuses an image.
    #[error("{image} is not trusted: {reason} (trust policy {policy}, scope {scope:?})")]
    Rejected {
        /// The image.
        image: String,
        /// The scope that applied.
        scope: String,
        /// The policy file.
        policy: String,
        /// Why: what is missing.
        reason: String,
    },
    /// A PKCS#11 token failed.
    #[error("PKCS#11: {0}")]
    Pkcs11(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl TrustError {
    pub(crate) fn key(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        TrustError::Key {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrustError::Io {
            path: path.into(),
            source,
        }
    }
}
