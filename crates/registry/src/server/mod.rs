//! The HTTP side of the registry: the distribution API over a [`Storage`].
//!
//! [`Registry::handle`] is one request in, one response out; [`serve`] runs it over TCP (and TLS)
//! with hyper.

pub mod access;
mod blobs;
pub mod body;
mod gc;
pub use gc::GcReport;
mod listing;
mod manifests;
mod quota;
pub mod response;
pub mod route;
mod uploads;

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;

use self::access::{Access, Need, Op, OpenAccess, RequestMeta};
use self::response::{error_response, Reply, Response};
use self::route::Route;
use crate::audit::AuditSink;
use crate::auth::Principal;
use crate::error::{internal, ApiError, ErrorCode};
use crate::gate::{GatePolicy, RegistryView};
use crate::manifest::DEFAULT_MAX_MANIFEST_BYTES;
use crate::metrics::Metrics;
use crate::name::RepositoryName;
use crate::scan::ScanQueue;
use crate::storage::Storage;

/// Limits the server enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest manifest accepted.
    pub max_manifest_bytes: usize,
    /// The most entries a tags or catalog page returns.
    pub max_page: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
            max_page: 10_000,
        }
    }
}

/// A registry: storage, the access layer and the upload sessions in flight.
pub struct Registry<S: Storage> {
    storage: S,
    access: RwLock<Arc<dyn Access>>,
    limits: Limits,
    uploads: uploads::Sessions,
    manifests: manifests::Cache,
    gates: RwLock<Arc<GatePolicy>>,
    view: Option<Arc<dyn RegistryView>>,
    scans: std::sync::OnceLock<ScanQueue>,
    quotas: quota::Quotas,
    gc_lock: tokio::sync::RwLock<()>,
    metrics: Arc<Metrics>,
    metrics_enabled: bool,
    audit: Option<AuditSink>,
}

impl<S: Storage> std::fmt::Debug for Registry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A request body the handlers can read.
pub trait ReqBody: HttpBody<Data = Bytes> + Send + Unpin + 'static {}
impl<B> ReqBody for B
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
}

impl<S: Storage> Registry<S> {
    /// A registry over `storage` with open access (see [`Registry::set_access`]).
    pub fn new(storage: S, limits: Limits) -> Self {
        Self {
            storage,
            access: RwLock::new(Arc::new(OpenAccess)),
            limits,
            uploads: uploads::Sessions::default(),
            manifests: manifests::Cache::default(),
            gates: RwLock::new(Arc::new(GatePolicy::default())),
            view: None,
            scans: std::sync::OnceLock::new(),
            quotas: quota::Quotas::default(),
            gc_lock: tokio::sync::RwLock::new(()),
            metrics: Arc::new(Metrics::default()),
            metrics_enabled: false,
            audit: None,
        }
    }

    /// Sets the read-only view gates see (required for gates to run: without one, a gated
    /// repository refuses every pull).
    pub fn with_view(mut self, view: Arc<dyn RegistryView>) -> Self {
        self.view = Some(view);
        self
    }

    /// Serves `GET /metrics` (unauthenticated, like most exporters: bind accordingly).
    pub fn with_metrics(mut self, enabled: bool) -> Self {
        self.metrics_enabled = enabled;
        self
    }

