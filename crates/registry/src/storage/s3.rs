//! The S3-compatible object storage backend (through the `object_store` crate).
//!
//! Key layout under the configured prefix:
//! - `blobs/<alg>/<hex>`: committed content, written only once its bytes hashed to the digest;
//! - `uploads/<id>/repo` (the repository) and `uploads/<id>/parts/<offset>`: an upload session's
//!   bytes as part objects named by their (zero-padded) start offset, so appending never rewrites
//!   what is there and rolling back a chunk deletes or shortens the parts past it;
//! - `repositories/<name>/_blobs|_manifests/<alg>/<hex>`: links, `_tags/<tag>` (the digest),
//!   `_referrers/<alg>-<subject hex>/<alg>-<hex>`;
//! - `quarantine/<alg>-<hex>-<random>`: blobs that failed verification on read.
//!
//! Commit streams the upload's parts into a multipart upload of the blob's final key while
//! hashing them again: the upload is completed (and the object becomes visible, atomically) only
//! when the bytes hash to the digest, and aborted otherwise. Reads are verified like the
//! filesystem backend's: a positive answer is cached against the object's size and ETag.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload, WriteMultipart};
use palisade_image::digest::{Digest, DigestAlgorithm, Hasher};
use serde::Deserialize;
use tokio::io::AsyncWrite;

use super::{LinkKind, Storage, StorageError, StorageResult, Verification};
use crate::name::{RepositoryName, Tag};

/// Bytes buffered by an upload writer before they go out as one part object.
const PART_BYTES: usize = 8 << 20;
/// Chunk size of the multipart upload that commits a blob (S3's minimum part is 5 MiB).
const COMMIT_CHUNK_BYTES: usize = 8 << 20;
/// Parts of a commit in flight at once.
const COMMIT_CONCURRENCY: usize = 4;

/// `[storage.s3]`: where and how to reach the bucket.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket (must exist).
    pub bucket: String,
    /// The endpoint URL for S3-compatible servers (MinIO, Ceph, ...); AWS when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region.
    #[serde(default = "default_region")]
    pub region: String,
    /// Access key id; `AWS_ACCESS_KEY_ID` when absent.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret access key; `AWS_SECRET_ACCESS_KEY` when absent. Never logged.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Allows a plain `http://` endpoint (a local test server).
    #[serde(default)]
    pub allow_http: bool,
    /// Key prefix inside the bucket (several registries can share one bucket).
    #[serde(default)]
    pub prefix: Option<String>,
}

fn default_region() -> String {
    "us-east-1".into()
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl S3Config {
    /// Checks what can be checked without the network; the message names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.bucket.is_empty() {
            return Err(("storage.s3.bucket", "must not be empty".into()));
        }
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("https://") || e.starts_with("http://")) {
                return Err((
                    "storage.s3.endpoint",
                    "must be an http:// or https:// URL".into(),
                ));
            }
            if e.starts_with("http://") && !self.allow_http {
                return Err((
                    "storage.s3.endpoint",
                    "is plain http://: set allow_http = true (local servers only) or use https://"
                        .into(),
                ));
            }
        }
        if let Some(p) = &self.prefix {
            if p.split('/')
                .any(|c| c == "." || c == ".." || c.contains(['\\', '\0']))
            {
                return Err(("storage.s3.prefix", "must be plain path components".into()));
            }
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if self.access_key_id.is_none() && env("AWS_ACCESS_KEY_ID").is_none() {
            return Err((
                "storage.s3.access_key_id",
                "missing: set it or AWS_ACCESS_KEY_ID".into(),
            ));
        }
        if self.secret_access_key.is_none() && env("AWS_SECRET_ACCESS_KEY").is_none() {
            return Err((
                "storage.s3.secret_access_key",
                "missing: set it or AWS_SECRET_ACCESS_KEY".into(),
            ));
        }
        Ok(())
    }
}

/// What identifies an object's state: its size and ETag.
type Stamp = (u64, Option<String>);

