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

/// Parses a `.go.buildinfo` section. Go 1.18 and later write the version and module strings
/// inline; Go 1.13 to 1.17 write pointers to Go string headers, which `mem` (a reader of the
/// binary's virtual memory: address, length) resolves.
pub fn parse(
    section: &[u8],
    mem: &dyn Fn(u64, u64) -> Option<Vec<u8>>,
) -> Result<BuildInfo, &'static str> {
    let start = section
        .windows(MAGIC.len())
        .position(|w| w == MAGIC)
        .ok_or("no build info magic")?;
    let b = &section[start..];
    if b.len() < 32 {
        return Err("build info header truncated");
    }
    let flags = b[15];
    let (version, modinfo): (Vec<u8>, Vec<u8>) = if flags & 2 != 0 {
        let (version, n) = string_at(&b[32..]).ok_or("bad version string")?;
        let (modinfo, _) = string_at(&b[32 + n..]).ok_or("bad module info string")?;
        (version.to_vec(), modinfo.to_vec())
    } else {
        let ps = usize::from(b[14]);
        if ps != 4 && ps != 8 {
            return Err("bad pointer size in build info");
        }
        let big = flags & 1 != 0;
        let ptr = |x: &[u8]| -> u64 {
            x.iter().take(ps).enumerate().fold(0u64, |acc, (i, &c)| {
                let shift = if big { 8 * (ps - 1 - i) } else { 8 * i };
                acc | (u64::from(c) << shift)
            })
        };
        let string = |addr: u64| -> Option<Vec<u8>> {
            let header = mem(addr, 2 * ps as u64)?;
            let (data, len) = (ptr(&header[..ps]), ptr(&header[ps..]));
            if len > 1 << 20 {
                return None;
            }
            mem(data, len)
        };
        let version =
            string(ptr(&b[16..16 + ps])).ok_or("version string pointer does not resolve")?;
        let modinfo = string(ptr(&b[16 + ps..16 + 2 * ps])).unwrap_or_default();
        (version, modinfo)
    };
    let version = &version[..];
    let modinfo = &modinfo[..];
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