    /// Writes audit events to `sink`.
    pub fn with_audit(mut self, sink: AuditSink) -> Self {
        self.audit = Some(sink);
        self
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub(crate) fn audit(&self, event: palisade_audit::Event) {
        if let Some(a) = &self.audit {
            a.record(event);
        }
    }

    /// Scans every pushed manifest with `queue`.
    pub fn with_scan_queue(self, queue: ScanQueue) -> Self {
        self.set_scan_queue(queue);
        self
    }

    /// Sets the scan queue once the registry is shared (the queue's callback may need it); a
    /// second call is ignored.
    pub fn set_scan_queue(&self, queue: ScanQueue) {
        let _ = self.scans.set(queue);
    }

    /// Queues every manifest of every repository for a rescan (the advisory database changed);
    /// returns how many were queued, 0 without a scan queue.
    pub async fn rescan_all(&self) -> crate::storage::StorageResult<usize> {
        let Some(queue) = self.scans.get() else {
            return Ok(0);
        };
        let mut queued = 0;
        for name in self.storage.repositories().await? {
            let Ok(repo) = RepositoryName::parse(&name) else {
                continue;
            };
            let manifests = self
                .storage
                .links(&repo, crate::storage::LinkKind::Manifest)
                .await?;
            for d in manifests {
                queue.enqueue(repo.clone(), d);
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Replaces the gate policy (at start, and on reload).
    pub fn set_gates(&self, gates: Arc<GatePolicy>) {
        if let Ok(mut g) = self.gates.write() {
            *g = gates;
        }
    }

    pub(crate) fn gates(&self) -> Arc<GatePolicy> {
        match self.gates.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Replaces the access layer (at start, and on reload).
    pub fn set_access(&self, access: Arc<dyn Access>) {
        if let Ok(mut a) = self.access.write() {
            *a = access;
        }
    }

    fn access(&self) -> Arc<dyn Access> {
        match self.access.read() {
            Ok(a) => Arc::clone(&a),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Handles one request.
    pub async fn handle<B>(&self, req: Request<B>, client: IpAddr) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let started = std::time::Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let route = route::route(&path);
        let (parts, body) = req.into_parts();
        let mut body = Some(body);
        let mut resp = match self.dispatch(route, parts, &mut body, client).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
        if let Some(unread) = body {
            // answered without reading the body (refused early): read a little of it so the
            // connection stays usable, else tell the client the connection closes
            if !drain(unread, 1 << 20).await {
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
        }
        let micros = started.elapsed().as_micros() as u64;
        self.metrics
            .request(&method, resp.status().as_u16(), micros);
        tracing::info!(
            target: "palisade_registry::access",
            client = %client, method = %method, path = %path,
            status = resp.status().as_u16(), micros,
        );
        resp
    }

    async fn dispatch<B>(
        &self,
        route: Route,
        parts: http::request::Parts,
        body_slot: &mut Option<B>,
        client: IpAddr,
    ) -> Result<Response, ApiError>
    where
        B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let mut body = || {
            body_slot
                .take()
                .ok_or_else(|| internal("request body taken twice"))
        };
        let query = route::query_pairs(parts.uri.query());
        let meta = RequestMeta {
            headers: &parts.headers,
            client,
        };
        let m = &parts.method;
        let access = self.access();
        let repo = |name: &str| {
            RepositoryName::parse(name)
                .map_err(|e| ApiError::new(ErrorCode::NameInvalid, e.to_string()))
        };
        let check = |needs: &[Need]| -> Result<Principal, ApiError> { access.check(&meta, needs) };
        let unsupported = || {
            ApiError::with_status(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::Unsupported,
                "method not allowed here",
            )
        };
        match route {
            Route::Base => {
                if m != Method::GET && m != Method::HEAD {
                    return Err(unsupported());
                }
                check(&[Need::Login])?;
                Ok(Reply::new(StatusCode::OK)
                    .header("docker-distribution-api-version", "registry/2.0")
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Bytes::from_static(b"{}").into()))
            }
            Route::Token => {
                let post = m == Method::POST;
                let pairs = if post {
                    let form =
                        read_limited(body()?, 64 * 1024, content_length(&parts.headers)).await?;
                    route::query_pairs(Some(&String::from_utf8_lossy(&form)))
                } else {
                    query
                };
                match access.token(&meta, post, &pairs) {
                    Some(r) => Ok(r),
                    None => Err(ApiError::new(
                        ErrorCode::Unsupported,
                        "this registry has no token service",
                    )
                    .with(StatusCode::NOT_FOUND)),
                }
            }
            Route::Metrics if self.metrics_enabled && m == Method::GET => {
                Ok(Reply::new(StatusCode::OK)
                    .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
                    .body(self.metrics.render().into_bytes().into()))
            }
            Route::Metrics => Err(
                ApiError::new(ErrorCode::Unsupported, "metrics are not enabled")
                    .with(StatusCode::NOT_FOUND),
            ),
            Route::Catalog => {
                if m != Method::GET {
                    return Err(unsupported());
                }
                let who = check(&[Need::Catalog])?;
                self.catalog(&query, &*access, &who).await
            }
            Route::Tags { name } => {
                let name = repo(&name)?;
                if m != Method::GET {
                    return Err(unsupported());
                }
                check(&[Need::Repo(name.clone(), Op::Pull)])?;
                self.tags_list(&name, &query).await
            }
            Route::Referrers { name, digest } => {
                let name = repo(&name)?;
                if m != Method::GET {
                    return Err(unsupported());
                }
                check(&[Need::Repo(name.clone(), Op::Pull)])?;
                self.referrers(&name, &digest, &query).await
            }
            Route::Manifest { name, reference } => {
                let name = repo(&name)?;
                match *m {
                    Method::GET | Method::HEAD => {
                        let who = check(&[Need::Repo(name.clone(), Op::Pull)])?;
                        self.manifest_get(
                            &name,
                            &reference,
                            m == Method::HEAD,
                            &parts.headers,
                            &who,
                        )
                        .await
                    }
                    Method::PUT => {
                        let who = check(&[Need::Repo(name.clone(), Op::Push)])?;
                        self.manifest_put(
                            &name,
                            &reference,
                            &parts.headers,
                            body()?,
                            &*access,
                            &who,
                        )
                        .await
                    }
                    Method::DELETE => {
                        let who = check(&[Need::Repo(name.clone(), Op::Delete)])?;
                        self.manifest_delete(&name, &reference, &*access, &who)
                            .await
                    }
                    _ => Err(unsupported()),
                }
            }
            Route::Blob { name, digest } => {
                let name = repo(&name)?;
                match *m {
                    Method::GET | Method::HEAD => {
                        check(&[Need::Repo(name.clone(), Op::Pull)])?;
                        self.blob_get(&name, &digest, m == Method::HEAD, &parts.headers)
                            .await
                    }
                    Method::DELETE => {
                        check(&[Need::Repo(name.clone(), Op::Delete)])?;
                        self.blob_delete(&name, &digest).await
                    }
                    _ => Err(unsupported()),
                }
            }
            Route::UploadStart { name } => {
                let name = repo(&name)?;
                if m != Method::POST {
                    return Err(unsupported());
                }
                let who = check(&[Need::Repo(name.clone(), Op::Push)])?;
                self.upload_start(&name, &query, &parts.headers, body()?, &*access, &who)
                    .await
            }
            Route::Upload { name, id } => {
                let name = repo(&name)?;
                check(&[Need::Repo(name.clone(), Op::Push)])?;
                match *m {
                    Method::GET => self.upload_status(&name, &id).await,
                    Method::PATCH => self.upload_patch(&name, &id, &parts.headers, body()?).await,
                    Method::PUT => {
                        self.upload_finish(&name, &id, &query, &parts.headers, body()?)
                            .await
                    }
                    Method::DELETE => self.upload_cancel(&name, &id).await,
                    _ => Err(unsupported()),
                }
            }
            Route::Repository { name } => {
                let name = repo(&name)?;
                if m != Method::DELETE {
                    return Err(unsupported());
                }
                check(&[Need::Repo(name.clone(), Op::Admin)])?;
                if self.delete_repository(&name).await? {
                    Ok(Reply::new(StatusCode::ACCEPTED).empty())
                } else {
                    Err(ApiError::new(
                        ErrorCode::NameUnknown,
                        format!("repository {name} is not known"),
                    ))
                }
            }
            Route::Unknown => Err(ApiError::with_status(
                StatusCode::NOT_FOUND,
                ErrorCode::NameUnknown,
                "no such API endpoint",
            )),
        }
    }
}

/// Reads and discards up to `limit` bytes of a body; whether it ended within that.
pub(crate) async fn drain<B>(mut body: B, limit: u64) -> bool
where
    B: HttpBody<Data = Bytes> + Send + Unpin,
{
    if body.is_end_stream() {
        return true;
    }
    let mut n = 0u64;
    let read = async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(d) = frame.into_data() {
                n += d.len() as u64;
                if n > limit {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .unwrap_or(false)
}

/// Reads a whole (small) body, refusing more than `limit` bytes.
pub(crate) async fn read_limited<B>(
    mut body: B,
    limit: usize,
    declared: Option<u64>,
) -> Result<Vec<u8>, ApiError>
where
    B: HttpBody<Data = Bytes> + Send + Unpin,
    B::Error: std::fmt::Display,
{
    let too_big = || {
        ApiError::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::SizeInvalid,
            format!("body larger than the {limit}-byte limit"),
        )
    };
    if declared.is_some_and(|d| d > limit as u64) {
        return Err(too_big());
    }
    let mut out = Vec::with_capacity(declared.map_or(4096, |d| d as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                ErrorCode::SizeInvalid,
                format!("reading the request body failed: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(too_big());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// The request's `Content-Length`, if present and valid.
pub(crate) fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
