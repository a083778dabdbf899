//! Matching an inventory against the database, and the report that results: one finding per
//! vulnerable package and vulnerability, with the records that are aliases of each other
//! (CVE, GHSA, PYSEC, RUSTSEC, GO…) merged into one.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::advisory::Advisory;
use crate::cvss::Severity;
use crate::db::{Database, DbError};
use crate::inventory::{Inventory, OsRelease, Package};
use crate::version::Scheme;

/// One vulnerability in one installed package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The vulnerability's primary id (its CVE when it has one).
    pub id: String,
    /// Every other id it is known by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The package (binary name for distribution packages).
    pub package: String,
    /// Installed version.
    pub version: String,
    /// The source package the advisory names, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// OSV ecosystem.
    pub ecosystem: String,
    /// Where the package was found.
    pub location: String,
    /// Rating.
    pub severity: Severity,
    /// CVSS v3 base score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Versions that fix it (lowest first); empty when there is no fix.
    #[serde(default)]
    pub fixed: Vec<String>,
    /// One-line summary.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

/// The database a report was made with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbStamp {
    /// Layout version.
    pub schema: u32,
    /// When it was built.
    pub built: String,
    /// Newest record it holds.
    pub newest_modified: String,
}

/// A scan's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was scanned (reference, digest or directory), set by the caller.
    #[serde(default)]
    pub target: String,
    /// The distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsRelease>,
    /// Which database.
    pub database: DbStamp,
    /// Packages inventoried.
    pub packages: usize,
    /// The findings, most severe first.
    pub findings: Vec<Finding>,
    /// What could not be read or evaluated: the report is incomplete there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Counts per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// CRITICAL.
    pub critical: u64,
    /// HIGH.
    pub high: u64,
    /// MEDIUM.
    pub medium: u64,
    /// LOW.
    pub low: u64,
    /// UNKNOWN.
    pub unknown: u64,
}

impl Report {
    /// Findings per severity.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for f in &self.findings {
            match f.severity {
                Severity::Critical => c.critical += 1,
                Severity::High => c.high += 1,
                Severity::Medium => c.medium += 1,
                Severity::Low => c.low += 1,
                Severity::Unknown => c.unknown += 1,
            }
        }
        c
    }

    /// Keeps only findings with a fix (`--ignore-unfixed`).
    pub fn retain_fixed(&mut self) {
        self.findings.retain(|f| !f.fixed.is_empty());
    }

    /// Keeps only findings of the given severities.
    pub fn retain_severities(&mut self, keep: &[Severity]) {
        self.findings.retain(|f| keep.contains(&f.severity));
    }
}

/// A matched advisory with the fixed versions above the installed one.
type Matched = (Advisory, Vec<String>);

/// Merges a package's matched advisories: those sharing any id become one finding.
fn merge(package: &Package, matched: Vec<Matched>) -> Vec<Finding> {
    let mut groups: Vec<(BTreeSet<String>, Vec<Matched>)> = Vec::new();
    for (adv, fixed) in matched {
        let ids: BTreeSet<String> = adv.all_ids().map(str::to_owned).collect();
        let mut joined: Option<usize> = None;
        let mut i = 0;
        while i < groups.len() {
            if !groups[i].0.is_disjoint(&ids) {
                match joined {
                    None => {
                        groups[i].0.extend(ids.iter().cloned());
                        joined = Some(i);
                        i += 1;
                    }
                    Some(j) => {
                        let g = groups.remove(i);
                        groups[j].0.extend(g.0);
                        groups[j].1.extend(g.1);
                    }
                }
            } else {
                i += 1;
            }
        }
        match joined {
            Some(j) => groups[j].1.push((adv, fixed)),
            None => groups.push((ids, vec![(adv, fixed)])),
        }
    }
    let (src, _) = package.advisory_key();
    groups
        .into_iter()
        .map(|(ids, members)| {
            let primary = ids
                .iter()
                .find(|i| i.starts_with("CVE-"))
                .cloned()
                .unwrap_or_else(|| members[0].0.id.clone());
            let mut fixed: Vec<String> = Vec::new();
            for (_, f) in &members {
                for v in f {
                    if !fixed.contains(v) {
                        fixed.push(v.clone());
                    }
                }
            }
            let scheme = Scheme::for_ecosystem(&package.ecosystem);
            if let Some(s) = scheme {
                fixed.sort_by(|a, b| s.compare(a, b).unwrap_or(std::cmp::Ordering::Equal));
            }
            Finding {
                aliases: ids.iter().filter(|i| **i != primary).cloned().collect(),
                id: primary,
                package: package.name.clone(),
                version: package.version.clone(),
                source: (src != package.name).then(|| src.to_owned()),
                ecosystem: package.ecosystem.clone(),
                location: package.location.clone(),
                severity: members
                    .iter()
                    .map(|(a, _)| a.severity)
                    .max()
                    .unwrap_or(Severity::Unknown),
                score: members.iter().filter_map(|(a, _)| a.score).reduce(f64::max),
                fixed,
                summary: members
                    .iter()
                    .map(|(a, _)| a.summary.clone())
                    .find(|s| !s.is_empty())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

impl Database {
    /// Matches every package of the inventory: an index lookup per package (by source
    /// package for distributions), then the OSV evaluation of each advisory found.
    pub fn match_inventory(&self, inventory: &Inventory) -> Result<Report, DbError> {
        let mut findings = Vec::new();
        let mut warnings = inventory.warnings.clone();
        let mut unmatched: std::collections::BTreeMap<&str, usize> = Default::default();
        for package in &inventory.packages {
            let Some(scheme) = Scheme::for_ecosystem(&package.ecosystem) else {
                *unmatched.entry(package.ecosystem.as_str()).or_default() += 1;
                continue;
            };
            let (name, version) = package.advisory_key();
            let mut advisories = self.advisories(&package.ecosystem, name)?;
            if let Some((base, _)) = package.ecosystem.split_once(':') {
                // Records for the distribution without a release apply to every release.
                advisories.extend(self.advisories(base, name)?);
            }
            let mut matched = Vec::new();
            for adv in advisories {
                match adv.affects(scheme, version) {
                    Ok(true) => {
                        let fixed = adv.fixed_after(scheme, version);
                        matched.push((adv, fixed));
                    }
                    Ok(false) => {}
                    Err(e) => warnings.push(format!(
                        "{} {} ({}): {} not evaluated: {e}",
                        package.name, package.version, package.location, adv.id
                    )),
                }
            }
            findings.extend(merge(package, matched));
        }
        for (ecosystem, n) in unmatched {
            warnings.push(format!("{n} package(s) of ecosystem {ecosystem:?} not checked: no advisories are keyed for it"));
        }
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| b.score.unwrap_or(0.0).total_cmp(&a.score.unwrap_or(0.0)))
                .then_with(|| a.package.cmp(&b.package))
                .then_with(|| a.id.cmp(&b.id))
        });
        let meta = self.meta();
        Ok(Report {
            target: String::new(),
            os: inventory.os.clone(),
            database: DbStamp {
                schema: meta.schema,
                built: meta.built.clone(),
                newest_modified: meta.newest_modified.clone(),
            },
            packages: inventory.packages.len(),
            findings,
            warnings,
        })
    }
}
