//! `GET/HEAD/PUT/DELETE /v2/<name>/manifests/<reference>`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, StatusCode};
use http_body::Body as HttpBody;
use palisade_image::digest::Digest;

use super::access::Access;
use super::response::{Reply, Response};
use super::{content_length, read_limited, Registry};
use crate::auth::Principal;
use crate::error::{internal, ApiError, ErrorCode};
use crate::gate::{GateContext, GateVerdict};
use crate::manifest::Manifest;
use crate::name::{Reference, RepositoryName};
use crate::storage::{LinkKind, Storage};

/// A manifest read from storage and verified, kept because manifests are immutable by digest.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) bytes: Bytes,
    pub(crate) parsed: Manifest,
}

const CACHE_ENTRIES: usize = 4096;

/// Verified manifests by digest.
#[derive(Debug, Default)]
pub(super) struct Cache {
    map: Mutex<HashMap<Digest, Arc<Stored>>>,
}

impl Cache {
    fn get(&self, d: &Digest) -> Option<Arc<Stored>> {
        self.map.lock().ok()?.get(d).cloned()
    }

    fn put(&self, d: Digest, s: Arc<Stored>) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= CACHE_ENTRIES {
                m.clear();
            }
            m.insert(d, s);
        }
    }

    fn remove(&self, d: &Digest) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(d);
        }
    }
}

pub(crate) fn manifest_unknown(r: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::ManifestUnknown,
        format!("manifest {r} is not in this repository"),
    )
}

/// Parses a reference. A malformed digest is 400 `DIGEST_INVALID`; a malformed tag is 400
/// `MANIFEST_INVALID` when pushing and, when reading or deleting, 404 `MANIFEST_UNKNOWN` (no such
/// tag can exist; the conformance suite expects 404 there).
fn reference(s: &str, writing: bool) -> Result<Reference, ApiError> {
    Reference::parse(s).map_err(|e| match e {
        crate::name::ReferenceError::Digest(m) => ApiError::new(ErrorCode::DigestInvalid, m),
        crate::name::ReferenceError::Tag(t) if writing => {
            ApiError::new(ErrorCode::ManifestInvalid, t.to_string())
        }
        crate::name::ReferenceError::Tag(t) => {
            ApiError::new(ErrorCode::ManifestUnknown, t.to_string())
        }
    })
}

impl<S: Storage> Registry<S> {
    /// Resolves a reference to a manifest digest in `repo`.
    pub(crate) async fn resolve(
        &self,
        repo: &RepositoryName,
        r: &Reference,
    ) -> Result<Option<Digest>, ApiError> {
        let d = match r {
            Reference::Tag(t) => match self.storage.tag_get(repo, t).await.map_err(internal)? {
                Some(d) => d,
                None => return Ok(None),
            },
            Reference::Digest(d) => d.clone(),
        };
        Ok(self
            .storage
            .linked(repo, LinkKind::Manifest, &d)
            .await
            .map_err(internal)?
            .then_some(d))
    }

