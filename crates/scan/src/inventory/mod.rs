//! What is installed in an image: one pass over an unpacked root filesystem or over the
//! image's layer tar streams (whiteouts applied), reading only the files that matter.
//!
//! The pass collects the interesting files of the final filesystem ([`collect`]); [`build`]
//! then parses them into an [`Inventory`]. Anything unreadable is skipped with a warning that
//! names the file, and the warnings travel with the inventory so a report is never "clean"
//! without saying what it could not see.

mod apk;
mod collect;
mod dpkg;
mod elf;
pub mod gobin;
mod lang;
pub mod os;
mod rpm;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use collect::{decompress, scan_dir, scan_layers, InventoryError};
pub use os::OsRelease;

/// Whether a package came from the distribution's package manager or a language's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageKind {
    /// dpkg, apk or rpm.
    Os,
    /// A language package manager's metadata (Python, npm, Cargo).
    Language,
    /// Module build information embedded in a Go binary.
    GoBinary,
    /// Dependency list embedded by cargo-auditable in a Rust binary.
    RustBinary,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Package {
    /// Its name in its ecosystem.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// OSV ecosystem, with release for distributions (`Debian:12`, `PyPI`, `Go`).
    pub ecosystem: String,
    /// The source package (distributions key advisories by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    /// The source package's version (differs from `version` for binNMUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// Where it was found (path in the image, no leading slash).
    pub location: String,
    /// What kind of metadata it came from.
    pub kind: PackageKind,
}

impl Package {
    pub(crate) fn os(name: &str, version: &str, ecosystem: &str, location: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            ecosystem: ecosystem.to_owned(),
            source_name: None,
            source_version: None,
            location: location.to_owned(),
            kind: PackageKind::Os,
        }
    }

    pub(crate) fn language(name: &str, version: &str, ecosystem: &str, location: &str) -> Self {
        Self {
            kind: PackageKind::Language,
            ..Self::os(name, version, ecosystem, location)
        }
    }

    /// The name and version advisories are keyed by (the source package for distributions).
    pub fn advisory_key(&self) -> (&str, &str) {
        (
            self.source_name.as_deref().unwrap_or(&self.name),
            self.source_version.as_deref().unwrap_or(&self.version),
        )
    }

    /// A package URL for SBOMs.
    pub fn purl(&self, os: Option<&OsRelease>) -> String {
        let base = self.ecosystem.split(':').next().unwrap_or("");
        match base {
            "Debian" => format!(
                "pkg:deb/debian/{}@{}{}",
                self.name,
                self.version,
                os.map(|o| format!("?distro=debian-{}", o.version_id))
                    .unwrap_or_default()
            ),
            "Alpine" => format!("pkg:apk/alpine/{}@{}", self.name, self.version),
            "Ubuntu" => format!("pkg:deb/ubuntu/{}@{}", self.name, self.version),
            "PyPI" => format!(
                "pkg:pypi/{}@{}",
                crate::db::normalize_pypi(&self.name),
                self.version
            ),
            "npm" => format!("pkg:npm/{}@{}", self.name.replace('@', "%40"), self.version),
            "crates.io" => format!("pkg:cargo/{}@{}", self.name, self.version),
            "Go" => format!("pkg:golang/{}@v{}", self.name, self.version),
            _ => format!("pkg:generic/{}@{}", self.name, self.version),
        }
    }
}

/// What an image holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// The distribution, when one was recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsRelease>,
    /// Installed packages, OS packages first.
    pub packages: Vec<Package>,
    /// Files that could not be read, each naming the file: the inventory is incomplete there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// An interesting file of the final filesystem, before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    OsRelease,
    UsrOsRelease,
    DebianVersion,
    AlpineRelease,
    DpkgStatus,
    DpkgStatusD,
    DpkgList,
    ApkInstalled,
    RpmDb,
    RpmBdb,
    PythonMetadata,
    NpmPackageJson,
    NpmLock,
    CargoLock,
}

impl Kind {
    /// Largest file of this kind read; bigger ones are skipped with a warning.
    pub(crate) fn limit(self) -> u64 {
        match self {
            Kind::DpkgStatus | Kind::ApkInstalled | Kind::NpmLock => 64 << 20,
            Kind::RpmDb => 256 << 20,
            Kind::RpmBdb => 0,
            _ => 8 << 20,
        }
    }

