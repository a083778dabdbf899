//! The OSV record model (https://ossf.github.io/osv-schema/), read leniently from JSON or YAML.
//!
//! Only the fields the scanner uses are kept. Versions written as bare YAML numbers are read
//! back as their text, so a record never fails over `fixed: 1.2`.

use serde::{Deserialize, Deserializer, Serialize};

/// One OSV record.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    /// The record id (GHSA-…, PYSEC-…, RUSTSEC-…, GO-…, CVE-…, DSA-…).
    pub id: String,
    /// RFC 3339 time of the last change.
    #[serde(default, deserialize_with = "text_or_default")]
    pub modified: String,
    /// RFC 3339 time the record was withdrawn; a withdrawn record matches nothing.
    #[serde(default, deserialize_with = "opt_text")]
    pub withdrawn: Option<String>,
    /// Ids of the same vulnerability in other databases.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One-line summary.
    #[serde(default, deserialize_with = "opt_text")]
    pub summary: Option<String>,
    /// Longer description (its first line stands in for a missing summary).
    #[serde(default, deserialize_with = "opt_text")]
    pub details: Option<String>,
    /// Record-wide severity vectors.
    #[serde(default)]
    pub severity: Vec<SeverityEntry>,
    /// The affected packages.
    #[serde(default)]
    pub affected: Vec<Affected>,
    /// Database-specific data (GHSA's `severity`, RUSTSEC's `informational`).
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// A severity vector.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SeverityEntry {
    /// CVSS_V2, CVSS_V3, CVSS_V4, Ubuntu…
    #[serde(rename = "type")]
    pub kind: String,
    /// The vector (or rating) text.
    #[serde(deserialize_with = "text")]
    pub score: String,
}

/// One affected package with its ranges.
#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    /// Which package.
    pub package: Option<Package>,
    /// Per-package severity vectors.
    #[serde(default)]
    pub severity: Vec<SeverityEntry>,
    /// Version ranges.
    #[serde(default)]
    pub ranges: Vec<Range>,
    /// Explicitly affected versions.
    #[serde(default, deserialize_with = "text_list")]
    pub versions: Vec<String>,
    /// Ecosystem-specific data (a distribution's urgency, Go's imports).
    #[serde(default)]
    pub ecosystem_specific: Option<serde_json::Value>,
    /// Database-specific data.
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// A package identity.
#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    /// `PyPI`, `crates.io`, `Go`, `npm`, `Debian:12`, `Alpine:v3.19`…
    #[serde(deserialize_with = "text")]
    pub ecosystem: String,
    /// The package name in that ecosystem (Debian and Alpine: the source package).
    #[serde(deserialize_with = "text")]
    pub name: String,
}

/// A range of affected versions, as events.
#[derive(Debug, Clone, Deserialize)]
pub struct Range {
    /// SEMVER, ECOSYSTEM or GIT.
    #[serde(rename = "type")]
    pub kind: String,
    /// The events, in any order.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One range event: exactly one of its fields is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Event {
    /// Versions from here on are affected ("0": from the beginning).
    #[serde(
        default,
        deserialize_with = "opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub introduced: Option<String>,
    /// Versions from here on are fixed.
    #[serde(
        default,
        deserialize_with = "opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub fixed: Option<String>,
    /// The last affected version (later ones are not).
    #[serde(
        default,
        deserialize_with = "opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_affected: Option<String>,
    /// Range evaluation stops at this version.
    #[serde(
        default,
        deserialize_with = "opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<String>,
}

/// Accepts a string, a number or a boolean as text.
fn scalar_text(v: serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    scalar_text(v).ok_or_else(|| serde::de::Error::custom("expected a string"))
}

fn text_or_default<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(opt_text(d)?.unwrap_or_default())
}

fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.and_then(scalar_text))
}

fn text_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Option::<Vec<serde_json::Value>>::deserialize(d)?;
    Ok(v.unwrap_or_default()
        .into_iter()
        .filter_map(scalar_text)
        .collect())
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not valid JSON for an OSV record.
    #[error("not a valid OSV JSON record: {0}")]
    Json(#[from] serde_json::Error),
    /// Not valid YAML for an OSV record.
    #[error("not a valid OSV YAML record: {0}")]
    Yaml(#[from] serde_norway::Error),
}

impl Record {
    /// Parses a record from JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// Parses a record from YAML.
    pub fn from_yaml(bytes: &[u8]) -> Result<Self, RecordError> {
        Ok(serde_norway::from_slice(bytes)?)
    }

    /// The summary, or the first line of the details.
    pub fn title(&self) -> String {
        self.summary
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| {
                self.details
                    .as_ref()
                    .and_then(|d| d.lines().next().map(str::to_owned))
            })
            .unwrap_or_default()
    }
}
