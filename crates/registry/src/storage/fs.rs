//! The filesystem backend.
//!
//! Layout under the root:
//! - `blobs/<alg>/<2 hex>/<hex>`: committed content, written only by rename of verified data;
//! - `uploads/<id>/{data,repo}`: upload sessions (they survive a restart);
//! - `repos/<name>/_blobs|_manifests/<alg>/<hex>`: links, `_tags/<tag>` (the digest),
//!   `_referrers/<alg>-<subject hex>/<alg>-<hex>`;
//! - `quarantine/`: blobs that failed verification on read, kept for inspection.
//!
//! Repository name components start with `[a-z0-9]`, so they never collide with `_` directories.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use palisade_image::digest::{Digest, DigestAlgorithm, Hasher};
use tokio::fs;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::{LinkKind, Storage, StorageError, StorageResult, Verification};
use crate::name::{RepositoryName, Tag};

/// Identity of a file's state: if any of these change the content may have changed.
type Stamp = (u64, u64, i64, i64, i64, i64);

/// Filesystem storage rooted at a directory.
#[derive(Debug)]
pub struct FsStorage {
    root: PathBuf,
    verified: Mutex<HashMap<Digest, Stamp>>,
}

fn stamp(m: &std::fs::Metadata) -> Stamp {
    (
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

fn not_found<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn random_suffix() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename).
async fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path without parent"))?;
    fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".tmp-{}", random_suffix()));
    let mut f = fs::File::create(&tmp).await?;
    let res = async {
        f.write_all(bytes).await?;
        f.sync_data().await?;
        drop(f);
        fs::rename(&tmp, path).await
    }
    .await;
    if res.is_err() {
        let _ = fs::remove_file(&tmp).await;
    }
    res
}

async fn read_dir_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    let Some(mut rd) = not_found(fs::read_dir(dir).await)? else {
        return Ok(out);
    };
    while let Some(e) = rd.next_entry().await? {
        if let Ok(n) = e.file_name().into_string() {
            if !n.starts_with(".tmp-") {
                out.push(n);
            }
        }
    }
    Ok(out)
}

fn hash_file(path: &Path, alg: DigestAlgorithm) -> io::Result<Digest> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Hasher::new(alg);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

impl FsStorage {
    /// Opens (creating) storage at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        for d in ["blobs", "uploads", "repos", "quarantine"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        Ok(Self {
            root,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.root
            .join("blobs")
            .join(d.algorithm().name())
            .join(&hex[..2])
            .join(hex)
    }

    fn upload_dir(&self, id: &str) -> Option<PathBuf> {
        // ids are ours (hex); anything else is refused before it becomes a path
        (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.root.join("uploads").join(id))
    }

    fn repo_dir(&self, repo: &RepositoryName) -> PathBuf {
        self.root.join("repos").join(repo.as_str())
    }

    fn link_path(&self, repo: &RepositoryName, kind: LinkKind, d: &Digest) -> PathBuf {
        let k = match kind {
            LinkKind::Blob => "_blobs",
            LinkKind::Manifest => "_manifests",
        };
        self.repo_dir(repo)
            .join(k)
            .join(d.algorithm().name())
            .join(d.hex())
    }

    fn referrer_dir(&self, repo: &RepositoryName, subject: &Digest) -> PathBuf {
        self.repo_dir(repo).join("_referrers").join(format!(
            "{}-{}",
            subject.algorithm().name(),
            subject.hex()
        ))
    }

    fn upload_missing(id: &str) -> StorageError {
        StorageError::Io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("upload {id} unknown"),
        ))
    }
}

fn digest_from_file_name(alg: &str, name: &str) -> Option<Digest> {
    DigestAlgorithm::from_name(alg)?;
    Digest::parse(&format!("{alg}:{name}")).ok()
}

impl Storage for FsStorage {
    type Reader = fs::File;
    type Writer = fs::File;

    async fn blob_size(&self, d: &Digest) -> StorageResult<Option<u64>> {
        // metadata calls are short and served from the page cache: done inline rather than
        // paying a blocking-pool hop (the request path of HEAD is a few of these)
        Ok(not_found(std::fs::metadata(self.blob_path(d)))?.map(|m| m.len()))
    }

    async fn blob_open(&self, d: &Digest, offset: u64) -> StorageResult<Option<fs::File>> {
        let Some(mut f) = not_found(fs::File::open(self.blob_path(d)).await)? else {
            return Ok(None);
        };
        if offset > 0 {
            f.seek(io::SeekFrom::Start(offset)).await?;
        }
        Ok(Some(f))
    }

