//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic, mount), `PATCH` chunks,
//! `PUT` to finish, `GET` status, `DELETE` to cancel.
//!
//! Bytes are appended to the session's file as they arrive and hashed on the way in; a chunk that
//! fails half way (client gone, wrong length) is rolled back to where it started, so the session
//! stays usable. The blob becomes visible only when `PUT` proves the digest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{CONTENT_RANGE, LOCATION, RANGE};
use http::{HeaderMap, StatusCode};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;
use palisade_image::digest::{Digest, DigestAlgorithm, Hasher};
use tokio::io::AsyncWriteExt;

use super::access::{Access, Op};
use super::blobs::parse_digest;
use super::response::{Reply, Response};
use super::{content_length, Registry};
use crate::auth::Principal;
use crate::error::{internal, ApiError, ErrorCode};
use crate::name::RepositoryName;
use crate::range::ChunkRange;
use crate::storage::{LinkKind, Storage};

/// One upload in flight.
#[derive(Debug)]
pub(super) struct Session {
    repo: String,
    size: u64,
    /// The running sha256 of the bytes so far; `None` after a restart (rehashed at the end).
    hasher: Option<Hasher>,
}

/// The upload sessions this process knows (the storage knows them too, across restarts).
#[derive(Debug, Default)]
pub(super) struct Sessions {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Session>>>>,
}

impl Sessions {
    fn get(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<Session>>> {
        self.map.lock().ok()?.get(id).cloned()
    }

    fn insert(&self, id: &str, s: Session) -> Arc<tokio::sync::Mutex<Session>> {
        let a = Arc::new(tokio::sync::Mutex::new(s));
        if let Ok(mut m) = self.map.lock() {
            m.insert(id.to_owned(), Arc::clone(&a));
        }
        a
    }

    fn remove(&self, id: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(id);
        }
    }
}

fn upload_unknown(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::BlobUploadUnknown,
        format!("upload {id} is unknown (finished, cancelled or never started)"),
    )
}

