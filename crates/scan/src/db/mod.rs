//! The local vulnerability database: one file, built by [`import`] from OSV records, opened
//! and checked by [`Database::open`], queried per package with a binary search of its index.

mod file;
mod import;

pub use file::{Database, DbError, DbMeta, EcosystemCount, SCHEMA_VERSION};
pub use import::{import, ImportReport};

use std::path::PathBuf;

/// The database key of a package: its ecosystem (with release, as the record names it) and
/// its name, normalised where the ecosystem says names are (PyPI: PEP 503).
pub fn package_key(ecosystem: &str, name: &str) -> String {
    let eco = ecosystem.trim();
    let name = name.trim();
    let name = if eco == "PyPI" {
        normalize_pypi(name)
    } else {
        name.to_owned()
    };
    format!("{eco}\u{0}{name}")
}

/// PEP 503 name normalisation: lower case, runs of `-`, `_`, `.` become one `-`.
pub fn normalize_pypi(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Where the database lives by default: /var/lib/palisade/vulndb as root,
/// `$XDG_DATA_HOME/palisade/vulndb` (or ~/.local/share/palisade/vulndb) otherwise.
/// `PALISADE_VULNDB` overrides both.
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PALISADE_VULNDB") {
        return PathBuf::from(p);
    }
    // SAFETY-free check of the effective uid through /proc (no libc call needed).
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    if root {
        return PathBuf::from("/var/lib/palisade/vulndb");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("palisade/vulndb")
}
