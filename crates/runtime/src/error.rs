//! Errors of the container lifecycle.

use std::path::PathBuf;

/// What can go wrong while creating, starting or managing a container.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container id {0:?} is invalid: use 1-1024 characters from [A-Za-z0-9_+.-], not starting with '.'")]
    InvalidId(String),
    #[error("container {0:?} already exists: pick another id or run `delete` on it first")]
    AlreadyExists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {id:?} is {status}, but {operation} needs it to be {expected}")]
    WrongStatus {
        id: String,
        status: &'static str,
        operation: &'static str,
        expected: &'static str,
    },
    #[error("failed to read bundle config {path:?}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid bundle config {path:?}: {message}")]
    ParseConfig { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("rootfs {path:?} does not exist or is not a directory")]
    MissingRootfs { path: PathBuf },
    #[error("failed to {action} {path:?}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{action} failed")]
    Sys {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup setup failed")]
    Cgroup(#[from] palisade_cgroups::CgroupError),
    #[error("seccomp profile rejected")]
    Seccomp(#[from] palisade_seccomp::SeccompError),
    #[error("{kind} hook {path:?} failed: {message}")]
    Hook {
        kind: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("container init failed: {0}")]
    Init(String),
    #[error("state of container {id:?} is corrupt ({path:?})")]
    CorruptState {
        id: String,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Unsupported(String),
}

impl RuntimeError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        RuntimeError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(action: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        RuntimeError::Sys {
            action: action.into(),
            source: source.into(),
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