    /// Classifies a path (relative to the root, no leading slash).
    pub(crate) fn of(path: &str) -> Option<Kind> {
        let name = path.rsplit('/').next().unwrap_or(path);
        Some(match path {
            "etc/os-release" => Kind::OsRelease,
            "usr/lib/os-release" => Kind::UsrOsRelease,
            "etc/debian_version" => Kind::DebianVersion,
            "etc/alpine-release" => Kind::AlpineRelease,
            "var/lib/dpkg/status" => Kind::DpkgStatus,
            "lib/apk/db/installed" => Kind::ApkInstalled,
            "var/lib/rpm/rpmdb.sqlite" | "usr/lib/sysimage/rpm/rpmdb.sqlite" => Kind::RpmDb,
            "var/lib/rpm/Packages" | "usr/lib/sysimage/rpm/Packages" => Kind::RpmBdb,
            _ if path.starts_with("var/lib/dpkg/status.d/")
                && !name.ends_with(".md5sums")
                && !name.is_empty() =>
            {
                Kind::DpkgStatusD
            }
            _ if path.starts_with("var/lib/dpkg/info/") && name.ends_with(".list") => {
                Kind::DpkgList
            }
            _ if path.ends_with(".dist-info/METADATA") || path.ends_with(".egg-info/PKG-INFO") => {
                Kind::PythonMetadata
            }
            _ if name == "package.json" && is_node_module_manifest(path) => Kind::NpmPackageJson,
            _ if name == "package-lock.json" && !path.contains("node_modules/") => Kind::NpmLock,
            _ if name == "Cargo.lock" => Kind::CargoLock,
            _ => return None,
        })
    }
}

/// `…/node_modules/NAME/package.json` or `…/node_modules/@scope/NAME/package.json`.
fn is_node_module_manifest(path: &str) -> bool {
    let Some((_, rest)) = path.rsplit_once("node_modules/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [name, "package.json"] => !name.starts_with('.'),
        [scope, _, "package.json"] => scope.starts_with('@'),
        _ => false,
    }
}

/// What a collection pass found: file contents by path, and packages read from binaries.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) files: BTreeMap<String, (Kind, Vec<u8>)>,
    pub(crate) binaries: BTreeMap<String, Result<Vec<Package>, String>>,
    pub(crate) warnings: Vec<String>,
}

