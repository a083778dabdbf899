//! An advisory as the database stores it: one record's facts about one package, compacted,
//! and its evaluation against an installed version exactly as the OSV schema defines it.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::cvss::Severity;
use crate::osv::Event;
use crate::version::{Scheme, VersionError};

/// How a range's versions are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RangeKind {
    /// `ECOSYSTEM`: the package ecosystem's own ordering.
    Ecosystem,
    /// `SEMVER`: SemVer 2.0 (a leading `v` tolerated).
    SemVer,
}

/// A range of affected versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffectedRange {
    /// The ordering.
    pub kind: RangeKind,
    /// The events, as the record lists them.
    pub events: Vec<Event>,
}

/// One record's statement about one package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    /// The record id.
    pub id: String,
    /// Other ids of the same vulnerability.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// One-line summary.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// When the record last changed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub modified: String,
    /// The ecosystem as the record names it (`Debian:12`, `PyPI`).
    pub ecosystem: String,
    /// The package name as the record names it.
    pub package: String,
    /// The rating: from a CVSS v3 vector when there is one, else the database's own.
    pub severity: Severity,
    /// The CVSS v3 base score, when computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The CVSS vectors the record carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vectors: Vec<String>,
    /// ECOSYSTEM and SEMVER ranges (GIT ranges are not kept: they cannot be evaluated
    /// against an installed package).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<AffectedRange>,
    /// Explicitly affected versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
}

fn range_scheme(kind: RangeKind, ecosystem: Scheme) -> Scheme {
    match kind {
        RangeKind::Ecosystem => ecosystem,
        // Go's and npm's parsers are SemVer that tolerate a leading `v`.
        RangeKind::SemVer => Scheme::Go,
    }
}

/// Orders two event versions, with the special `introduced: "0"` below everything.
fn cmp_event_version(scheme: Scheme, a: &str, b: &str) -> Result<Ordering, VersionError> {
    match (a == "0", b == "0") {
        (true, true) => Ok(Ordering::Equal),
        (true, false) => Ok(Ordering::Less),
        (false, true) => Ok(Ordering::Greater),
        (false, false) => scheme.compare(a, b),
    }
}

fn event_version(e: &Event) -> Option<&str> {
    e.introduced
        .as_deref()
        .or(e.fixed.as_deref())
        .or(e.last_affected.as_deref())
        .or(e.limit.as_deref())
}

impl AffectedRange {
    /// Checks every event version parses under `scheme` (call at import time).
    pub fn validate(&self, ecosystem: Scheme) -> Result<(), VersionError> {
        let scheme = range_scheme(self.kind, ecosystem);
        for e in &self.events {
            if let Some(v) = event_version(e) {
                if v != "0" {
                    scheme.validate(v)?;
                }
            }
        }
        Ok(())
    }

    /// Whether `version` falls in this range, per the OSV schema's evaluation: limits first,
    /// then the events sorted by version, toggling on `introduced` and off on `fixed` (at or
    /// below the version) and `last_affected` (strictly below it).
    pub fn contains(&self, ecosystem: Scheme, version: &str) -> Result<bool, VersionError> {
        let scheme = range_scheme(self.kind, ecosystem);
        let limits: Vec<&str> = self
            .events
            .iter()
            .filter_map(|e| e.limit.as_deref())
            .collect();
        if !limits.is_empty() {
            let mut below_any = false;
            for l in limits {
                if l == "*" || cmp_event_version(scheme, version, l)? == Ordering::Less {
                    below_any = true;
                }
            }
            if !below_any {
                return Ok(false);
            }
        }
        let mut events: Vec<(&Event, &str)> = self
            .events
            .iter()
            .filter(|e| e.limit.is_none())
            .filter_map(|e| event_version(e).map(|v| (e, v)))
            .collect();
        let mut sort_error = None;
        events.sort_by(|a, b| {
            cmp_event_version(scheme, a.1, b.1).unwrap_or_else(|e| {
                sort_error.get_or_insert(e);
                Ordering::Equal
            })
        });
        if let Some(e) = sort_error {
            return Err(e);
        }
        let mut affected = false;
        for (e, v) in events {
            let order = cmp_event_version(scheme, v, version)?;
            if e.introduced.is_some() {
                if order != Ordering::Greater {
                    affected = true;
                }
            } else if e.fixed.is_some() {
                if order != Ordering::Greater {
                    affected = false;
                }
            } else if e.last_affected.is_some() && order == Ordering::Less {
                affected = false;
            }
        }
        Ok(affected)
    }
}

