//! rpm's database, `rpmdb.sqlite` (RHEL/Rocky/Alma 9, Fedora 33+, openSUSE): table `Packages`
//! of header blobs. A header is `il` and `dl` (u32 big-endian), `il` index entries (tag, type,
//! offset, count) and `dl` bytes of data; the name, version, release, epoch and source rpm
//! tags are read from it.

use std::path::Path;

use super::Package;

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_SOURCERPM: u32 = 1044;
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The fields of one header blob.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) name: String,
    pub(super) version: String,
    pub(super) release: String,
    pub(super) epoch: Option<u32>,
    pub(super) source_rpm: Option<String>,
}

/// Parses a header blob (as stored in rpmdb, without the lead magic).
pub(super) fn parse_header(blob: &[u8]) -> Result<Header, String> {
    let il = be32(blob, 0).ok_or("header too short")? as usize;
    let dl = be32(blob, 4).ok_or("header too short")? as usize;
    if il > 100_000 || dl > (256 << 20) {
        return Err("header sizes out of range".into());
    }
    let data_start = 8 + il * 16;
    let data = blob
        .get(data_start..data_start + dl)
        .ok_or("header data truncated")?;
    let mut h = Header::default();
    for i in 0..il {
        let e = 8 + i * 16;
        let (tag, kind, offset) = (
            be32(blob, e).ok_or("bad index")?,
            be32(blob, e + 4).ok_or("bad index")?,
            be32(blob, e + 8).ok_or("bad index")? as usize,
        );
        let string = || -> Option<String> {
            if kind != TYPE_STRING && kind != TYPE_I18NSTRING {
                return None;
            }
            let rest = data.get(offset..)?;
            let end = rest.iter().position(|&c| c == 0)?;
            String::from_utf8(rest[..end].to_vec()).ok()
        };
        match tag {
            TAG_NAME => h.name = string().ok_or("bad NAME")?,
            TAG_VERSION => h.version = string().ok_or("bad VERSION")?,
            TAG_RELEASE => h.release = string().ok_or("bad RELEASE")?,
            TAG_EPOCH if kind == TYPE_INT32 => h.epoch = be32(data, offset),
            TAG_SOURCERPM => h.source_rpm = string(),
            _ => {}
        }
    }
    if h.name.is_empty() || h.version.is_empty() {
        return Err("header without NAME or VERSION".into());
    }
    Ok(h)
}

impl Header {
    fn evr(&self) -> String {
        let epoch = self.epoch.map(|e| format!("{e}:")).unwrap_or_default();
        if self.release.is_empty() {
            format!("{epoch}{}", self.version)
        } else {
            format!("{epoch}{}-{}", self.version, self.release)
        }
    }

    /// The source package's name: `openssl-3.0.7-24.el9.src.rpm` -> `openssl`.
    fn source_name(&self) -> Option<String> {
        let s = self.source_rpm.as_deref()?;
        let s = s
            .strip_suffix(".src.rpm")
            .or_else(|| s.strip_suffix(".nosrc.rpm"))?;
        let (rest, _release) = s.rsplit_once('-')?;
        let (name, _version) = rest.rsplit_once('-')?;
        Some(name.to_owned())
    }
}

/// What could be read of an rpm database: the packages, and a warning when some headers
/// could not be read.
type RpmPackages = (Vec<Package>, Option<String>);

/// Reads every package of an rpmdb.sqlite held in memory (copied to a private temporary
/// file, opened read-only, removed afterwards).
pub(super) fn parse_rpmdb(
    bytes: &[u8],
    ecosystem: &str,
    location: &str,
) -> Result<RpmPackages, String> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp =
        std::env::temp_dir().join(format!("palisade-rpmdb-{}-{n}.sqlite", std::process::id()));
    let result = (|| {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("cannot stage the database: {e}"))?;
        f.write_all(bytes)
            .map_err(|e| format!("cannot stage the database: {e}"))?;
        drop(f);
        read_packages(&tmp, ecosystem, location)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

fn read_packages(path: &Path, ecosystem: &str, location: &str) -> Result<RpmPackages, String> {
    use rusqlite::{Connection, OpenFlags};
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("not an SQLite database: {e}"))?;
    let mut stmt = conn
        .prepare("SELECT blob FROM Packages")
        .map_err(|e| format!("no Packages table: {e}"))?;
    let rows = stmt
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .map_err(|e| format!("cannot read Packages: {e}"))?;
    let mut out = Vec::new();
    let mut bad = 0;
    for row in rows {
        let Ok(blob) = row else {
            bad += 1;
            continue;
        };
        match parse_header(&blob) {
            Ok(h) if h.name == "gpg-pubkey" => {}
            Ok(h) => {
                let evr = h.evr();
                let mut p = Package::os(&h.name, &evr, ecosystem, location);
                p.source_name = Some(h.source_name().unwrap_or_else(|| h.name.clone()));
                p.source_version = Some(evr);
                out.push(p);
            }
            Err(_) => bad += 1,
        }
    }
    let warning = (bad > 0).then(|| {
        format!(
            "{bad} package header(s) could not be read; {} were",
            out.len()
        )
    });
    Ok((out, warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names() {
        let h = Header {
            name: "openssl-libs".into(),
            version: "3.0.7".into(),
            release: "24.el9".into(),
            epoch: Some(1),
            source_rpm: Some("openssl-3.0.7-24.el9.src.rpm".into()),
        };
        assert_eq!(h.evr(), "1:3.0.7-24.el9");
        assert_eq!(h.source_name().as_deref(), Some("openssl"));
        assert!(parse_header(b"\x00\x00\x00\x01").is_err());
        assert!(parse_header(&[0xff; 64]).is_err());
    }
}
