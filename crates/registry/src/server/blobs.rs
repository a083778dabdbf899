//! `GET/HEAD/DELETE /v2/<name>/blobs/<digest>`.

use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use http::{HeaderMap, StatusCode};
use palisade_image::digest::Digest;

use super::body::{BlobStream, Body};
use super::response::{Reply, Response};
use super::Registry;
use crate::error::{internal, ApiError, ErrorCode};
use crate::name::RepositoryName;
use crate::range::{parse_range, ByteRange};
use crate::storage::{LinkKind, Storage, StorageError, Verification};

pub(crate) fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    Digest::parse(s).map_err(|e| ApiError::new(ErrorCode::DigestInvalid, e.to_string()))
}

pub(crate) fn blob_unknown(d: &Digest) -> ApiError {
    ApiError::new(
        ErrorCode::BlobUnknown,
        format!("blob {d} is not in this repository"),
    )
}

impl<S: Storage> Registry<S> {
    pub(super) async fn blob_get(
        &self,
        repo: &RepositoryName,
        digest: &str,
        head: bool,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        let d = parse_digest(digest)?;
        if !self
            .storage
            .linked(repo, LinkKind::Blob, &d)
            .await
            .map_err(internal)?
            && !self
                .storage
                .linked(repo, LinkKind::Manifest, &d)
                .await
                .map_err(internal)?
        {
            return Err(blob_unknown(&d));
        }
        let Some(size) = self.storage.blob_size(&d).await.map_err(internal)? else {
            return Err(blob_unknown(&d));
        };
        let range = headers
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| parse_range(r, size));
        let reply = Reply::new(StatusCode::OK)
            .header("docker-content-digest", d.to_string())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(ACCEPT_RANGES, "bytes")
            .header(http::header::ETAG, format!("\"{d}\""));
        let (status, start, len) = match range {
            Some(ByteRange::Unsatisfiable) => {
                return Ok(Reply::new(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(CONTENT_RANGE, format!("bytes */{size}"))
                    .empty())
            }
            Some(ByteRange::Satisfiable { start, end }) => {
                (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
            }
            None => (StatusCode::OK, 0, size),
        };
        let mut reply = reply.header(CONTENT_LENGTH, len.to_string());
        if status == StatusCode::PARTIAL_CONTENT {
            reply = reply.header(
                CONTENT_RANGE,
                format!("bytes {}-{}/{size}", start, start + len - 1),
            );
        }
        let mut resp = if head {
            reply.empty()
        } else {
            let whole = status == StatusCode::OK;
            let mut rehash = false;
            if whole {
                // a blob altered at rest is reported and quarantined, never served
                let verification = match self.storage.blob_verify(&d).await {
                    Ok(v) => v,
                    Err(StorageError::Corrupt(_)) => {
                        tracing::error!(repository = %repo, blob = %d, "blob failed verification on read; quarantined");
                        self.storage.blob_quarantine(&d).await.map_err(internal)?;
                        self.metrics
                            .quarantined
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return Err(ApiError::new(
                            ErrorCode::BlobUnknown,
                            format!("blob {d} failed verification on read and was quarantined; push it again"),
                        ));
                    }
                    Err(e) => return Err(internal(e)),
                };
                // just hashed: hash again on the way out, in case it changes meanwhile
                rehash = verification == Verification::Hashed;
            }
            let Some(reader) = self.storage.blob_open(&d, start).await.map_err(internal)? else {
                return Err(blob_unknown(&d));
            };
            self.metrics
                .bytes_sent
                .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
            let stream = BlobStream::new(reader, len, rehash.then(|| d.clone()));
            reply.body(Body::Stream(Box::new(stream)))
        };
        *resp.status_mut() = status;
        Ok(resp)
    }

    pub(super) async fn blob_delete(
        &self,
        repo: &RepositoryName,
        digest: &str,
    ) -> Result<Response, ApiError> {
        let d = parse_digest(digest)?;
        if !self
            .storage
            .unlink(repo, LinkKind::Blob, &d)
            .await
            .map_err(internal)?
        {
            return Err(blob_unknown(&d));
        }
        self.quota_forget(repo);
        Ok(Reply::new(StatusCode::ACCEPTED).empty())
    }
}
