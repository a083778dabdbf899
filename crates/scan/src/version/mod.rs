//! Version ordering, one module per ecosystem.
//!
//! Each module exposes `compare(a, b)`; the ones whose grammar can reject a string return
//! [`VersionError`] so a caller can skip an advisory range (with a warning) instead of guessing.

pub mod apk;
pub mod dpkg;
pub mod golang;
pub mod maven;
pub mod npm;
pub mod pep440;
pub mod rpm;
pub mod semver;

use std::cmp::Ordering;

/// A version string that its ecosystem's grammar does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {scheme} version {version:?}: {reason}")]
pub struct VersionError {
    /// The ordering scheme (for example "PEP 440").
    pub scheme: &'static str,
    /// The rejected text.
    pub version: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

impl VersionError {
    pub(crate) fn new(scheme: &'static str, version: &str, reason: &'static str) -> Self {
        Self {
            scheme,
            version: version.to_owned(),
            reason,
        }
    }
}

/// The ordering rules of a package ecosystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Scheme {
    /// Debian and Ubuntu packages (dpkg).
    Dpkg,
    /// RPM packages (rpmvercmp with epoch and release).
    Rpm,
    /// Alpine packages (apk-tools).
    Apk,
    /// Python packages (PEP 440).
    Pep440,
    /// Rust crates (SemVer 2.0 as Cargo reads it).
    SemVer,
    /// npm packages (node-semver: SemVer with a tolerated `v`/`=` prefix).
    Npm,
    /// Go modules and the Go toolchain (`stdlib`).
    Go,
    /// Maven artifacts (ComparableVersion).
    Maven,
}

impl Scheme {
    /// The scheme an OSV ecosystem name (without its `:release` suffix) uses.
    pub fn for_ecosystem(ecosystem: &str) -> Option<Scheme> {
        let base = ecosystem.split(':').next().unwrap_or(ecosystem);
        Some(match base {
            "Debian" | "Ubuntu" => Scheme::Dpkg,
            "Alpine" | "Wolfi" | "Chainguard" => Scheme::Apk,
            "Red Hat" | "Rocky Linux" | "AlmaLinux" | "openSUSE" | "SUSE" | "Mageia" => Scheme::Rpm,
            "PyPI" => Scheme::Pep440,
            "crates.io" => Scheme::SemVer,
            "npm" => Scheme::Npm,
            "Go" => Scheme::Go,
            "Maven" => Scheme::Maven,
            _ => return None,
        })
    }

    /// Compares two versions under this scheme.
    pub fn compare(self, a: &str, b: &str) -> Result<Ordering, VersionError> {
        match self {
            Scheme::Dpkg => Ok(dpkg::compare(a, b)),
            Scheme::Rpm => Ok(rpm::compare_evr(a, b)),
            Scheme::Apk => apk::compare(a, b),
            Scheme::Pep440 => pep440::compare(a, b),
            Scheme::SemVer => semver::compare(a, b),
            Scheme::Npm => npm::compare(a, b),
            Scheme::Go => golang::compare(a, b),
            Scheme::Maven => Ok(maven::compare(a, b)),
        }
    }

    /// Checks that `v` is a version of this scheme.
    pub fn validate(self, v: &str) -> Result<(), VersionError> {
        self.compare(v, v).map(|_| ())
    }
}