fn location(repo: &RepositoryName, id: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

fn range_value(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

impl<S: Storage> Registry<S> {
    async fn session(
        &self,
        repo: &RepositoryName,
        id: &str,
    ) -> Result<Arc<tokio::sync::Mutex<Session>>, ApiError> {
        let s = match self.uploads.get(id) {
            Some(s) => s,
            None => {
                let Some((r, size)) = self.storage.upload_info(id).await.map_err(internal)? else {
                    return Err(upload_unknown(id));
                };
                self.uploads.insert(
                    id,
                    Session {
                        repo: r,
                        size,
                        hasher: (size == 0).then(|| Hasher::new(DigestAlgorithm::Sha256)),
                    },
                )
            }
        };
        if s.lock().await.repo != repo.as_str() {
            return Err(upload_unknown(id));
        }
        Ok(s)
    }

    async fn new_session(
        &self,
        repo: &RepositoryName,
    ) -> Result<(String, Arc<tokio::sync::Mutex<Session>>), ApiError> {
        let id = hex::encode(rand::random::<[u8; 16]>());
        self.storage
            .upload_create(&id, repo)
            .await
            .map_err(internal)?;
        let s = self.uploads.insert(
            &id,
            Session {
                repo: repo.as_str().to_owned(),
                size: 0,
                hasher: Some(Hasher::new(DigestAlgorithm::Sha256)),
            },
        );
        Ok((id, s))
    }

    /// Appends a request body to the session; on failure the session is rolled back.
    async fn append<B>(
        &self,
        id: &str,
        s: &mut Session,
        mut body: B,
        expected: Option<u64>,
    ) -> Result<(), ApiError>
    where
        B: HttpBody<Data = Bytes> + Send + Unpin,
        B::Error: std::fmt::Display,
    {
        if body.is_end_stream() && expected.unwrap_or(0) == 0 {
            return Ok(());
        }
        let mut w = self.storage.upload_append(id).await.map_err(internal)?;
        let start = s.size;
        let saved = s.hasher.clone();
        let mut n: u64 = 0;
        let result: Result<(), ApiError> = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| {
                    ApiError::new(
                        ErrorCode::BlobUploadInvalid,
                        format!("the upload body ended early: {e}"),
                    )
                })?;
                if let Ok(data) = frame.into_data() {
                    if expected.is_some_and(|e| n + data.len() as u64 > e) {
                        return Err(ApiError::new(
                            ErrorCode::SizeInvalid,
                            "more bytes than Content-Length/Content-Range announced",
                        ));
                    }
                    w.write_all(&data).await.map_err(internal)?;
                    if let Some(h) = s.hasher.as_mut() {
                        h.update(&data);
                    }
                    n += data.len() as u64;
                }
            }
            if expected.is_some_and(|e| e != n) {
                return Err(ApiError::new(
                    ErrorCode::SizeInvalid,
                    format!("received {n} bytes, fewer than announced"),
                ));
            }
            w.flush().await.map_err(internal)?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                s.size = start + n;
                self.metrics
                    .bytes_received
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                // roll back to the start of this chunk so the client can resend it
                let _ = w.flush().await;
                drop(w);
                self.truncate_upload(id, start).await?;
                s.hasher = saved;
                Err(e)
            }
        }
    }

    async fn truncate_upload(&self, id: &str, len: u64) -> Result<(), ApiError> {
        self.storage
            .upload_truncate(id, len)
            .await
            .map_err(internal)
    }

    /// Finishes: checks the digest, commits the blob and links it into `repo`.
    async fn finish(
        &self,
        repo: &RepositoryName,
        id: &str,
        s: &mut Session,
        digest: &Digest,
    ) -> Result<(), ApiError> {
        let actual = match (&s.hasher, digest.algorithm()) {
            (Some(h), DigestAlgorithm::Sha256) => h.clone().finish(),
            _ => self
                .storage
                .upload_hash(id, digest.algorithm())
                .await
                .map_err(internal)?,
        };
        if &actual != digest {
            self.uploads.remove(id);
            self.storage.upload_delete(id).await.map_err(internal)?;
            return Err(ApiError::new(
                ErrorCode::DigestInvalid,
                format!("uploaded content has digest {actual}, not {digest}; the upload was discarded, push again"),
            ));
        }
        let _gc = self.gc_lock.read().await;
        let already = self
            .storage
            .linked(repo, LinkKind::Blob, digest)
            .await
            .map_err(internal)?;
        if !already {
            if let Err(e) = self.quota_check(repo, s.size).await {
                self.uploads.remove(id);
                self.storage.upload_delete(id).await.map_err(internal)?;
                return Err(e);
            }
        }
        self.storage
            .upload_commit(id, digest)
            .await
            .map_err(internal)?;
        self.uploads.remove(id);
        self.storage
            .link(repo, LinkKind::Blob, digest)
            .await
            .map_err(internal)?;
        tracing::info!(target: "palisade_registry::audit", repository = %repo, blob = %digest, size = s.size, "blob pushed");
        if !already {
            self.quota_add(repo, digest, s.size);
        }
        Ok(())
    }

    fn created(repo: &RepositoryName, d: &Digest) -> Response {
        Reply::new(StatusCode::CREATED)
            .header(LOCATION, format!("/v2/{repo}/blobs/{d}"))
            .header("docker-content-digest", d.to_string())
            .empty()
    }

    pub(super) async fn upload_start<B>(
        &self,
        repo: &RepositoryName,
        query: &[(String, String)],
        headers: &HeaderMap,
        body: B,
        access: &dyn Access,
        who: &Principal,
    ) -> Result<Response, ApiError>
    where
        B: HttpBody<Data = Bytes> + Send + Unpin,
        B::Error: std::fmt::Display,
    {
        use super::route::query_get;
        if let (Some(mount), Some(from)) = (query_get(query, "mount"), query_get(query, "from")) {
            if let (Ok(d), Ok(from)) = (Digest::parse(mount), RepositoryName::parse(from)) {
                if access.allowed(who, &from, Op::Pull)
                    && self
                        .storage
                        .linked(&from, LinkKind::Blob, &d)
                        .await
                        .map_err(internal)?
                {
                    let _gc = self.gc_lock.read().await;
                    if let Some(size) = self.storage.blob_size(&d).await.map_err(internal)? {
                        let already = self
                            .storage
                            .linked(repo, LinkKind::Blob, &d)
                            .await
                            .map_err(internal)?;
                        if !already {
                            self.quota_check(repo, size).await?;
                        }
                        self.storage
                            .link(repo, LinkKind::Blob, &d)
                            .await
                            .map_err(internal)?;
                        if !already {
                            self.quota_add(repo, &d, size);
                        }
                        return Ok(Self::created(repo, &d));
                    }
                }
            }
            // not mountable: fall through to a normal upload session, as the spec says
        }
        if let Some(digest) = query_get(query, "digest") {
            let d = parse_digest(digest)?;
            let (id, s) = self.new_session(repo).await?;
            let mut s = s.lock().await;
            let res = async {
                self.append(&id, &mut s, body, content_length(headers))
                    .await?;
                self.finish(repo, &id, &mut s, &d).await
            }
            .await;
            if res.is_err() {
                self.uploads.remove(&id);
                let _ = self.storage.upload_delete(&id).await;
            }
            res?;
            return Ok(Self::created(repo, &d));
        }
        let (id, _) = self.new_session(repo).await?;
        Ok(Reply::new(StatusCode::ACCEPTED)
            .header(LOCATION, location(repo, &id))
            .header(RANGE, "0-0")
            .header("docker-upload-uuid", &id)
            .empty())
    }

    /// The chunk's expected length from Content-Range, after checking it starts where the
    /// session ends (416 otherwise, the session unchanged).
    fn chunk_check(
        repo: &RepositoryName,
        id: &str,
        s: &Session,
        headers: &HeaderMap,
    ) -> Result<Option<u64>, Box<Response>> {
        let cl = content_length(headers);
        let Some(cr) = headers.get(CONTENT_RANGE) else {
            return Ok(cl);
        };
        let bad = || {
            Box::new(
                Reply::new(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(LOCATION, location(repo, id))
                    .header(RANGE, range_value(s.size))
                    .header("docker-upload-uuid", id)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(
                        ApiError::with_status(
                            StatusCode::RANGE_NOT_SATISFIABLE,
                            ErrorCode::BlobUploadInvalid,
                            format!("chunk must start at byte {}", s.size),
                        )
                        .body()
                        .into(),
                    ),
            )
        };
        let Some(r) = cr.to_str().ok().and_then(ChunkRange::parse) else {
            return Err(bad());
        };
        if r.start != s.size || cl.is_some_and(|l| l != r.len()) {
            return Err(bad());
        }
        Ok(Some(r.len()))
    }

    pub(super) async fn upload_patch<B>(
        &self,
        repo: &RepositoryName,
        id: &str,
        headers: &HeaderMap,
        body: B,
    ) -> Result<Response, ApiError>
    where
        B: HttpBody<Data = Bytes> + Send + Unpin,
        B::Error: std::fmt::Display,
    {
        let s = match self.session(repo, id).await {
            Ok(s) => s,
            Err(e) => {
                super::drain(body, 1 << 20).await;
                return Err(e);
            }
        };
        let mut s = s.lock().await;
        let expected = match Self::chunk_check(repo, id, &s, headers) {
            Ok(e) => e,
            Err(mut resp) => {
                if !super::drain(body, 1 << 20).await {
                    resp.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                return Ok(*resp);
            }
        };
        self.append(id, &mut s, body, expected).await?;
        Ok(Reply::new(StatusCode::ACCEPTED)
            .header(LOCATION, location(repo, id))
            .header(RANGE, range_value(s.size))
            .header("docker-upload-uuid", id)
            .empty())
    }

    pub(super) async fn upload_finish<B>(
        &self,
        repo: &RepositoryName,
        id: &str,
        query: &[(String, String)],
        headers: &HeaderMap,
        body: B,
    ) -> Result<Response, ApiError>
    where
        B: HttpBody<Data = Bytes> + Send + Unpin,
        B::Error: std::fmt::Display,
    {
        let pre = async {
            let s = self.session(repo, id).await?;
            let d = parse_digest(super::route::query_get(query, "digest").unwrap_or(""))?;
            Ok::<_, ApiError>((s, d))
        }
        .await;
        let (s, d) = match pre {
            Ok(v) => v,
            Err(e) => {
                super::drain(body, 1 << 20).await;
                return Err(e);
            }
        };
        let mut s = s.lock().await;
        let expected = match Self::chunk_check(repo, id, &s, headers) {
            Ok(e) => e,
            Err(mut resp) => {
                if !super::drain(body, 1 << 20).await {
                    resp.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                return Ok(*resp);
            }
        };
        self.append(id, &mut s, body, expected).await?;
        self.finish(repo, id, &mut s, &d).await?;
        Ok(Self::created(repo, &d))
    }

    pub(super) async fn upload_status(
        &self,
        repo: &RepositoryName,
        id: &str,
    ) -> Result<Response, ApiError> {
        let s = self.session(repo, id).await?;
        let s = s.lock().await;
        Ok(Reply::new(StatusCode::NO_CONTENT)
            .header(LOCATION, location(repo, id))
            .header(RANGE, range_value(s.size))
            .header("docker-upload-uuid", id)
            .empty())
    }

    pub(super) async fn upload_cancel(
        &self,
        repo: &RepositoryName,
        id: &str,
    ) -> Result<Response, ApiError> {
        let s = self.session(repo, id).await?;
        let _s = s.lock().await;
        self.uploads.remove(id);
        self.storage.upload_delete(id).await.map_err(internal)?;
        Ok(Reply::new(StatusCode::NO_CONTENT).empty())
    }
}
