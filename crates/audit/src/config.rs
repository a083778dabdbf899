//! How writers open the log: fsync policy and checkpoint signing, from the environment.
//!
//! The engine, the runtime and the registry open their logs through [`LogConfig`], so one
//! setting covers every writer:
//!
//! - `PALISADE_AUDIT_FSYNC`: `always`, `never` (the default) or `interval=5s`
//!   ([`Durability`]);
//! - `PALISADE_AUDIT_KEY`: a PEM P-256 private key; when set, writers seal the chain with
//!   signed checkpoints ([`crate::checkpoint`]);
//! - `PALISADE_AUDIT_CHECKPOINT_EVERY`: records between checkpoints (default 1000; 0 means only
//!   on rotation).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::{CheckpointSigner, EcdsaP256Signer, KeyError};
use crate::error::AuditError;
use crate::log::{AuditLog, Durability};

/// Environment variable naming the fsync policy.
pub const ENV_FSYNC: &str = "PALISADE_AUDIT_FSYNC";
/// Environment variable naming the checkpoint signing key (PEM).
pub const ENV_KEY: &str = "PALISADE_AUDIT_KEY";
/// Environment variable giving the records between checkpoints.
pub const ENV_CHECKPOINT_EVERY: &str = "PALISADE_AUDIT_CHECKPOINT_EVERY";
/// Records between checkpoints unless configured.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1000;

/// How a writer opens its log.
#[derive(Clone)]
pub struct LogConfig {
    /// The fsync policy.
    pub durability: Durability,
    /// Who signs checkpoints; `None` writes none.
    pub signer: Option<Arc<dyn CheckpointSigner>>,
    /// Records between checkpoints.
    pub checkpoint_every: u64,
}

impl fmt::Debug for LogConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LogConfig")
            .field("durability", &self.durability)
            .field(
                "signer",
                &self.signer.as_ref().map(|signer| signer.key_id()),
            )
            .field("checkpoint_every", &self.checkpoint_every)
            .finish()
    }
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            durability: Durability::default(),
            signer: None,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
        }
    }
}

/// A setting in the environment is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `PALISADE_AUDIT_FSYNC` or `PALISADE_AUDIT_CHECKPOINT_EVERY` has a bad value.
    #[error("{variable}: {reason}")]
    Value {
        /// The variable.
        variable: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint key could not be loaded.
    #[error("{ENV_KEY}: {source}")]
    Key {
        /// The cause.
        #[source]
        source: KeyError,
    },
}

impl LogConfig {
    /// Reads the `PALISADE_AUDIT_*` variables (see the module documentation).
    pub fn from_env() -> Result<LogConfig, ConfigError> {
        let mut config = LogConfig::default();
        if let Some(value) = std::env::var_os(ENV_FSYNC) {
            config.durability =
                value
                    .to_string_lossy()
                    .parse()
                    .map_err(|reason| ConfigError::Value {
                        variable: ENV_FSYNC,
                        reason,
                    })?;
        }
        if let Some(value) = std::env::var_os(ENV_CHECKPOINT_EVERY) {
            config.checkpoint_every =
                value
                    .to_string_lossy()
                    .parse()
                    .map_err(|_| ConfigError::Value {
                        variable: ENV_CHECKPOINT_EVERY,
                        reason: format!("{value:?} is not a whole number of records"),
                    })?;
        }
        if let Some(path) = std::env::var_os(ENV_KEY).filter(|path| !path.is_empty()) {
            config = config.with_key_file(PathBuf::from(path))?;
        }
        Ok(config)
    }

    /// Signs checkpoints with the P-256 private key in the PEM file at `path`.
    pub fn with_key_file(mut self, path: impl AsRef<Path>) -> Result<LogConfig, ConfigError> {
        let signer =
            EcdsaP256Signer::from_pem_file(path).map_err(|source| ConfigError::Key { source })?;
        self.signer = Some(Arc::new(signer));
        Ok(self)
    }

    /// Opens the log at `path` with these settings.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<AuditLog, AuditError> {
        let log = AuditLog::open(path)?.with_durability(self.durability);
        Ok(match &self.signer {
            Some(signer) => log.with_checkpoints(signer.clone(), self.checkpoint_every),
            None => log,
        })
    }
}
