//! The database file format.
//!
//! ```text
//! 0   8  magic "PALVULN\n"
//! 8   4  schema version (u32 LE)
//! 12  4  reserved (0)
//! 16  8  body length (u64 LE)
//! 24 32  SHA-256 of the body
//! 56  …  body:
//!        u32 meta length, meta (JSON: what the file holds)
//!        u32 key count, then per key, sorted: u16 key length, key ("ecosystem\0name"),
//!            u64 blob offset, u32 blob length
//!        blobs: per key, a deflate-compressed JSON array of advisories
//! ```
//!
//! Opening reads the file once, checks magic, version, length and checksum, and parses only
//! the index; a lookup is a binary search plus one small blob inflated.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::advisory::Advisory;

/// The current layout version; files of another version are refused.
pub const SCHEMA_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"PALVULN\n";
const HEADER: usize = 56;

/// Why a database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No file at the path.
    #[error("no vulnerability database at {0}: build one with `palisade db import DIR|ZIP...`")]
    Missing(PathBuf),
    /// Reading or writing failed.
    #[error("vulnerability database {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a Palisade vulnerability database.
    #[error("{0} is not a Palisade vulnerability database (bad magic): rebuild it with `palisade db import`")]
    NotADatabase(PathBuf),
    /// The file has another layout version.
    #[error("vulnerability database {path} has schema version {found}, this palisade reads {expected}: rebuild it with `palisade db import`")]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// Ours.
        expected: u32,
    },
    /// The file is damaged.
    #[error(
        "vulnerability database {path} is corrupt ({reason}): rebuild it with `palisade db import`"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },
}

/// Counts for one ecosystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcosystemCount {
    /// Distinct records with at least one entry in this ecosystem.
    pub advisories: u64,
    /// Distinct packages.
    pub packages: u64,
}

/// What a database file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbMeta {
    /// Layout version.
    pub schema: u32,
    /// When the file was built.
    pub built: String,
    /// The newest `modified` time of any record.
    pub newest_modified: String,
    /// Records imported.
    pub records: u64,
    /// Counts per ecosystem (with release).
    pub ecosystems: BTreeMap<String, EcosystemCount>,
    /// Withdrawn records left out.
    pub withdrawn: u64,
    /// Informational notices (RUSTSEC unmaintained/unsound…) left out: not vulnerabilities.
    pub informational: u64,
    /// Files that could not be read as OSV records.
    pub malformed: u64,
}