impl Advisory {
    /// Whether `version` is affected: listed in `versions`, or inside any range.
    pub fn affects(&self, scheme: Scheme, version: &str) -> Result<bool, VersionError> {
        for v in &self.versions {
            if v == version || scheme.compare(v, version).ok() == Some(Ordering::Equal) {
                return Ok(true);
            }
        }
        let mut first_error = None;
        for r in &self.ranges {
            match r.contains(scheme, version) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(false),
        }
    }

    /// The fixed versions above `version` (the upgrades that leave the affected range),
    /// lowest first; empty when no fix is known.
    pub fn fixed_after(&self, scheme: Scheme, version: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.ranges {
            let s = range_scheme(r.kind, scheme);
            for e in &r.events {
                if let Some(f) = &e.fixed {
                    if s.compare(f, version).ok() == Some(Ordering::Greater) && !out.contains(f) {
                        out.push(f.clone());
                    }
                }
            }
        }
        out.sort_by(|a, b| scheme.compare(a, b).unwrap_or(Ordering::Equal));
        out
    }

    /// Every id this advisory is known by (its own first).
    pub fn all_ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.id.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, v: &str) -> Event {
        let mut e = Event::default();
        let s = Some(v.to_owned());
        match kind {
            "i" => e.introduced = s,
            "f" => e.fixed = s,
            "l" => e.last_affected = s,
            _ => e.limit = s,
        }
        e
    }

    fn adv(events: Vec<Event>) -> Advisory {
        Advisory {
            id: "X-1".into(),
            aliases: vec![],
            summary: String::new(),
            modified: String::new(),
            ecosystem: "PyPI".into(),
            package: "p".into(),
            severity: Severity::Unknown,
            score: None,
            vectors: vec![],
            ranges: vec![AffectedRange {
                kind: RangeKind::Ecosystem,
                events,
            }],
            versions: vec![],
        }
    }

    #[test]
    fn schema_evaluation() {
        let s = Scheme::Pep440;
        let a = adv(vec![ev("i", "0"), ev("f", "1.26.5")]);
        assert_eq!(a.affects(s, "1.26.4"), Ok(true));
        assert_eq!(a.affects(s, "1.26.5"), Ok(false));
        assert_eq!(a.fixed_after(s, "1.26.4"), vec!["1.26.5".to_owned()]);
        // Two disjoint ranges, events listed out of order.
        let a = adv(vec![
            ev("f", "2.5"),
            ev("i", "2.0"),
            ev("i", "1.0"),
            ev("f", "1.5"),
        ]);
        assert_eq!(a.affects(s, "0.9"), Ok(false));
        assert_eq!(a.affects(s, "1.2"), Ok(true));
        assert_eq!(a.affects(s, "1.7"), Ok(false));
        assert_eq!(a.affects(s, "2.2"), Ok(true));
        assert_eq!(a.affects(s, "2.5"), Ok(false));
        // last_affected includes itself.
        let a = adv(vec![ev("i", "1.0"), ev("l", "1.4")]);
        assert_eq!(a.affects(s, "1.4"), Ok(true));
        assert_eq!(a.affects(s, "1.4.1"), Ok(false));
        // limit stops evaluation.
        let a = adv(vec![ev("i", "0"), ev("x", "2.0")]);
        assert_eq!(a.affects(s, "1.9"), Ok(true));
        assert_eq!(a.affects(s, "2.1"), Ok(false));
        // An unparsable installed version is an error, not "not affected".
        assert!(adv(vec![ev("i", "1.0")]).affects(s, "garbage!").is_err());
    }
}
