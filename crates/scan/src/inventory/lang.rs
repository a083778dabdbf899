//! Language package metadata: Python `METADATA`/`PKG-INFO`, npm `package.json` and
//! `package-lock.json`, `Cargo.lock`, and cargo-auditable's `.dep-v0` section.

use std::io::Read;

use serde::Deserialize;

use super::Package;

/// Python core metadata (RFC 822 headers up to the first blank line): `Name`, `Version`.
pub(super) fn parse_python_metadata(bytes: &[u8], location: &str) -> Result<Package, String> {
    let head = &bytes[..bytes.len().min(256 << 10)];
    let text = String::from_utf8_lossy(head);
    let (mut name, mut version) = (None, None);
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        match line.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("name") => name = Some(v.trim().to_owned()),
            Some((k, v)) if k.eq_ignore_ascii_case("version") => {
                version = Some(v.trim().to_owned())
            }
            _ => {}
        }
    }
    match (name, version) {
        (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => {
            Ok(Package::language(&n, &v, "PyPI", location))
        }
        _ => Err("no Name and Version headers".into()),
    }
}

#[derive(Deserialize)]
struct PackageJson {
    name: Option<String>,
    version: Option<String>,
}

/// An installed npm package's `package.json`.
pub(super) fn parse_package_json(bytes: &[u8], location: &str) -> Result<Option<Package>, String> {
    let p: PackageJson =
        serde_json::from_slice(bytes).map_err(|e| format!("not a package.json: {e}"))?;
    Ok(match (p.name, p.version) {
        (Some(n), Some(v)) if !n.is_empty() && !v.is_empty() => {
            Some(Package::language(&n, &v, "npm", location))
        }
        _ => None,
    })
}

#[derive(Deserialize)]
struct LockEntry {
    version: Option<String>,
    #[serde(default)]
    dependencies: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    link: bool,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct PackageLock {
    #[serde(default)]
    packages: Option<std::collections::BTreeMap<String, LockEntry>>,
    #[serde(default)]
    dependencies: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// `package-lock.json` (lockfile v1, v2 and v3).
pub(super) fn parse_package_lock(bytes: &[u8], location: &str) -> Result<Vec<Package>, String> {
    let lock: PackageLock =
        serde_json::from_slice(bytes).map_err(|e| format!("not a package-lock.json: {e}"))?;
    let mut out = Vec::new();
    if let Some(packages) = lock.packages {
        for (path, entry) in packages {
            if path.is_empty() || entry.link {
                continue;
            }
            let name = entry
                .name
                .clone()
                .or_else(|| path.rsplit_once("node_modules/").map(|(_, n)| n.to_owned()));
            if let (Some(n), Some(v)) = (name, entry.version) {
                out.push(Package::language(&n, &v, "npm", location));
            }
        }
    } else if let Some(deps) = lock.dependencies {
        fn walk(
            deps: &std::collections::BTreeMap<String, serde_json::Value>,
            location: &str,
            out: &mut Vec<Package>,
        ) {
            for (name, v) in deps {
                if let Ok(entry) = LockEntry::deserialize(v) {
                    if let Some(version) = &entry.version {
                        if !version.starts_with("file:") && !version.contains("://") {
                            out.push(Package::language(name, version, "npm", location));
                        }
                    }
                    if let Some(d) = &entry.dependencies {
                        walk(d, location, out);
                    }
                }
            }
        }
        walk(&deps, location, &mut out);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct CargoLock {
    #[serde(default)]
    package: Vec<CargoLockPackage>,
}

#[derive(Deserialize)]
struct CargoLockPackage {
    name: String,
    version: String,
    source: Option<String>,
}

/// `Cargo.lock`: the packages from a registry (workspace members and path crates are local).
pub(super) fn parse_cargo_lock(bytes: &[u8], location: &str) -> Result<Vec<Package>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "Cargo.lock is not UTF-8".to_owned())?;
    let lock: CargoLock = toml::from_str(text).map_err(|e| format!("not a Cargo.lock: {e}"))?;
    Ok(lock
        .package
        .into_iter()
        .filter(|p| {
            p.source
                .as_deref()
                .is_some_and(|s| s.starts_with("registry+") || s.starts_with("sparse+"))
        })
        .map(|p| Package::language(&p.name, &p.version, "crates.io", location))
        .collect())
}

#[derive(Deserialize)]
struct Auditable {
    packages: Vec<AuditablePackage>,
}

#[derive(Deserialize)]
struct AuditablePackage {
    name: String,
    version: String,
    #[serde(default)]
    source: String,
}

/// cargo-auditable's `.dep-v0` section: zlib-compressed JSON of the crates built in.
pub(super) fn parse_dep_v0(section: &[u8], location: &str) -> Result<Vec<Package>, String> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(section)
        .take(64 << 20)
        .read_to_end(&mut json)
        .map_err(|e| format!("bad .dep-v0 compression: {e}"))?;
    let a: Auditable =
        serde_json::from_slice(&json).map_err(|e| format!("bad .dep-v0 JSON: {e}"))?;
    Ok(a.packages
        .into_iter()
        .filter(|p| p.source == "crates.io" || p.source.starts_with("registry"))
        .map(|p| Package::language(&p.name, &p.version, "crates.io", location))
        .collect())
}
