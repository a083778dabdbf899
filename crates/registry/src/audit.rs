//! Audit events (push, pull, delete, login, denied request, policy verdict) written to the
//! hash-chained log of `palisade-audit` by a background thread, so requests never wait for the
//! log's fsync. Every event is also a `palisade_registry::audit` tracing record.

use std::path::Path;
use std::sync::mpsc;

use palisade_audit::{AuditLog, Event};

/// Where audit events go.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Event>,
}

impl AuditSink {
    /// Opens (creating) the log at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self, palisade_audit::AuditError> {
        let mut log = AuditLog::open(path)?;
        let (tx, rx) = mpsc::channel::<Event>();
        std::thread::Builder::new()
            .name("registry-audit".into())
            .spawn(move || {
                for ev in rx {
                    if let Err(e) = log.append(ev) {
                        tracing::error!(error = %e, "writing the audit log failed");
                    }
                }
            })
            .map_err(|source| palisade_audit::AuditError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self { tx })
    }

    /// Queues an event.
    pub fn record(&self, event: Event) {
        let _ = self.tx.send(event);
    }
}