/// Object storage in an S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct S3Storage {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// Blobs known good, with the (size, ETag) they had when hashed.
    verified: Arc<Mutex<HashMap<Digest, Stamp>>>,
}

fn io_err(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { path, .. } => {
            io::Error::new(io::ErrorKind::NotFound, format!("{path} not found"))
        }
        e => io::Error::other(e),
    }
}

fn not_found<T>(r: Result<T, object_store::Error>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(io_err(e)),
    }
}

fn upload_missing(id: &str) -> StorageError {
    StorageError::Io(io::Error::new(
        io::ErrorKind::NotFound,
        format!("upload {id} unknown"),
    ))
}

fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn digest_of(alg: &str, hex: &str) -> Option<Digest> {
    DigestAlgorithm::from_name(alg)?;
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

fn kind_dir(kind: LinkKind) -> &'static str {
    match kind {
        LinkKind::Blob => "_blobs",
        LinkKind::Manifest => "_manifests",
    }
}

impl S3Storage {
    /// Connects to the bucket described by `cfg` (credentials from the environment when the
    /// configuration has none) and checks it is reachable.
    pub async fn connect(cfg: &S3Config) -> StorageResult<Self> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_allow_http(cfg.allow_http)
            // transient failures are retried, but a dead endpoint is reported within seconds
            .with_retry(object_store::RetryConfig {
                max_retries: 4,
                retry_timeout: std::time::Duration::from_secs(30),
                ..object_store::RetryConfig::default()
            });
        if let Some(e) = &cfg.endpoint {
            // path-style requests: S3-compatible servers rarely have per-bucket DNS names
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(k) = cfg
            .access_key_id
            .clone()
            .or_else(|| env("AWS_ACCESS_KEY_ID"))
        {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = cfg
            .secret_access_key
            .clone()
            .or_else(|| env("AWS_SECRET_ACCESS_KEY"))
        {
            b = b.with_secret_access_key(k);
        }
        let store = b.build().map_err(io_err)?;
        let s = Self::with_store(Arc::new(store), cfg.prefix.as_deref().unwrap_or(""));
        // one cheap request so a wrong bucket, endpoint or key fails at start, not at first push
        let mut l = s.store.list(Some(&s.key("blobs")));
        if let Some(Err(e)) = l.next().await {
            return Err(
                io::Error::other(format!("cannot list bucket {:?}: {e}", cfg.bucket)).into(),
            );
        }
        Ok(s)
    }

    /// Storage over any object store (tests use this with an in-memory or local store).
    pub fn with_store(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            verified: Arc::default(),
        }
    }

    /// The object store underneath.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The full key of `rel` (a `/`-separated path below the prefix).
    pub fn key(&self, rel: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// The key of a committed blob.
    pub fn blob_key(&self, d: &Digest) -> Path {
        self.key(&format!("blobs/{}/{}", d.algorithm().name(), d.hex()))
    }

    fn upload_key(&self, id: &str, rest: &str) -> StorageResult<Path> {
        if !valid_upload_id(id) {
            return Err(upload_missing(id));
        }
        Ok(self.key(&format!("uploads/{id}/{rest}")))
    }

    fn repo_key(&self, repo: &RepositoryName, rest: &str) -> Path {
        self.key(&format!("repositories/{}/{rest}", repo.as_str()))
    }

    fn link_key(&self, repo: &RepositoryName, kind: LinkKind, d: &Digest) -> Path {
        self.repo_key(
            repo,
            &format!("{}/{}/{}", kind_dir(kind), d.algorithm().name(), d.hex()),
        )
    }

    fn tag_key(&self, repo: &RepositoryName, tag: &Tag) -> Path {
        self.repo_key(repo, &format!("_tags/{}", tag.as_str()))
    }

    fn referrer_dir(&self, repo: &RepositoryName, s: &Digest) -> Path {
        self.repo_key(
            repo,
            &format!("_referrers/{}-{}", s.algorithm().name(), s.hex()),
        )
    }

    async fn list(&self, prefix: &Path) -> io::Result<Vec<object_store::ObjectMeta>> {
        self.store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(io_err)
    }

    async fn any_under(&self, prefix: &Path) -> io::Result<bool> {
        match self.store.list(Some(prefix)).next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(io_err(e)),
        }
    }