/// An opened, checked database.
#[derive(Debug)]
pub struct Database {
    path: PathBuf,
    meta: DbMeta,
    index: Vec<(String, u64, u32)>,
    blobs_start: usize,
    data: Vec<u8>,
    size: u64,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

impl Database {
    /// Opens and checks a database file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DbError> {
        let path = path.as_ref().to_path_buf();
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DbError::Missing(path))
            }
            Err(source) => return Err(DbError::Io { path, source }),
        };
        let corrupt = |reason: &str| DbError::Corrupt {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        if data.len() < HEADER || &data[..8] != MAGIC {
            return Err(DbError::NotADatabase(path));
        }
        let mut r = Reader {
            data: &data,
            pos: 8,
        };
        let version = r.u32().ok_or_else(|| corrupt("short header"))?;
        if version != SCHEMA_VERSION {
            return Err(DbError::SchemaVersion {
                path,
                found: version,
                expected: SCHEMA_VERSION,
            });
        }
        r.u32();
        let body_len = r.u64().ok_or_else(|| corrupt("short header"))?;
        let sum = r.take(32).ok_or_else(|| corrupt("short header"))?.to_vec();
        if (data.len() - HEADER) as u64 != body_len {
            return Err(corrupt(
                "truncated or extended: length does not match the header",
            ));
        }
        {
            use sha2::Digest;
            if sha2::Sha256::digest(&data[HEADER..]).as_slice() != sum.as_slice() {
                return Err(corrupt("checksum mismatch"));
            }
        }
        let meta_len = r.u32().ok_or_else(|| corrupt("no metadata"))? as usize;
        let meta: DbMeta =
            serde_json::from_slice(r.take(meta_len).ok_or_else(|| corrupt("short metadata"))?)
                .map_err(|e| corrupt(&format!("metadata: {e}")))?;
        let count = r.u32().ok_or_else(|| corrupt("no index"))? as usize;
        let mut index = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            let kl = r.u16().ok_or_else(|| corrupt("short index"))? as usize;
            let key = std::str::from_utf8(r.take(kl).ok_or_else(|| corrupt("short index"))?)
                .map_err(|_| corrupt("index key is not UTF-8"))?
                .to_owned();
            let off = r.u64().ok_or_else(|| corrupt("short index"))?;
            let len = r.u32().ok_or_else(|| corrupt("short index"))?;
            index.push((key, off, len));
        }
        if index.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(corrupt("index not sorted"));
        }
        let blobs_start = r.pos;
        let blobs_len = (data.len() - blobs_start) as u64;
        if index.iter().any(|(_, off, len)| {
            off.checked_add(u64::from(*len))
                .is_none_or(|end| end > blobs_len)
        }) {
            return Err(corrupt("index points outside the file"));
        }
        let size = data.len() as u64;
        Ok(Self {
            path,
            meta,
            index,
            blobs_start,
            data,
            size,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the file holds.
    pub fn meta(&self) -> &DbMeta {
        &self.meta
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of (ecosystem, package) keys.
    pub fn package_count(&self) -> usize {
        self.index.len()
    }

    /// The advisories for one package (`ecosystem` with its release, as in the records).
    pub fn advisories(&self, ecosystem: &str, name: &str) -> Result<Vec<Advisory>, DbError> {
        let key = super::package_key(ecosystem, name);
        let Ok(i) = self
            .index
            .binary_search_by(|(k, _, _)| k.as_str().cmp(&key))
        else {
            return Ok(Vec::new());
        };
        let (_, off, len) = &self.index[i];
        let start = self.blobs_start + *off as usize;
        let blob = &self.data[start..start + *len as usize];
        let mut json = Vec::new();
        flate2::read::DeflateDecoder::new(blob)
            .read_to_end(&mut json)
            .map_err(|e| DbError::Corrupt {
                path: self.path.clone(),
                reason: format!("entry {key:?}: {e}"),
            })?;
        serde_json::from_slice(&json).map_err(|e| DbError::Corrupt {
            path: self.path.clone(),
            reason: format!("entry {key:?}: {e}"),
        })
    }

    /// Writes a database file atomically (a temporary file renamed over `path`).
    pub fn write(
        path: &Path,
        meta: &DbMeta,
        entries: &BTreeMap<String, Vec<Advisory>>,
    ) -> Result<u64, DbError> {
        use std::io::Write;
        let io = |source| DbError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut index = Vec::new();
        let mut blobs = Vec::new();
        for (key, advisories) in entries {
            let json = serde_json::to_vec(advisories).map_err(|e| io(std::io::Error::other(e)))?;
            let mut enc =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(&json).map_err(io)?;
            let blob = enc.finish().map_err(io)?;
            let key_bytes = key.as_bytes();
            let key_len = u16::try_from(key_bytes.len())
                .map_err(|_| io(std::io::Error::other("package name too long")))?;
            index.extend_from_slice(&key_len.to_le_bytes());
            index.extend_from_slice(key_bytes);
            index.extend_from_slice(&(blobs.len() as u64).to_le_bytes());
            index.extend_from_slice(&(blob.len() as u32).to_le_bytes());
            blobs.extend_from_slice(&blob);
        }
        let meta_json = serde_json::to_vec(meta).map_err(|e| io(std::io::Error::other(e)))?;
        let mut body = Vec::with_capacity(meta_json.len() + index.len() + blobs.len() + 8);
        body.extend_from_slice(&(meta_json.len() as u32).to_le_bytes());
        body.extend_from_slice(&meta_json);
        body.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        body.extend_from_slice(&index);
        body.extend_from_slice(&blobs);
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&SCHEMA_VERSION.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&(body.len() as u64).to_le_bytes());
        {
            use sha2::Digest;
            header.extend_from_slice(&sha2::Sha256::digest(&body));
        }
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
        }
        let tmp = path.with_extension("tmp-import");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&header).map_err(io)?;
        f.write_all(&body).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok((header.len() + body.len()) as u64)
    }
}