/// Parses collected files into the inventory.
pub(crate) fn build(c: Collected) -> Inventory {
    let mut warnings = c.warnings;
    let text = |k: Kind| -> Option<String> {
        c.files
            .iter()
            .find(|(_, (kind, _))| *kind == k)
            .map(|(_, (_, b))| String::from_utf8_lossy(b).into_owned())
    };
    let mut os = text(Kind::OsRelease)
        .or_else(|| text(Kind::UsrOsRelease))
        .map(|t| os::parse_os_release(&t))
        .unwrap_or_default();
    os.complete(
        text(Kind::DebianVersion).as_deref(),
        text(Kind::AlpineRelease).as_deref(),
    );
    let os = (!os.id.is_empty()).then_some(os);
    let eco = os.as_ref().and_then(OsRelease::ecosystem);

    let mut packages = Vec::new();
    let mut owned: HashSet<&str> = HashSet::new();
    for (path, (kind, bytes)) in &c.files {
        match kind {
            Kind::DpkgStatus | Kind::DpkgStatusD => {
                let e = eco.as_deref().unwrap_or("Debian");
                match dpkg::parse_status(&String::from_utf8_lossy(bytes), e, path) {
                    Ok(p) => packages.extend(p),
                    Err(err) => warnings.push(format!("{path}: skipped: {err}")),
                }
            }
            Kind::ApkInstalled => {
                let e = eco.as_deref().unwrap_or("Alpine");
                match apk::parse_installed(&String::from_utf8_lossy(bytes), e, path) {
                    Ok(p) => packages.extend(p),
                    Err(err) => warnings.push(format!("{path}: skipped: {err}")),
                }
            }
            Kind::RpmDb => {
                let e = eco.as_deref().unwrap_or("rpm");
                match rpm::parse_rpmdb(bytes, e, path) {
                    Ok((p, warning)) => {
                        packages.extend(p);
                        warnings.extend(warning.map(|w| format!("{path}: {w}")));
                    }
                    Err(err) => warnings.push(format!("{path}: skipped: {err}")),
                }
            }
            Kind::RpmBdb => warnings.push(format!(
                "{path}: Berkeley DB rpm database not inventoried (only rpmdb.sqlite is read): rpm packages in this image are not checked"
            )),
            Kind::DpkgList => {
                if let Ok(t) = std::str::from_utf8(bytes) {
                    owned.extend(dpkg::parse_list(t));
                }
            }
            _ => {}
        }
    }
    let is_owned = |loc: &str| {
        owned.contains(loc)
            || Path::new(loc)
                .parent()
                .and_then(Path::to_str)
                .is_some_and(|d| owned.contains(d))
    };
    let mut lang: Vec<Package> = Vec::new();
    for (path, (kind, bytes)) in &c.files {
        let found = match kind {
            Kind::PythonMetadata => lang::parse_python_metadata(bytes, path).map(|p| vec![p]),
            Kind::NpmPackageJson => {
                lang::parse_package_json(bytes, path).map(|p| p.into_iter().collect())
            }
            Kind::NpmLock => lang::parse_package_lock(bytes, path),
            Kind::CargoLock => lang::parse_cargo_lock(bytes, path),
            _ => continue,
        };
        match found {
            Ok(p) if !is_owned(path) => lang.extend(p),
            Ok(_) => {}
            Err(err) => warnings.push(format!("{path}: skipped: {err}")),
        }
    }
    for (path, found) in c.binaries {
        match found {
            Ok(p) if !is_owned(&path) => lang.extend(p),
            Ok(_) => {}
            Err(err) => warnings.push(format!("{path}: skipped: {err}")),
        }
    }
    let mut seen = HashSet::new();
    lang.retain(|p| {
        seen.insert((
            p.ecosystem.clone(),
            p.name.clone(),
            p.version.clone(),
            p.location.clone(),
        ))
    });
    packages.extend(lang);
    Inventory {
        os,
        packages,
        warnings,
    }
}

pub(crate) fn binary_packages(
    path: &str,
    sections: &[Option<Vec<u8>>],
    mem: &dyn Fn(u64, u64) -> Option<Vec<u8>>,
) -> Option<Result<Vec<Package>, String>> {
    let mut out = Vec::new();
    let mut any = false;
    if let Some(Some(b)) = sections.first() {
        any = true;
        match gobin::parse(b, mem) {
            Ok(info) => out.extend(gobin::packages(&info, path)),
            Err(e) => return Some(Err(format!("Go build info: {e}"))),
        }
    }
    if let Some(Some(b)) = sections.get(1) {
        any = true;
        match lang::parse_dep_v0(b, path) {
            Ok(p) => out.extend(p.into_iter().map(|mut p| {
                p.kind = PackageKind::RustBinary;
                p
            })),
            Err(e) => return Some(Err(format!("cargo-auditable data: {e}"))),
        }
    }
    any.then_some(Ok(out))
}

/// The sections read from executables.
pub(crate) const BINARY_SECTIONS: [&str; 2] = [".go.buildinfo", ".dep-v0"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        assert_eq!(
            Kind::of("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA"),
            Some(Kind::PythonMetadata)
        );
        assert_eq!(
            Kind::of("app/node_modules/lodash/package.json"),
            Some(Kind::NpmPackageJson)
        );
        assert_eq!(
            Kind::of("app/node_modules/@types/node/package.json"),
            Some(Kind::NpmPackageJson)
        );
        assert_eq!(Kind::of("app/node_modules/lodash/fp/package.json"), None);
        assert_eq!(Kind::of("app/package-lock.json"), Some(Kind::NpmLock));
        assert_eq!(
            Kind::of("var/lib/dpkg/status.d/base"),
            Some(Kind::DpkgStatusD)
        );
        assert_eq!(Kind::of("var/lib/dpkg/status.d/base.md5sums"), None);
        assert_eq!(
            Kind::of("var/lib/dpkg/info/bash.list"),
            Some(Kind::DpkgList)
        );
        assert_eq!(Kind::of("usr/bin/bash"), None);
    }
}