    async fn delete_under(&self, prefix: &Path) -> io::Result<bool> {
        let objs = self.list(prefix).await?;
        for o in &objs {
            not_found(self.store.delete(&o.location).await)?;
        }
        Ok(!objs.is_empty())
    }

    async fn exists(&self, key: &Path) -> io::Result<bool> {
        Ok(not_found(self.store.head(key).await)?.is_some())
    }

    /// An upload's parts as (start offset, size, key), in order.
    async fn parts(&self, id: &str) -> StorageResult<Vec<(u64, u64, Path)>> {
        let dir = self.upload_key(id, "parts")?;
        let mut out: Vec<(u64, u64, Path)> = self
            .list(&dir)
            .await?
            .into_iter()
            .filter_map(|m| {
                let start = m.location.filename()?.parse::<u64>().ok()?;
                Some((start, m.size, m.location))
            })
            .collect();
        out.sort_by_key(|p| p.0);
        Ok(out)
    }

    /// Streams an upload's bytes in order to `sink`.
    async fn for_each_upload_chunk(
        &self,
        id: &str,
        mut sink: impl FnMut(Bytes) -> BoxFuture<'static, io::Result<()>>,
    ) -> StorageResult<()> {
        for (_, _, key) in self.parts(id).await? {
            let mut s = self.store.get(&key).await.map_err(io_err)?.into_stream();
            while let Some(chunk) = s.next().await {
                sink(chunk.map_err(io_err)?).await?;
            }
        }
        Ok(())
    }

    fn forget(&self, d: &Digest) {
        if let Ok(mut m) = self.verified.lock() {
            m.remove(d);
        }
    }

    fn remember(&self, d: &Digest, size: u64, etag: Option<String>) {
        if let Ok(mut m) = self.verified.lock() {
            m.insert(d.clone(), (size, etag));
        }
    }
}

/// Reads a blob: the object's byte stream as [`tokio::io::AsyncRead`].
pub type S3Reader =
    tokio_util::io::StreamReader<futures::stream::BoxStream<'static, io::Result<Bytes>>, Bytes>;

/// Appends to an upload: bytes are buffered and written as part objects of up to 8 MiB; a
/// flush writes what is buffered.
pub struct S3Writer {
    store: Arc<dyn ObjectStore>,
    dir: Path,
    next: u64,
    buf: Vec<u8>,
    inflight: Option<BoxFuture<'static, io::Result<()>>>,
}

