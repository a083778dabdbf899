//! The vulnerability policy and its verdict.
//!
//! ```toml
//! name = "production"
//! max_severity = "MEDIUM"      # HIGH and CRITICAL findings refuse the image
//! ignore_unfixed = false       # true: findings without a fix never refuse
//! unknown_severity = "UNKNOWN" # how to rate findings without a rating (e.g. "HIGH")
//! require_scan = false         # true: refuse when there is no vulnerability database
//! fail_on_incomplete = false   # true: refuse when part of the image could not be read
//!
//! [[allow]]
//! id = "CVE-2023-45853"        # or any alias: GHSA-…, PYSEC-…, GO-…
//! expires = "2026-12-31"       # after this date the exception no longer applies
//! reason = "zlib minizip is not built in"
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cvss::Severity;
use crate::report::{Counts, DbStamp, Finding, Report};

/// Media type of a serialized [`Verdict`] (for storing it as an OCI referrer artifact).
pub const VERDICT_MEDIA_TYPE: &str = "application/vnd.palisade.scan.verdict.v1+json";

/// An accepted risk: one vulnerability id, until a date, for a stated reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    /// The vulnerability id or any of its aliases.
    pub id: String,
    /// Last day (YYYY-MM-DD, UTC) the exception applies.
    pub expires: String,
    /// Why the risk is accepted.
    pub reason: String,
}

/// What a policy allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VulnPolicy {
    /// A name recorded with each verdict.
    #[serde(default = "default_name")]
    pub name: String,
    /// The most severe rating allowed; anything above refuses the image.
    pub max_severity: Severity,
    /// Findings without a fixed version never refuse.
    #[serde(default)]
    pub ignore_unfixed: bool,
    /// The rating given to findings that have none.
    #[serde(default = "unknown")]
    pub unknown_severity: Severity,
    /// Refuse when no vulnerability database is installed.
    #[serde(default)]
    pub require_scan: bool,
    /// Refuse when part of the image could not be read or evaluated.
    #[serde(default)]
    pub fail_on_incomplete: bool,
    /// Accepted risks.
    #[serde(default)]
    pub allow: Vec<Exception>,
}

fn default_name() -> String {
    "default".into()
}

fn unknown() -> Severity {
    Severity::Unknown
}

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Unreadable.
    #[error("cannot read the vulnerability policy {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Not valid TOML/JSON for a policy.
    #[error("vulnerability policy {path} is invalid: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn valid_date(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && (1..=12).contains(&d[5..7].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&d[8..10].parse::<u32>().unwrap_or(0))
}

/// Today's date, UTC, as YYYY-MM-DD.
pub fn today() -> String {
    palisade_audit::Timestamp::now()
        .to_string()
        .chars()
        .take(10)
        .collect()
}

impl VulnPolicy {
    /// Parses a policy (JSON when it starts with `{`, TOML otherwise) and validates it.
    pub fn parse(text: &str, origin: &str) -> Result<Self, PolicyError> {
        let invalid = |reason: String| PolicyError::Invalid {
            path: origin.to_owned(),
            reason,
        };
        let policy: VulnPolicy = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| invalid(e.to_string()))?
        };
        for (i, e) in policy.allow.iter().enumerate() {
            if e.id.trim().is_empty() {
                return Err(invalid(format!("allow entry {} has an empty id", i + 1)));
            }
            if !valid_date(&e.expires) {
                return Err(invalid(format!(
                    "allow entry {} ({}): expires {:?} is not a YYYY-MM-DD date",
                    i + 1,
                    e.id,
                    e.expires
                )));
            }
            if e.reason.trim().is_empty() {
                return Err(invalid(format!(
                    "allow entry {} ({}) needs a reason",
                    i + 1,
                    e.id
                )));
            }
        }
        Ok(policy)
    }

    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Judges a report (on `today`, YYYY-MM-DD).
    pub fn evaluate_on(&self, report: &Report, today: &str) -> Verdict {
        let mut violations = Vec::new();
        let mut excepted = Vec::new();
        let mut expired = Vec::new();
        for f in &report.findings {
            let rating = if f.severity == Severity::Unknown {
                self.unknown_severity
            } else {
                f.severity
            };
            if rating <= self.max_severity || (self.ignore_unfixed && f.fixed.is_empty()) {
                continue;
            }
            let ids: Vec<&str> = std::iter::once(f.id.as_str())
                .chain(f.aliases.iter().map(String::as_str))
                .collect();
            match self.allow.iter().find(|e| ids.contains(&e.id.as_str())) {
                Some(e) if e.expires.as_str() >= today => {
                    excepted.push(format!("{} ({}, until {})", f.id, e.reason, e.expires))
                }
                Some(e) => {
                    expired.push(format!("{} (exception expired {})", f.id, e.expires));
                    violations.push(f.clone());
                }
                None => violations.push(f.clone()),
            }
        }
        let incomplete = !report.warnings.is_empty();
        let allowed = violations.is_empty() && !(self.fail_on_incomplete && incomplete);
        Verdict {
            target: report.target.clone(),
            policy: self.name.clone(),
            allowed,
            max_severity: self.max_severity,
            counts: report.counts(),
            violations,
            excepted,
            expired,
            incomplete: report.warnings.clone(),
            database: report.database.clone(),
            evaluated: palisade_audit::Timestamp::now().to_string(),
        }
    }

    /// Judges a report today.
    pub fn evaluate(&self, report: &Report) -> Verdict {
        self.evaluate_on(report, &today())
    }
}