    /// Loads a stored manifest, verifying its bytes against the digest.
    pub(crate) async fn load_manifest(&self, d: &Digest) -> Result<Option<Arc<Stored>>, ApiError> {
        if let Some(s) = self.manifests.get(d) {
            return Ok(Some(s));
        }
        let Some(size) = self.storage.blob_size(d).await.map_err(internal)? else {
            return Ok(None);
        };
        if size > self.limits.max_manifest_bytes as u64 * 2 {
            return Err(internal(format!("stored manifest {d} is {size} bytes")));
        }
        let Some(mut r) = self.storage.blob_open(d, 0).await.map_err(internal)? else {
            return Ok(None);
        };
        let mut buf = Vec::with_capacity(size as usize);
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut buf)
            .await
            .map_err(internal)?;
        if !d.matches(&buf) {
            tracing::error!(manifest = %d, "stored manifest does not match its digest; quarantined");
            self.storage.blob_quarantine(d).await.map_err(internal)?;
            return Ok(None);
        }
        let parsed = Manifest::parse(&buf, None).map_err(internal)?;
        let s = Arc::new(Stored {
            bytes: Bytes::from(buf),
            parsed,
        });
        self.manifests.put(d.clone(), Arc::clone(&s));
        Ok(Some(s))
    }

    /// Runs the gates that apply to `repo` (on the blocking pool); a `Deny` is 403 `DENIED`.
    async fn check_gates(
        &self,
        repo: &RepositoryName,
        d: &Digest,
        m: &Arc<Stored>,
        who: &Principal,
    ) -> Result<(), ApiError> {
        let policy = self.gates();
        if !policy.applies(repo) {
            return Ok(());
        }
        // The gates protect consumers. A signed-in identity that may push to the repository
        // is its publisher: it reads back what it pushed (to sign it, for one) ungated. With
        // no authentication everyone is anonymous, so everyone stays gated.
        let publisher = !matches!(who.identity, crate::auth::Identity::Anonymous)
            && self.access().allowed(who, repo, super::access::Op::Push);
        if publisher {
            let mut fields = serde_json::Map::new();
            fields.insert("repository".into(), repo.as_str().into());
            fields.insert("digest".into(), d.to_string().into());
            fields.insert("decision".into(), "allow".into());
            fields.insert(
                "reason".into(),
                "publisher: may push to this repository".into(),
            );
            self.audit(palisade_audit::Event::Other {
                actor: who.identity.actor(),
                name: "registry_policy_verdict".into(),
                fields,
            });
            return Ok(());
        }
        let Some(view) = self.view.clone() else {
            return Err(ApiError::new(
                ErrorCode::Denied,
                "gated repository, but this registry has no content view for gates",
            ));
        };
        let (repo2, d2, m2) = (repo.clone(), d.clone(), Arc::clone(m));
        let verdict = tokio::task::spawn_blocking(move || {
            policy.evaluate(&GateContext {
                repository: &repo2,
                digest: &d2,
                media_type: &m2.parsed.media_type,
                manifest: &m2.bytes,
                view: &*view,
            })
        })
        .await
        .map_err(internal)?;
        let (decision, reason) = match &verdict {
            GateVerdict::Allow => ("allow", String::new()),
            GateVerdict::Deny { reason } => ("deny", reason.clone()),
        };
        let mut fields = serde_json::Map::new();
        fields.insert("repository".into(), repo.as_str().into());
        fields.insert("digest".into(), d.to_string().into());
        fields.insert("decision".into(), decision.into());
        fields.insert("reason".into(), reason.into());
        self.audit(palisade_audit::Event::Other {
            actor: who.identity.actor(),
            name: "registry_policy_verdict".into(),
            fields,
        });
        match verdict {
            GateVerdict::Allow => Ok(()),
            GateVerdict::Deny { reason } => {
                self.metrics
                    .gate_denials
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(target: "palisade_registry::audit", repository = %repo, manifest = %d, %reason, "pull denied by gate");
                Err(ApiError::new(
                    ErrorCode::Denied,
                    format!("pull of {repo}@{d} denied by policy: {reason}"),
                ))
            }
        }
    }

    pub(super) async fn manifest_get(
        &self,
        repo: &RepositoryName,
        reference_str: &str,
        head: bool,
        _headers: &HeaderMap,
        who: &Principal,
    ) -> Result<Response, ApiError> {
        let r = reference(reference_str, false)?;
        let Some(d) = self.resolve(repo, &r).await? else {
            return Err(manifest_unknown(&r));
        };
        let Some(m) = self.load_manifest(&d).await? else {
            return Err(manifest_unknown(&r));
        };
        self.check_gates(repo, &d, &m, who).await?;
        if !head {
            self.audit(palisade_audit::Event::ImagePulled {
                actor: who.identity.actor(),
                reference: format!("{repo}:{r}"),
                digest: d.to_string(),
            });
        }
        let reply = Reply::new(StatusCode::OK)
            .header(CONTENT_TYPE, &m.parsed.media_type)
            .header("docker-content-digest", d.to_string())
            .header(http::header::ETAG, format!("\"{d}\""));
        Ok(if head {
            reply
                .header(CONTENT_LENGTH, m.bytes.len().to_string())
                .empty()
        } else {
            reply.body(m.bytes.clone().into())
        })
    }

    pub(super) async fn manifest_put<B>(
        &self,
        repo: &RepositoryName,
        reference_str: &str,
        headers: &HeaderMap,
        body: B,
        access: &dyn Access,
        who: &Principal,
    ) -> Result<Response, ApiError>
    where
        B: HttpBody<Data = Bytes> + Send + Unpin,
        B::Error: std::fmt::Display,
    {
        let r = reference(reference_str, true)?;
        let bytes = read_limited(
            body,
            self.limits.max_manifest_bytes,
            content_length(headers),
        )
        .await
        .map_err(|e| {
            if e.code == ErrorCode::SizeInvalid && e.status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::with_status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::ManifestInvalid,
                    format!(
                        "manifest larger than the {}-byte limit",
                        self.limits.max_manifest_bytes
                    ),
                )
            } else {
                e
            }
        })?;
        let d = match &r {
            Reference::Digest(want) => {
                let got = Digest::of_with(want.algorithm(), &bytes);
                if &got != want {
                    return Err(ApiError::new(
                        ErrorCode::DigestInvalid,
                        format!("manifest has digest {got}, not {want}"),
                    ));
                }
                got
            }
            Reference::Tag(_) => Digest::of(&bytes),
        };
        let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let parsed = Manifest::parse(&bytes, ct)
            .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, e.to_string()))?;
        let _gc = self.gc_lock.read().await;
        for b in &parsed.blobs {
            if !self
                .storage
                .linked(repo, LinkKind::Blob, b)
                .await
                .map_err(internal)?
                || self.storage.blob_size(b).await.map_err(internal)?.is_none()
            {
                return Err(ApiError::new(ErrorCode::ManifestBlobUnknown, format!("manifest references blob {b}, which is not in this repository: push it first")));
            }
        }
        for m in &parsed.manifests {
            if !self
                .storage
                .linked(repo, LinkKind::Manifest, m)
                .await
                .map_err(internal)?
            {
                return Err(ApiError::new(ErrorCode::ManifestBlobUnknown, format!("index references manifest {m}, which is not in this repository: push it first")));
            }
        }
        if let Reference::Tag(t) = &r {
            let old = self.storage.tag_get(repo, t).await.map_err(internal)?;
            if old.is_some_and(|o| o != d) {
                access.may_change_tag(who, repo, t.as_str())?;
            }
        }
        let already = self
            .storage
            .linked(repo, LinkKind::Manifest, &d)
            .await
            .map_err(internal)?;
        if !already {
            self.quota_check(repo, bytes.len() as u64).await?;
        }
        self.storage.blob_put(&d, &bytes).await.map_err(internal)?;
        self.storage
            .link(repo, LinkKind::Manifest, &d)
            .await
            .map_err(internal)?;
        if !already {
            self.quota_add(repo, &d, bytes.len() as u64);
        }
        if let Some(subject) = &parsed.subject {
            self.storage
                .referrer_add(repo, subject, &d)
                .await
                .map_err(internal)?;
        }
        if let Reference::Tag(t) = &r {
            self.storage.tag_set(repo, t, &d).await.map_err(internal)?;
        }
        tracing::info!(target: "palisade_registry::audit", repository = %repo, manifest = %d, reference = %r, "manifest pushed");
        self.audit(palisade_audit::Event::ImagePushed {
            actor: who.identity.actor(),
            reference: format!("{repo}:{r}"),
            digest: d.to_string(),
        });
        if let Some(q) = self.scans.get() {
            q.enqueue(repo.clone(), d.clone());
        }
        // A new manifest may be a signature (tag or referrer) changing another one's verdict.
        self.gates().invalidate();
        let subject = parsed.subject.clone();
        self.manifests.put(
            d.clone(),
            Arc::new(Stored {
                bytes: Bytes::from(bytes),
                parsed,
            }),
        );
        let mut reply = Reply::new(StatusCode::CREATED)
            .header(LOCATION, format!("/v2/{repo}/manifests/{d}"))
            .header("docker-content-digest", d.to_string());
        if let Some(s) = subject {
            reply = reply.header("oci-subject", s.to_string());
        }
        Ok(reply.empty())
    }

    pub(super) async fn manifest_delete(
        &self,
        repo: &RepositoryName,
        reference_str: &str,
        access: &dyn Access,
        who: &Principal,
    ) -> Result<Response, ApiError> {
        let r = reference(reference_str, false)?;
        match &r {
            Reference::Tag(t) => {
                if self
                    .storage
                    .tag_get(repo, t)
                    .await
                    .map_err(internal)?
                    .is_none()
                {
                    return Err(manifest_unknown(&r));
                }
                access.may_change_tag(who, repo, t.as_str())?;
                if !self.storage.tag_delete(repo, t).await.map_err(internal)? {
                    return Err(manifest_unknown(&r));
                }
            }
            Reference::Digest(d) => {
                if !self
                    .storage
                    .linked(repo, LinkKind::Manifest, d)
                    .await
                    .map_err(internal)?
                {
                    return Err(manifest_unknown(&r));
                }
                let subject = self
                    .load_manifest(d)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|m| m.parsed.subject.clone());
                let tags = self.storage.tags(repo).await.map_err(internal)?;
                for (tag, target) in &tags {
                    if target == d {
                        access.may_change_tag(who, repo, tag)?;
                    }
                }
                for (tag, target) in tags {
                    if &target == d {
                        if let Ok(t) = crate::name::Tag::parse(&tag) {
                            self.storage.tag_delete(repo, &t).await.map_err(internal)?;
                        }
                    }
                }
                if let Some(s) = subject {
                    self.storage
                        .referrer_remove(repo, &s, d)
                        .await
                        .map_err(internal)?;
                }
                self.storage
                    .unlink(repo, LinkKind::Manifest, d)
                    .await
                    .map_err(internal)?;
                self.manifests.remove(d);
                self.quota_forget(repo);
            }
        }
        tracing::info!(target: "palisade_registry::audit", repository = %repo, reference = %r, "manifest deleted");
        let mut fields = serde_json::Map::new();
        fields.insert("repository".into(), repo.as_str().into());
        fields.insert("reference".into(), r.to_string().into());
        self.audit(palisade_audit::Event::Other {
            actor: who.identity.actor(),
            name: "registry_manifest_deleted".into(),
            fields,
        });
        Ok(Reply::new(StatusCode::ACCEPTED).empty())
    }
}