impl std::fmt::Debug for S3Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Writer")
            .field("dir", &self.dir)
            .field("next", &self.next)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl S3Writer {
    fn start_put(&mut self) {
        let bytes = std::mem::take(&mut self.buf);
        let key = self.dir.child(format!("{:020}", self.next));
        self.next += bytes.len() as u64;
        let store = Arc::clone(&self.store);
        self.inflight = Some(Box::pin(async move {
            store
                .put(&key, PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(io_err)
        }));
    }

    fn poll_inflight(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(f) = self.inflight.as_mut() {
            let r = ready!(f.as_mut().poll(cx));
            self.inflight = None;
            r?;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for S3Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_inflight(cx))?;
        if this.buf.len() >= PART_BYTES {
            this.start_put();
            ready!(this.poll_inflight(cx))?;
        }
        let n = data
            .len()
            .min(PART_BYTES.saturating_sub(this.buf.len()).max(1));
        this.buf.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_inflight(cx))?;
        if !this.buf.is_empty() {
            this.start_put();
            ready!(this.poll_inflight(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl Storage for S3Storage {
    type Reader = S3Reader;
    type Writer = S3Writer;

    async fn blob_size(&self, d: &Digest) -> StorageResult<Option<u64>> {
        Ok(not_found(self.store.head(&self.blob_key(d)).await)?.map(|m| m.size))
    }

    async fn blob_open(&self, d: &Digest, offset: u64) -> StorageResult<Option<S3Reader>> {
        let key = self.blob_key(d);
        let Some(meta) = not_found(self.store.head(&key).await)? else {
            return Ok(None);
        };
        let stream: futures::stream::BoxStream<'static, io::Result<Bytes>> = if offset >= meta.size
        {
            futures::stream::empty().boxed()
        } else {
            let opts = GetOptions {
                range: (offset > 0).then_some(GetRange::Offset(offset)),
                ..GetOptions::default()
            };
            let Some(r) = not_found(self.store.get_opts(&key, opts).await)? else {
                return Ok(None);
            };
            r.into_stream().map_err(io_err).boxed()
        };
        Ok(Some(tokio_util::io::StreamReader::new(stream)))
    }

    async fn blob_verify(&self, d: &Digest) -> StorageResult<Verification> {
        let key = self.blob_key(d);
        let before = self.store.head(&key).await.map_err(io_err)?;
        let stamp = (before.size, before.e_tag.clone());
        if self
            .verified
            .lock()
            .map(|m| m.get(d) == Some(&stamp))
            .unwrap_or(false)
        {
            return Ok(Verification::Cached);
        }
        let r = self.store.get(&key).await.map_err(io_err)?;
        let read_stamp = (r.meta.size, r.meta.e_tag.clone());
        let mut h = Hasher::new(d.algorithm());
        let mut s = r.into_stream();
        while let Some(chunk) = s.next().await {
            h.update(&chunk.map_err(io_err)?);
        }
        if &h.finish() != d {
            self.forget(d);
            return Err(StorageError::Corrupt(d.clone()));
        }
        if read_stamp == stamp {
            self.remember(d, stamp.0, stamp.1);
        }
        Ok(Verification::Hashed)
    }

    async fn blob_quarantine(&self, d: &Digest) -> StorageResult<()> {
        self.forget(d);
        let src = self.blob_key(d);
        let dst = self.key(&format!(
            "quarantine/{}-{}-{}",
            d.algorithm().name(),
            d.hex(),
            hex::encode(rand::random::<[u8; 8]>())
        ));
        if not_found(self.store.copy(&src, &dst).await)?.is_some() {
            not_found(self.store.delete(&src).await)?;
        }
        Ok(())
    }

    async fn blob_put(&self, d: &Digest, bytes: &[u8]) -> StorageResult<()> {
        let key = self.blob_key(d);
        if self.exists(&key).await? {
            return Ok(());
        }
        let r = self
            .store
            .put(&key, PutPayload::from(bytes.to_vec()))
            .await
            .map_err(io_err)?;
        self.remember(d, bytes.len() as u64, r.e_tag);
        Ok(())
    }

    async fn blob_delete(&self, d: &Digest) -> StorageResult<()> {
        self.forget(d);
        not_found(self.store.delete(&self.blob_key(d)).await)?;
        Ok(())
    }

    async fn blob_list(&self) -> StorageResult<Vec<(Digest, u64, std::time::SystemTime)>> {
        let mut out = Vec::new();
        for alg in DigestAlgorithm::all() {
            let dir = self.key(&format!("blobs/{}", alg.name()));
            for m in self.list(&dir).await? {
                if let Some(d) = m.location.filename().and_then(|h| digest_of(alg.name(), h)) {
                    out.push((d, m.size, std::time::SystemTime::from(m.last_modified)));
                }
            }
        }
        Ok(out)
    }

    async fn upload_create(&self, id: &str, repo: &RepositoryName) -> StorageResult<()> {
        let key = self.upload_key(id, "repo")?;
        self.store
            .put(&key, PutPayload::from(repo.as_str().as_bytes().to_vec()))
            .await
            .map_err(io_err)?;
        Ok(())
    }

    async fn upload_info(&self, id: &str) -> StorageResult<Option<(String, u64)>> {
        if !valid_upload_id(id) {
            return Ok(None);
        }
        let Some(r) = not_found(self.store.get(&self.upload_key(id, "repo")?).await)? else {
            return Ok(None);
        };
        let repo = String::from_utf8_lossy(&r.bytes().await.map_err(io_err)?).into_owned();
        let size = self.parts(id).await?.iter().map(|p| p.1).sum();
        Ok(Some((repo, size)))
    }

    async fn upload_append(&self, id: &str) -> StorageResult<S3Writer> {
        if !self.exists(&self.upload_key(id, "repo")?).await? {
            return Err(upload_missing(id));
        }
        let next = self.parts(id).await?.last().map_or(0, |p| p.0 + p.1);
        Ok(S3Writer {
            store: Arc::clone(&self.store),
            dir: self.upload_key(id, "parts")?,
            next,
            buf: Vec::new(),
            inflight: None,
        })
    }

    async fn upload_truncate(&self, id: &str, len: u64) -> StorageResult<()> {
        for (start, size, key) in self.parts(id).await? {
            if start >= len {
                not_found(self.store.delete(&key).await)?;
            } else if start + size > len {
                let bytes = self.store.get(&key).await.map_err(io_err)?.bytes().await;
                let bytes = bytes.map_err(io_err)?;
                let keep = usize::try_from(len - start).map_err(io::Error::other)?;
                self.store
                    .put(&key, PutPayload::from(bytes.slice(..keep.min(bytes.len()))))
                    .await
                    .map_err(io_err)?;
            }
        }
        Ok(())
    }

    async fn upload_hash(&self, id: &str, alg: DigestAlgorithm) -> StorageResult<Digest> {
        let h = Arc::new(Mutex::new(Hasher::new(alg)));
        let h2 = Arc::clone(&h);
        self.for_each_upload_chunk(id, move |b| {
            if let Ok(mut h) = h2.lock() {
                h.update(&b);
            }
            Box::pin(async { Ok(()) })
        })
        .await?;
        let h = Arc::try_unwrap(h)
            .map_err(|_| io::Error::other("hasher still shared"))?
            .into_inner()
            .map_err(|_| io::Error::other("hasher poisoned"))?;
        Ok(h.finish())
    }

    async fn upload_commit(&self, id: &str, d: &Digest) -> StorageResult<()> {
        let key = self.blob_key(d);
        if !self.exists(&key).await? {
            let parts = self.parts(id).await?;
            let total: u64 = parts.iter().map(|p| p.1).sum();
            let mut h = Hasher::new(d.algorithm());
            let etag = if total <= COMMIT_CHUNK_BYTES as u64 {
                // small: one PUT of the verified bytes
                let mut buf = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
                for (_, _, k) in &parts {
                    let b = self.store.get(k).await.map_err(io_err)?.bytes().await;
                    buf.extend_from_slice(&b.map_err(io_err)?);
                }
                h.update(&buf);
                if &h.finish() != d {
                    return Err(StorageError::Corrupt(d.clone()));
                }
                let r = self.store.put(&key, PutPayload::from(buf)).await;
                r.map_err(io_err)?.e_tag
            } else {
                // large: a multipart upload completed only once the bytes hashed to `d`
                let up = self.store.put_multipart(&key).await.map_err(io_err)?;
                let mut w = WriteMultipart::new_with_chunk_size(up, COMMIT_CHUNK_BYTES);
                let res: StorageResult<()> = async {
                    for (_, _, k) in &parts {
                        let mut s = self.store.get(k).await.map_err(io_err)?.into_stream();
                        while let Some(chunk) = s.next().await {
                            let chunk = chunk.map_err(io_err)?;
                            h.update(&chunk);
                            w.wait_for_capacity(COMMIT_CONCURRENCY)
                                .await
                                .map_err(io_err)?;
                            w.write(&chunk);
                        }
                    }
                    Ok(())
                }
                .await;
                let ok = res.is_ok() && &h.finish() == d;
                if !ok {
                    let _ = w.abort().await;
                    res?;
                    return Err(StorageError::Corrupt(d.clone()));
                }
                w.finish().await.map_err(io_err)?.e_tag
            };
            self.remember(d, total, etag);
        }
        self.upload_delete(id).await
    }

    async fn upload_delete(&self, id: &str) -> StorageResult<()> {
        if valid_upload_id(id) {
            self.delete_under(&self.upload_key(id, "")?).await?;
        }
        Ok(())
    }

    async fn link(&self, repo: &RepositoryName, kind: LinkKind, d: &Digest) -> StorageResult<()> {
        let key = self.link_key(repo, kind, d);
        if !self.exists(&key).await? {
            self.store
                .put(&key, PutPayload::new())
                .await
                .map_err(io_err)?;
        }
        Ok(())
    }

    async fn linked(
        &self,
        repo: &RepositoryName,
        kind: LinkKind,
        d: &Digest,
    ) -> StorageResult<bool> {
        Ok(self.exists(&self.link_key(repo, kind, d)).await?)
    }

    async fn unlink(
        &self,
        repo: &RepositoryName,
        kind: LinkKind,
        d: &Digest,
    ) -> StorageResult<bool> {
        let key = self.link_key(repo, kind, d);
        if !self.exists(&key).await? {
            return Ok(false);
        }
        Ok(not_found(self.store.delete(&key).await)?.is_some())
    }

    async fn links(&self, repo: &RepositoryName, kind: LinkKind) -> StorageResult<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in DigestAlgorithm::all() {
            let dir = self.repo_key(repo, &format!("{}/{}", kind_dir(kind), alg.name()));
            for m in self.list(&dir).await? {
                out.extend(m.location.filename().and_then(|h| digest_of(alg.name(), h)));
            }
        }
        Ok(out)
    }

    async fn tag_set(&self, repo: &RepositoryName, tag: &Tag, d: &Digest) -> StorageResult<()> {
        self.store
            .put(
                &self.tag_key(repo, tag),
                PutPayload::from(d.to_string().into_bytes()),
            )
            .await
            .map_err(io_err)?;
        Ok(())
    }

    async fn tag_get(&self, repo: &RepositoryName, tag: &Tag) -> StorageResult<Option<Digest>> {
        let Some(r) = not_found(self.store.get(&self.tag_key(repo, tag)).await)? else {
            return Ok(None);
        };
        let Some(b) = not_found(r.bytes().await)? else {
            return Ok(None);
        };
        Ok(std::str::from_utf8(&b)
            .ok()
            .and_then(|s| Digest::parse(s.trim()).ok()))
    }

    async fn tag_delete(&self, repo: &RepositoryName, tag: &Tag) -> StorageResult<bool> {
        let key = self.tag_key(repo, tag);
        if !self.exists(&key).await? {
            return Ok(false);
        }
        Ok(not_found(self.store.delete(&key).await)?.is_some())
    }

    async fn tags(&self, repo: &RepositoryName) -> StorageResult<Vec<(String, Digest)>> {
        let mut out = Vec::new();
        for m in self.list(&self.repo_key(repo, "_tags")).await? {
            let Some(name) = m.location.filename().map(str::to_string) else {
                continue;
            };
            let Some(r) = not_found(self.store.get(&m.location).await)? else {
                continue;
            };
            let Some(b) = not_found(r.bytes().await)? else {
                continue;
            };
            if let Some(d) = std::str::from_utf8(&b)
                .ok()
                .and_then(|s| Digest::parse(s.trim()).ok())
            {
                out.push((name, d));
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
        let key = self
            .referrer_dir(repo, s)
            .child(format!("{}-{}", r.algorithm().name(), r.hex()));
        self.store
            .put(&key, PutPayload::new())
            .await
            .map_err(io_err)?;
        Ok(())
    }

    async fn referrer_remove(
        &self,
        repo: &RepositoryName,
        s: &Digest,
        r: &Digest,
    ) -> StorageResult<()> {
        let key = self
            .referrer_dir(repo, s)
            .child(format!("{}-{}", r.algorithm().name(), r.hex()));
        not_found(self.store.delete(&key).await)?;
        Ok(())
    }

    async fn referrers(&self, repo: &RepositoryName, s: &Digest) -> StorageResult<Vec<Digest>> {
        let mut out: Vec<Digest> = self
            .list(&self.referrer_dir(repo, s))
            .await?
            .iter()
            .filter_map(|m| {
                m.location
                    .filename()?
                    .split_once('-')
                    .and_then(|(a, h)| digest_of(a, h))
            })
            .collect();
        out.sort_by_key(|d| d.to_string());
        Ok(out)
    }

    async fn repository_exists(&self, repo: &RepositoryName) -> StorageResult<bool> {
        for k in ["_blobs", "_manifests", "_tags"] {
            if self.any_under(&self.repo_key(repo, k)).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn repositories(&self) -> StorageResult<Vec<String>> {
        let base = self.key("repositories");
        let mut out = std::collections::BTreeSet::new();
        for m in self.list(&base).await? {
            let Some(rest) = m.location.prefix_match(&base) else {
                continue;
            };
            let mut name = Vec::new();
            for part in rest {
                let p = part.as_ref();
                if p.starts_with('_') {
                    if (p == "_manifests" || p == "_tags") && !name.is_empty() {
                        out.insert(name.join("/"));
                    }
                    break;
                }
                name.push(p.to_string());
            }
        }
        Ok(out.into_iter().collect())
    }

    async fn repository_delete(&self, repo: &RepositoryName) -> StorageResult<bool> {
        let mut any = false;
        for k in ["_blobs", "_manifests", "_tags", "_referrers"] {
            any |= self.delete_under(&self.repo_key(repo, k)).await?;
        }
        Ok(any)
    }
}

/// Manifests larger than this are never read for gates.
const VIEW_MANIFEST_MAX: u64 = 16 << 20;

/// A synchronous, read-only view of an S3 store for gates and scanners
/// ([`crate::gate::RegistryView`]); every byte it returns is verified against its digest. Its
/// calls block the calling thread on the runtime it was made in (they must run on a
/// multi-threaded runtime or outside one).
#[derive(Debug, Clone)]
pub struct S3View {
    storage: S3Storage,
    handle: tokio::runtime::Handle,
}

impl S3Storage {
    /// The gates' view of this store; call inside the (multi-threaded) runtime serving it.
    pub fn view(&self) -> S3View {
        S3View {
            storage: self.clone(),
            handle: tokio::runtime::Handle::current(),
        }
    }
}

impl S3View {
    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        tokio::task::block_in_place(|| self.handle.block_on(f))
    }

    fn read_verified(&self, d: &Digest, max: u64) -> Option<Vec<u8>> {
        self.block(async {
            let key = self.storage.blob_key(d);
            let meta = self.storage.store.head(&key).await.ok()?;
            if meta.size > max {
                return None;
            }
            let bytes = self
                .storage
                .store
                .get(&key)
                .await
                .ok()?
                .bytes()
                .await
                .ok()?;
            d.matches(&bytes).then(|| bytes.to_vec())
        })
    }

    fn linked(&self, r: &RepositoryName, kind: LinkKind, d: &Digest) -> bool {
        self.block(self.storage.linked(r, kind, d)).unwrap_or(false)
    }
}

impl crate::gate::RegistryView for S3View {
    fn manifest(&self, r: &RepositoryName, d: &Digest) -> Option<Vec<u8>> {
        self.linked(r, LinkKind::Manifest, d)
            .then(|| self.read_verified(d, VIEW_MANIFEST_MAX))
            .flatten()
    }

    fn tag(&self, r: &RepositoryName, tag: &str) -> Option<(Digest, Vec<u8>)> {
        let t = Tag::parse(tag).ok()?;
        let d = self.block(self.storage.tag_get(r, &t)).ok()??;
        let m = self.manifest(r, &d)?;
        Some((d, m))
    }

    fn referrers(
        &self,
        r: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Vec<crate::manifest::Descriptor> {
        let Ok(list) = self.block(self.storage.referrers(r, subject)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for d in list {
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
        (self.linked(r, LinkKind::Blob, d) || self.linked(r, LinkKind::Manifest, d))
            .then(|| self.read_verified(d, max))
            .flatten()
    }
}
