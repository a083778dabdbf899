//! The engine's entries in the audit log: every relaxed default, with the flag that asked.
//!
//! The runtime records the lifecycle (created, started, killed, deleted) in its own stream;
//! the engine adds what only it knows: which option relaxed which default, for which image.
//! A relaxation that cannot be recorded (full disk, unwritable log, bad audit settings) is
//! refused: [`record_relaxations`] returns the error and the engine does not create the
//! container. Logs are opened with [`LogConfig::from_env`] (fsync policy, checkpoint key).

use std::path::Path;

use palisade_audit::{Actor, AuditError, AuditLog, Event, LogConfig};

use crate::spec::Relaxation;

/// The engine's audit stream.
#[derive(Debug)]
pub struct EngineAudit {
    log: Option<AuditLog>,
}

impl EngineAudit {
    /// Opens the log at `path`; on failure, warns and records nothing.
    pub fn open(path: &Path) -> Self {
        match open_log(path) {
            Ok(log) => Self { log: Some(log) },
            Err(e) => {
                tracing::warn!(error = %e, path = ?path, "audit log unavailable; continuing without it");
                Self { log: None }
            }
        }
    }

    /// An auditor that records nothing.
    pub fn disabled() -> Self {
        Self { log: None }
    }

    /// Records one `PolicyRelaxed` event per relaxation.
    pub fn relaxed(&mut self, container_id: &str, image: &str, relaxations: &[Relaxation]) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        for relaxation in relaxations {
            let event = Event::PolicyRelaxed {
                actor: Actor::current_process(),
                container_id: Some(container_id.to_owned()),
                image: Some(image.to_owned()),
                relaxation: relaxation.what.clone(),
                reason: Some(format!("requested with {}", relaxation.flag)),
            };
            if let Err(e) = log.append(event) {
                tracing::warn!(error = %e, "failed to append to the audit log");
            }
        }
    }
}

/// Opens the log at `path` with the `PALISADE_AUDIT_*` settings.
pub fn open_log(path: &Path) -> Result<AuditLog, AuditError> {
    let config = LogConfig::from_env().map_err(|error| AuditError::Open {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, error.to_string()),
    })?;
    config.open(path)
}

/// Records one `PolicyRelaxed` event per relaxation in the log at `path`, failing on the
/// first that cannot be written: a relaxation the log cannot show must not happen.
pub fn record_relaxations(
    path: &Path,
    container_id: &str,
    image: &str,
    relaxations: &[Relaxation],
) -> Result<(), AuditError> {
    let mut log = open_log(path)?;
    for relaxation in relaxations {
        log.append(Event::PolicyRelaxed {
            actor: Actor::current_process(),
            container_id: Some(container_id.to_owned()),
            image: Some(image.to_owned()),
            relaxation: relaxation.what.clone(),
            reason: Some(format!("requested with {}", relaxation.flag)),
        })?;
    }
    Ok(())
}

/// One warning line per flag: `--privileged relaxes seccomp_disabled, ...`.
pub fn warnings(relaxations: &[Relaxation]) -> Vec<String> {
    let mut flags: Vec<&str> = Vec::new();
    for r in relaxations {
        if !flags.contains(&r.flag.as_str()) {
            flags.push(&r.flag);
        }
    }
    flags
        .into_iter()
        .map(|flag| {
            let what: Vec<&str> = relaxations
                .iter()
                .filter(|r| r.flag == flag)
                .map(|r| r.what.as_str())
                .collect();
            format!(
                "{flag} relaxes a secure default ({}); recorded in the audit log",
                what.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxations_become_events_and_one_warning_per_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.log");
        let relaxations = vec![
            Relaxation {
                what: "seccomp_disabled".into(),
                flag: "--privileged".into(),
            },
            Relaxation {
                what: "landlock_disabled".into(),
                flag: "--privileged".into(),
            },
            Relaxation {
                what: "writable_rootfs".into(),
                flag: "--read-only=false".into(),
            },
        ];
        EngineAudit::open(&path).relaxed("c1", "busybox", &relaxations);
        let report = palisade_audit::verify(&[&path]).unwrap();
        assert!(report.intact);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("policy_relaxed").count(), 3);
        assert!(text.contains("requested with --privileged"));
        let lines = warnings(&relaxations);
        // An unwritable log refuses instead of dropping.
        let blocked = dir.path().join("not-a-dir");
        std::fs::write(&blocked, b"").unwrap();
        let error = record_relaxations(&blocked.join("engine.log"), "c1", "busybox", &relaxations)
            .unwrap_err();
        assert!(
            error.to_string().contains("engine.log") || error.to_string().contains("not-a-dir"),
            "{error}"
        );
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("--privileged relaxes"));
        assert!(lines[0].contains("seccomp_disabled, landlock_disabled"));
    }
}