    async fn blob_verify(&self, d: &Digest) -> StorageResult<Verification> {
        let path = self.blob_path(d);
        let meta = std::fs::metadata(&path)?;
        let before = stamp(&meta);
        if self
            .verified
            .lock()
            .map(|m| m.get(d) == Some(&before))
            .unwrap_or(false)
        {
            return Ok(Verification::Cached);
        }
        let alg = d.algorithm();
        let p = path.clone();
        let actual = tokio::task::spawn_blocking(move || hash_file(&p, alg))
            .await
            .map_err(io::Error::other)??;
        if &actual != d {
            if let Ok(mut m) = self.verified.lock() {
                m.remove(d);
            }
            return Err(StorageError::Corrupt(d.clone()));
        }
        let after = stamp(&fs::metadata(&path).await?);
        if after == before {
            if let Ok(mut m) = self.verified.lock() {
                m.insert(d.clone(), after);
            }
        }
        Ok(Verification::Hashed)
    }

    async fn blob_quarantine(&self, d: &Digest) -> StorageResult<()> {
        if let Ok(mut m) = self.verified.lock() {
            m.remove(d);
        }
        let dst = self.root.join("quarantine").join(format!(
            "{}-{}-{}",
            d.algorithm().name(),
            d.hex(),
            random_suffix()
        ));
        not_found(fs::rename(self.blob_path(d), dst).await)?;
        Ok(())
    }

    async fn blob_put(&self, d: &Digest, bytes: &[u8]) -> StorageResult<()> {
        let path = self.blob_path(d);
        if fs::metadata(&path).await.is_ok() {
            return Ok(());
        }
        Ok(write_atomic(&path, bytes).await?)
    }

    async fn blob_delete(&self, d: &Digest) -> StorageResult<()> {
        if let Ok(mut m) = self.verified.lock() {
            m.remove(d);
        }
        not_found(fs::remove_file(self.blob_path(d)).await)?;
        Ok(())
    }

