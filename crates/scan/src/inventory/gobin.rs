//! Go binaries' build information: the `.go.buildinfo` section written by Go 1.18 and later
//! (inline version and module strings), giving the toolchain (reported as the `stdlib`
//! module) and every module linked in, with `=>` replacements applied.

use super::{Package, PackageKind};
use crate::version::golang::toolchain_to_semver;

const MAGIC: &[u8] = b"\xff Go buildinf:";

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &c) in b.iter().enumerate().take(10) {
        v |= u64::from(c & 0x7f) << (7 * i);
        if c & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn string_at(b: &[u8]) -> Option<(&[u8], usize)> {
    let (len, n) = varint(b)?;
    let end = n.checked_add(usize::try_from(len).ok()?)?;
    Some((b.get(n..end)?, end))
}

/// What build info says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// The toolchain (`go1.19.13`).
    pub go_version: String,
    /// The main package path.
    pub path: String,
    /// Modules: (path, version), the main module first when it has a version.
    pub modules: Vec<(String, String)>,
}

/// Parses a `.go.buildinfo` section. `Err` names what is wrong; binaries from before Go 1.18
/// (pointer-based build info) are reported as unsupported rather than guessed at.
pub fn parse(section: &[u8]) -> Result<BuildInfo, &'static str> {
    let start = section
        .windows(MAGIC.len())
        .position(|w| w == MAGIC)
        .ok_or("no build info magic")?;
    let b = &section[start..];
    if b.len() < 32 {
        return Err("build info header truncated");
    }
    let flags = b[15];
    if flags & 2 == 0 {
        return Err("build info from Go before 1.18 (pointer format) is not supported");
    }
    let (version, n) = string_at(&b[32..]).ok_or("bad version string")?;
    let (modinfo, _) = string_at(&b[32 + n..]).ok_or("bad module info string")?;
    let go_version = String::from_utf8_lossy(version).into_owned();
    // The module info is framed by 16-byte sentinels.
    let text = if modinfo.len() >= 33 {
        &modinfo[16..modinfo.len() - 16]
    } else {
        modinfo
    };
    let text = String::from_utf8_lossy(text);
    let mut path = String::new();
    let mut modules: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["path", p, ..] => path = (*p).to_owned(),
            ["mod", p, v, ..] | ["dep", p, v, ..] => {
                modules.push(((*p).to_owned(), (*v).to_owned()))
            }
            ["=>", p, v, ..] => {
                if let Some(last) = modules.last_mut() {
                    *last = ((*p).to_owned(), (*v).to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(BuildInfo {
        go_version,
        path,
        modules,
    })
}

/// The packages a Go binary at `location` contributes.
pub fn packages(info: &BuildInfo, location: &str) -> Vec<Package> {
    let mut out = Vec::new();
    if let Some(v) = toolchain_to_semver(&info.go_version) {
        out.push(Package::language("stdlib", &v, "Go", location));
    }
    for (path, version) in &info.modules {
        if version == "(devel)"
            || version.is_empty()
            || path.starts_with('.')
            || path.starts_with('/')
        {
            continue;
        }
        out.push(Package::language(
            path,
            version.trim_start_matches('v'),
            "Go",
            location,
        ));
    }
    out.iter_mut().for_each(|p| p.kind = PackageKind::GoBinary);
    out
}
