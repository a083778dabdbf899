//! The gate the engine calls before it uses an image (pull, run, create).
//!
//! Configuration: the policy file is `$PALISADE_VULN_POLICY`, else
//! `/etc/palisade/vuln-policy.toml` (root) or `$XDG_CONFIG_HOME/palisade/vuln-policy.toml`;
//! the database is [`crate::db::default_path`]. The choices:
//! - no policy file: nothing is scanned and nothing is refused (scanning is opt-in);
//! - a policy but no database: the image is let through with one note saying it was not
//!   scanned, unless the policy says `require_scan = true`, which refuses it;
//! - a policy and a database: the image is scanned; a verdict outside the policy refuses it.
//!   A corrupt database or an unreadable layer refuses too: no verdict is not a pass.
//!
//! Every verdict is appended to the audit log as a `ScanVerdict` event. Reports are kept beside
//! the images (`GateConfig::reports`, one per manifest digest) and reused until the database
//! is rebuilt, so a run does not rescan an unchanged image; the policy is applied afresh.

use std::path::{Path, PathBuf};

use palisade_audit::{Actor, AuditLog, Decision, Event, PolicyOutcome, SeverityCounts};
use palisade_image::{LocalImage, Store};

use crate::db::{Database, DbError};
use crate::image::ImageScanError;
use crate::policy::{PolicyError, Verdict, VulnPolicy};
use crate::report::Report;

/// Where the gate finds its policy, database and audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateConfig {
    /// The policy file (absent file: no gate).
    pub policy: PathBuf,
    /// The database file.
    pub database: PathBuf,
    /// Where verdicts are recorded (`None`: not recorded).
    pub audit_log: Option<PathBuf>,
    /// Where scan reports are kept beside the images, one per manifest digest, reused while
    /// the database is unchanged (`None`: every check scans).
    pub reports: Option<PathBuf>,
}

impl GateConfig {
    /// The default locations, with verdicts recorded in `audit_log`.
    pub fn from_env(audit_log: Option<PathBuf>) -> Self {
        Self {
            policy: default_policy_path(),
            database: crate::db::default_path(),
            audit_log,
            reports: None,
        }
    }
}

/// The default policy file.
pub fn default_policy_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PALISADE_VULN_POLICY") {
        return PathBuf::from(p);
    }
    if crate::db::default_path() == Path::new("/var/lib/palisade/vulndb") {
        return PathBuf::from("/etc/palisade/vuln-policy.toml");
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("palisade/vuln-policy.toml")
}

/// What the gate decided, when it let the image through.
#[derive(Debug, Clone, PartialEq)]
pub enum GateOutcome {
    /// No policy is configured: the image was not scanned.
    NoPolicy,
    /// A policy is configured but no database is installed: not scanned (say so).
    NotScanned(String),
    /// Scanned and within policy.
    Passed(Box<Verdict>),
}

/// Why the gate refused an image (or could not decide, which also refuses).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// Scanned and outside the policy.
    #[error("{}", .0.message())]
    Refused(Box<Verdict>),
    /// The policy file is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The policy requires a scan and there is no usable database.
    #[error("vulnerability policy requires a scan, but: {0}")]
    ScanRequired(DbError),
    /// The database is unusable.
    #[error(transparent)]
    Database(DbError),
    /// The image's layers could not be read.
    #[error("cannot scan the image: {0}")]
    Scan(#[from] ImageScanError),
}

fn record(config: &GateConfig, reference: &str, digest: &str, verdict: &Verdict) {
    let Some(path) = &config.audit_log else {
        return;
    };
    let c = verdict.counts;
    let event = Event::ScanVerdict {
        actor: Actor::current_process(),
        reference: reference.to_owned(),
        digest: digest.to_owned(),
        counts: SeverityCounts {
            critical: c.critical,
            high: c.high,
            medium: c.medium,
            low: c.low,
            unknown: c.unknown,
        },
        policy: verdict.policy.clone(),
        verdict: if verdict.allowed {
            PolicyOutcome::Passed
        } else {
            PolicyOutcome::Failed
        },
        decision: if verdict.allowed {
            Decision::Allow
        } else {
            Decision::Deny
        },
    };
    match AuditLog::open(path) {
        Ok(mut log) => {
            if let Err(e) = log.append(event) {
                tracing::warn!(error = %e, "failed to record the scan verdict in the audit log");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, path = ?path, "audit log unavailable; scan verdict not recorded")
        }
    }
}

fn report_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join(format!("{}.json", digest.replace(':', "-")))
}

/// A stored report for this manifest, if it was made with this very database.
fn cached_report(dir: &Path, digest: &str, db: &Database) -> Option<Report> {
    let bytes = std::fs::read(report_path(dir, digest)).ok()?;
    let report: Report = serde_json::from_slice(&bytes).ok()?;
    let m = db.meta();
    (report.database.built == m.built && report.database.schema == m.schema).then_some(report)
}

/// Keeps a report beside the image (best effort: a failure only costs a rescan).
fn store_report(dir: &Path, digest: &str, report: &Report) {
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let path = report_path(dir, digest);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(report).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        tracing::warn!(error = %e, "cannot keep the scan report beside the image");
    }
}

/// Scans `image` against the configured policy; `Err` means the image must not be used.
pub fn check_image(
    store: &Store,
    image: &LocalImage,
    reference: &str,
    config: &GateConfig,
) -> Result<GateOutcome, GateError> {
    if !config.policy.exists() {
        return Ok(GateOutcome::NoPolicy);
    }
    let policy = VulnPolicy::load(&config.policy)?;
    let db = match Database::open(&config.database) {
        Ok(db) => db,
        Err(e @ DbError::Missing(_)) if !policy.require_scan => {
            return Ok(GateOutcome::NotScanned(format!(
                "{reference} not scanned: {e}"
            )));
        }
        Err(e) if policy.require_scan => return Err(GateError::ScanRequired(e)),
        Err(e) => return Err(GateError::Database(e)),
    };
    let digest = image.manifest_digest.to_string();
    let cached = config
        .reports
        .as_deref()
        .and_then(|dir| cached_report(dir, &digest, &db));
    let mut report = match cached {
        Some(r) => r,
        None => {
            let inventory = crate::image::inventory_of_image(store, image)?;
            let report = db
                .match_inventory(&inventory)
                .map_err(GateError::Database)?;
            if let Some(dir) = &config.reports {
                store_report(dir, &digest, &report);
            }
            report
        }
    };
    report.target = reference.to_owned();
    let verdict = policy.evaluate(&report);
    record(
        config,
        reference,
        &image.manifest_digest.to_string(),
        &verdict,
    );
    if verdict.allowed {
        Ok(GateOutcome::Passed(Box::new(verdict)))
    } else {
        Err(GateError::Refused(Box::new(verdict)))
    }
}