    async fn blob_list(&self) -> StorageResult<Vec<(Digest, u64, std::time::SystemTime)>> {
        let mut out = Vec::new();
        for alg in DigestAlgorithm::all() {
            let adir = self.root.join("blobs").join(alg.name());
            for pre in read_dir_names(&adir).await? {
                for name in read_dir_names(&adir.join(&pre)).await? {
                    if let Some(d) = digest_from_file_name(alg.name(), &name) {
                        if let Some(m) = not_found(fs::metadata(self.blob_path(&d)).await)? {
                            let t = m.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
                            out.push((d, m.len(), t));
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    async fn upload_create(&self, id: &str, repo: &RepositoryName) -> StorageResult<()> {
        let dir = self
            .upload_dir(id)
            .ok_or_else(|| Self::upload_missing(id))?;
        fs::create_dir_all(&dir).await?;
        fs::write(dir.join("data"), b"").await?;
        write_atomic(&dir.join("repo"), repo.as_str().as_bytes()).await?;
        Ok(())
    }

    async fn upload_info(&self, id: &str) -> StorageResult<Option<(String, u64)>> {
        let Some(dir) = self.upload_dir(id) else {
            return Ok(None);
        };
        let Some(repo) = not_found(fs::read_to_string(dir.join("repo")).await)? else {
            return Ok(None);
        };
        let Some(m) = not_found(fs::metadata(dir.join("data")).await)? else {
            return Ok(None);
        };
        Ok(Some((repo, m.len())))
    }

    async fn upload_append(&self, id: &str) -> StorageResult<fs::File> {
        let dir = self
            .upload_dir(id)
            .ok_or_else(|| Self::upload_missing(id))?;
        Ok(fs::OpenOptions::new()
            .append(true)
            .open(dir.join("data"))
            .await?)
    }

    async fn upload_truncate(&self, id: &str, len: u64) -> StorageResult<()> {
        let dir = self
            .upload_dir(id)
            .ok_or_else(|| Self::upload_missing(id))?;
        let f = fs::OpenOptions::new()
            .write(true)
            .open(dir.join("data"))
            .await?;
        f.set_len(len).await?;
        Ok(())
    }

    async fn upload_hash(&self, id: &str, alg: DigestAlgorithm) -> StorageResult<Digest> {
        let dir = self
            .upload_dir(id)
            .ok_or_else(|| Self::upload_missing(id))?;
        let p = dir.join("data");
        Ok(tokio::task::spawn_blocking(move || hash_file(&p, alg))
            .await
            .map_err(io::Error::other)??)
    }

    async fn upload_commit(&self, id: &str, d: &Digest) -> StorageResult<()> {
        let dir = self
            .upload_dir(id)
            .ok_or_else(|| Self::upload_missing(id))?;
        let data = dir.join("data");
        let dst = self.blob_path(d);
        if fs::metadata(&dst).await.is_err() {
            fs::File::open(&data).await?.sync_data().await?;
            fs::create_dir_all(dst.parent().ok_or_else(|| io::Error::other("no parent"))?).await?;
            fs::rename(&data, &dst).await?;
            // the caller proved the digest on the way in: remember it as verified
            if let Ok(m) = std::fs::metadata(&dst) {
                if let Ok(mut v) = self.verified.lock() {
                    v.insert(d.clone(), stamp(&m));
                }
            }
        }
        not_found(fs::remove_dir_all(&dir).await)?;
        Ok(())
    }

    async fn upload_delete(&self, id: &str) -> StorageResult<()> {
        if let Some(dir) = self.upload_dir(id) {
            not_found(fs::remove_dir_all(&dir).await)?;
        }
        Ok(())
    }

    async fn link(&self, repo: &RepositoryName, kind: LinkKind, d: &Digest) -> StorageResult<()> {
        let p = self.link_path(repo, kind, d);
        if fs::metadata(&p).await.is_err() {
            write_atomic(&p, b"").await?;
        }
        Ok(())
    }

    async fn linked(
        &self,
        repo: &RepositoryName,
        kind: LinkKind,
        d: &Digest,
    ) -> StorageResult<bool> {
        Ok(not_found(std::fs::metadata(self.link_path(repo, kind, d)))?.is_some())
    }

    async fn unlink(
        &self,
        repo: &RepositoryName,
        kind: LinkKind,
        d: &Digest,
    ) -> StorageResult<bool> {
        Ok(not_found(fs::remove_file(self.link_path(repo, kind, d)).await)?.is_some())
    }

    async fn links(&self, repo: &RepositoryName, kind: LinkKind) -> StorageResult<Vec<Digest>> {
        let mut out = Vec::new();
        let probe = Digest::of(b"");
        let base = self.link_path(repo, kind, &probe);
        let Some(kind_dir) = base.parent().and_then(Path::parent) else {
            return Ok(out);
        };
        for alg in DigestAlgorithm::all() {
            for n in read_dir_names(&kind_dir.join(alg.name())).await? {
                out.extend(digest_from_file_name(alg.name(), &n));
            }
        }
        Ok(out)
    }

    async fn tag_set(&self, repo: &RepositoryName, tag: &Tag, d: &Digest) -> StorageResult<()> {
        let p = self.repo_dir(repo).join("_tags").join(tag.as_str());
        Ok(write_atomic(&p, d.to_string().as_bytes()).await?)
    }

    async fn tag_get(&self, repo: &RepositoryName, tag: &Tag) -> StorageResult<Option<Digest>> {
        let p = self.repo_dir(repo).join("_tags").join(tag.as_str());
        Ok(not_found(std::fs::read_to_string(p))?.and_then(|s| Digest::parse(s.trim()).ok()))
    }

    async fn tag_delete(&self, repo: &RepositoryName, tag: &Tag) -> StorageResult<bool> {
        let p = self.repo_dir(repo).join("_tags").join(tag.as_str());
        Ok(not_found(fs::remove_file(p).await)?.is_some())
    }

    async fn tags(&self, repo: &RepositoryName) -> StorageResult<Vec<(String, Digest)>> {
        let dir = self.repo_dir(repo).join("_tags");
        let mut out = Vec::new();
        for n in read_dir_names(&dir).await? {
            if let Some(s) = not_found(fs::read_to_string(dir.join(&n)).await)? {
                if let Ok(d) = Digest::parse(s.trim()) {
                    out.push((n, d));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn referrer_add(
        &self,
        repo: &RepositoryName,
        s: &Digest,
        r: &Digest,
    ) -> StorageResult<()> {
        let p = self
            .referrer_dir(repo, s)
            .join(format!("{}-{}", r.algorithm().name(), r.hex()));
        Ok(write_atomic(&p, b"").await?)
    }

    async fn referrer_remove(
        &self,
        repo: &RepositoryName,
        s: &Digest,
        r: &Digest,
    ) -> StorageResult<()> {
        let p = self
            .referrer_dir(repo, s)
            .join(format!("{}-{}", r.algorithm().name(), r.hex()));
        not_found(fs::remove_file(p).await)?;
        Ok(())
    }

    async fn referrers(&self, repo: &RepositoryName, s: &Digest) -> StorageResult<Vec<Digest>> {
        let mut out: Vec<Digest> = read_dir_names(&self.referrer_dir(repo, s))
            .await?
            .iter()
            .filter_map(|n| {
                n.split_once('-')
                    .and_then(|(a, h)| digest_from_file_name(a, h))
            })
            .collect();
        out.sort_by_key(|d| d.to_string());
        Ok(out)
    }

    async fn repository_exists(&self, repo: &RepositoryName) -> StorageResult<bool> {
        let dir = self.repo_dir(repo);
        for k in ["_blobs", "_manifests", "_tags"] {
            if fs::metadata(dir.join(k)).await.is_ok() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn repositories(&self) -> StorageResult<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.root.join("repos"), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let names = read_dir_names(&dir).await?;
            if names.iter().any(|n| n == "_manifests" || n == "_tags") {
                out.push(prefix.clone());
            }
            for n in names.into_iter().filter(|n| !n.starts_with('_')) {
                let p = if prefix.is_empty() {
                    n.clone()
                } else {
                    format!("{prefix}/{n}")
                };
                stack.push((dir.join(&n), p));
            }
        }
        out.retain(|r| !r.is_empty());
        out.sort();
        Ok(out)
    }

    async fn repository_delete(&self, repo: &RepositoryName) -> StorageResult<bool> {
        let dir = self.repo_dir(repo);
        let mut any = false;
        for k in ["_blobs", "_manifests", "_tags", "_referrers"] {
            any |= not_found(fs::remove_dir_all(dir.join(k)).await)?.is_some();
        }
        Ok(any)
    }
}

/// A synchronous, read-only view of a filesystem store for gates and scanners
/// ([`crate::gate::RegistryView`]); every byte it returns is verified against its digest.
#[derive(Debug, Clone)]
pub struct FsView {
    root: PathBuf,
}

impl FsStorage {
    /// The read-only view gates and scanners use.
    pub fn view(&self) -> FsView {
        FsView {
            root: self.root.clone(),
        }
    }
}

impl FsView {
    fn repo(&self, r: &RepositoryName) -> PathBuf {
        self.root.join("repos").join(r.as_str())
    }

    fn read_verified(&self, d: &Digest, max: u64) -> Option<Vec<u8>> {
        let hex = d.hex();
        let p = self
            .root
            .join("blobs")
            .join(d.algorithm().name())
            .join(&hex[..2])
            .join(hex);
        if std::fs::metadata(&p).ok()?.len() > max {
            return None;
        }
        let bytes = std::fs::read(p).ok()?;
        d.matches(&bytes).then_some(bytes)
    }

    fn linked(&self, r: &RepositoryName, kind: &str, d: &Digest) -> bool {
        self.repo(r)
            .join(kind)
            .join(d.algorithm().name())
            .join(d.hex())
            .exists()
    }
}

const VIEW_MANIFEST_MAX: u64 = 16 << 20;

impl crate::gate::RegistryView for FsView {
    fn manifest(&self, r: &RepositoryName, d: &Digest) -> Option<Vec<u8>> {
        self.linked(r, "_manifests", d)
            .then(|| self.read_verified(d, VIEW_MANIFEST_MAX))
            .flatten()
    }

    fn tag(&self, r: &RepositoryName, tag: &str) -> Option<(Digest, Vec<u8>)> {
        let t = Tag::parse(tag).ok()?;
        let s = std::fs::read_to_string(self.repo(r).join("_tags").join(t.as_str())).ok()?;
        let d = Digest::parse(s.trim()).ok()?;
        let m = self.manifest(r, &d)?;
        Some((d, m))
    }

    fn referrers(
        &self,
        r: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Vec<crate::manifest::Descriptor> {
        let dir = self.repo(r).join("_referrers").join(format!(
            "{}-{}",
            subject.algorithm().name(),
            subject.hex()
        ));
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let Ok(n) = e.file_name().into_string() else {
                continue;
            };
            let Some(d) = n
                .split_once('-')
                .and_then(|(a, h)| digest_from_file_name(a, h))
            else {
                continue;
            };
            let Some(bytes) = self.manifest(r, &d) else {
                continue;
            };
            let Ok(m) = crate::manifest::Manifest::parse(&bytes, None) else {
                continue;
            };
            out.extend(m.referrer_entry(&d, bytes.len(), artifact_type));
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        out
    }

    fn blob(&self, r: &RepositoryName, d: &Digest, max: u64) -> Option<Vec<u8>> {
        (self.linked(r, "_blobs", d) || self.linked(r, "_manifests", d))
            .then(|| self.read_verified(d, max))
            .flatten()
    }
}