/// A policy's judgement of one scan, serializable so it can be stored beside the image (or
/// as a referrer artifact of media type [`VERDICT_MEDIA_TYPE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// What was scanned.
    pub target: String,
    /// The policy's name.
    pub policy: String,
    /// Whether the image may be used.
    pub allowed: bool,
    /// The policy's limit.
    pub max_severity: Severity,
    /// All findings per severity (before exceptions).
    pub counts: Counts,
    /// Findings above the limit and not excepted, worst first.
    pub violations: Vec<Finding>,
    /// Findings let through by an exception, with its reason.
    #[serde(default)]
    pub excepted: Vec<String>,
    /// Exceptions that matched but have expired.
    #[serde(default)]
    pub expired: Vec<String>,
    /// What could not be read or evaluated.
    #[serde(default)]
    pub incomplete: Vec<String>,
    /// The database the scan used; a verdict is stale once the database is rebuilt.
    pub database: DbStamp,
    /// When the verdict was made.
    pub evaluated: String,
}

impl Verdict {
    /// Whether this verdict was made with the database `db` (false once it is rebuilt).
    pub fn is_current(&self, db: &crate::db::Database) -> bool {
        self.database.built == db.meta().built
    }

    /// One paragraph for people: the decision and the worst findings (at most five).
    pub fn message(&self) -> String {
        if self.allowed {
            return format!(
                "{}: within vulnerability policy {:?}",
                self.target, self.policy
            );
        }
        let mut m = if self.violations.is_empty() {
            format!(
                "{} refused by vulnerability policy {:?}: {} item(s) could not be read or evaluated",
                self.target,
                self.policy,
                self.incomplete.len()
            )
        } else {
            format!(
                "{} refused by vulnerability policy {:?} (max severity {}): {} finding(s) above it; worst:",
                self.target,
                self.policy,
                self.max_severity,
                self.violations.len()
            )
        };
        for f in self.violations.iter().take(5) {
            m.push_str(&format!(
                "\n  {} {} in {} {} ({}){}",
                f.severity,
                f.id,
                f.package,
                f.version,
                f.location,
                if f.fixed.is_empty() {
                    ", no fix yet".to_owned()
                } else {
                    format!(", fixed in {}", f.fixed[0])
                }
            ));
        }
        m.push_str("\nupgrade the image, or accept a risk with an [[allow]] entry (id, expires, reason) in the policy");
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &str, sev: Severity, fixed: &[&str]) -> Finding {
        Finding {
            id: id.into(),
            aliases: vec![format!("GHSA-{id}")],
            package: "p".into(),
            version: "1".into(),
            source: None,
            ecosystem: "PyPI".into(),
            location: "x".into(),
            severity: sev,
            score: None,
            fixed: fixed.iter().map(|s| (*s).to_owned()).collect(),
            summary: String::new(),
        }
    }

    #[test]
    fn limits_exceptions_expiry() {
        let p = VulnPolicy::parse(
            "max_severity = \"MEDIUM\"\n[[allow]]\nid = \"GHSA-CVE-1\"\nexpires = \"2026-06-30\"\nreason = \"not reachable\"\n",
            "t",
        )
        .expect("valid");
        let report = Report {
            findings: vec![
                finding("CVE-1", Severity::Critical, &["2"]),
                finding("CVE-2", Severity::Medium, &[]),
            ],
            ..Report::default()
        };
        let v = p.evaluate_on(&report, "2026-01-01");
        assert!(v.allowed, "{v:?}");
        assert_eq!(v.excepted.len(), 1);
        let v = p.evaluate_on(&report, "2026-07-01");
        assert!(!v.allowed);
        assert_eq!(v.expired.len(), 1);
        assert!(v.message().contains("CVE-1"));
        let incomplete = Report {
            warnings: vec!["x: unreadable".into()],
            ..Report::default()
        };
        assert!(p.evaluate_on(&incomplete, "2026-01-01").allowed);
        let strict = VulnPolicy {
            fail_on_incomplete: true,
            ..p.clone()
        };
        assert!(!strict.evaluate_on(&incomplete, "2026-01-01").allowed);
    }

    #[test]
    fn invalid_policies_are_refused() {
        assert!(VulnPolicy::parse("max_severity = \"SEVERE\"", "t").is_err());
        assert!(VulnPolicy::parse("max_severity = \"HIGH\"\nbogus = 1", "t").is_err());
        let no_reason = "max_severity = \"HIGH\"\n[[allow]]\nid = \"CVE-1\"\nexpires = \"2026-01-01\"\nreason = \"\"\n";
        assert!(VulnPolicy::parse(no_reason, "t").is_err());
        let bad_date = "max_severity = \"HIGH\"\n[[allow]]\nid = \"CVE-1\"\nexpires = \"soon\"\nreason = \"r\"\n";
        assert!(VulnPolicy::parse(bad_date, "t").is_err());
        assert!(VulnPolicy::parse("{\"max_severity\": \"LOW\"}", "t").is_ok());
    }
}
