//! The hook through which every request is authenticated and authorized before it is handled:
//! [`Access`], with [`OpenAccess`] (no authentication) and [`AuthAccess`] (the [`crate::auth`]
//! library: Basic, Bearer tokens, robots, per-repository rules, immutable tags).

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, StatusCode};

use super::response::{Reply, Response};
use crate::audit::AuditSink;
use crate::auth::{Action, ActionSet, AuthContext, Principal, Scope, TokenRequest};
use crate::error::{ApiError, ErrorCode};
use crate::name::RepositoryName;

/// What a request needs to be allowed to do on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Read manifests, blobs, tags, referrers.
    Pull,
    /// Write blobs, manifests, tags.
    Push,
    /// Delete manifests, tags, blobs.
    Delete,
    /// Administer (delete the whole repository).
    Admin,
}

impl Op {
    fn action(self) -> Action {
        match self {
            Op::Pull => Action::Pull,
            Op::Push => Action::Push,
            Op::Delete => Action::Delete,
            Op::Admin => Action::Admin,
        }
    }
}

/// One permission a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// An authenticated (or permitted anonymous) client: `GET /v2/`.
    Login,
    /// The registry catalog.
    Catalog,
    /// An operation on a repository.
    Repo(RepositoryName, Op),
}

/// What the request carried, for the access decision.
#[derive(Debug)]
pub struct RequestMeta<'a> {
    /// Request headers (Authorization).
    pub headers: &'a HeaderMap,
    /// The client address.
    pub client: IpAddr,
}

impl RequestMeta<'_> {
    fn authorization(&self) -> Option<&str> {
        self.headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
    }
}

/// Authentication and authorization for the HTTP layer.
pub trait Access: Send + Sync + 'static {
    /// Decides whether the request may do everything in `needs`: the principal, or the spec
    /// error (401 `UNAUTHORIZED` with a challenge, 403 `DENIED`, 429 `TOOMANYREQUESTS`).
    fn check(&self, req: &RequestMeta<'_>, needs: &[Need]) -> Result<Principal, ApiError>;

    /// Whether `principal` may do `op` on `repo` (a mount's source repository, the catalog).
    fn allowed(&self, principal: &Principal, repo: &RepositoryName, op: Op) -> bool;

    /// Whether an existing tag may be moved or deleted (immutable tags).
    fn may_change_tag(
        &self,
        _principal: &Principal,
        _repo: &RepositoryName,
        _tag: &str,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// Answers `/token` (the Docker token service): `pairs` are the query (GET) or form (POST)
    /// pairs. `None` when there is no token service.
    fn token(
        &self,
        _req: &RequestMeta<'_>,
        _post: bool,
        _pairs: &[(String, String)],
    ) -> Option<Response> {
        None
    }
}

/// Everyone may do everything: a registry without authentication (development, conformance).
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenAccess;

impl Access for OpenAccess {
    fn check(&self, _req: &RequestMeta<'_>, _needs: &[Need]) -> Result<Principal, ApiError> {
        Ok(Principal::anonymous())
    }

    fn allowed(&self, _principal: &Principal, _repo: &RepositoryName, _op: Op) -> bool {
        true
    }
}

/// Access through the auth library's [`AuthContext`] (swap the whole `AuthAccess` on reload).
#[derive(Debug, Clone)]
pub struct AuthAccess {
    ctx: Arc<AuthContext>,
    audit: Option<AuditSink>,
}

impl AuthAccess {
    /// Wraps a loaded auth context.
    pub fn new(ctx: Arc<AuthContext>) -> Self {
        Self { ctx, audit: None }
    }

    /// Records denials and logins in `sink`.
    pub fn with_audit(mut self, sink: Option<AuditSink>) -> Self {
        self.audit = sink;
        self
    }

    fn record(&self, ev: palisade_audit::Event) {
        if let Some(a) = &self.audit {
            a.record(ev);
        }
    }

    fn login_event(&self, subject: Option<&str>, client: IpAddr, ok: bool, detail: &str) {
        let mut fields = serde_json::Map::new();
        fields.insert("remote_addr".into(), client.to_string().into());
        fields.insert(
            "outcome".into(),
            if ok { "success" } else { "failure" }.into(),
        );
        fields.insert("detail".into(), detail.into());
        self.record(palisade_audit::Event::Other {
            actor: subject.map(palisade_audit::Actor::user).unwrap_or_default(),
            name: "registry_login".into(),
            fields,
        });
    }

    fn scope_of(need: &Need) -> Option<Scope> {
        match need {
            Need::Login => None,
            Need::Catalog => Some(Scope::catalog()),
            Need::Repo(r, op) => Some(Scope::repository(r.as_str(), ActionSet::of(op.action()))),
        }
    }

    fn denial_error(&self, d: &crate::auth::Denial, client: IpAddr) -> ApiError {
        audit_denial(d, client);
        self.record(d.audit_event(client));
        if d.challenge {
            let mut e = ApiError::new(
                ErrorCode::Unauthorized,
                format!("authentication required: {d}"),
            );
            e.challenge = Some(self.ctx.challenge_for_denial(d));
            e
        } else {
            ApiError::new(ErrorCode::Denied, d.to_string())
        }
    }
}

fn audit_denial(d: &crate::auth::Denial, client: IpAddr) {
    tracing::warn!(
        target: "palisade_registry::audit",
        client = %client,
        subject = d.subject.as_deref().unwrap_or("anonymous"),
        repository = d.repository.as_deref().unwrap_or(""),
        reason = %d.reason,
        "request denied"
    );
}

impl Access for AuthAccess {
    fn check(&self, req: &RequestMeta<'_>, needs: &[Need]) -> Result<Principal, ApiError> {
        let principal = match self.ctx.authenticate(req.authorization(), req.client) {
            Ok(p) => p,
            Err(e) if e.is_rate_limited() => {
                return Err(ApiError::new(ErrorCode::TooManyRequests, e.to_string()));
            }
            Err(e) => {
                tracing::warn!(target: "palisade_registry::audit", client = %req.client,
                    user = e.username().unwrap_or(""), error = %e, "login failed");
                self.login_event(e.username(), req.client, false, &e.to_string());
                let scope = needs.iter().find_map(Self::scope_of);
                let mut err = ApiError::new(
                    ErrorCode::Unauthorized,
                    "authentication failed: check the user name and password or token",
                );
                err.challenge = Some(self.ctx.challenge_for_error(&e, scope.as_ref()));
                return Err(err);
            }
        };
        for need in needs {
            match need {
                Need::Login => {
                    if principal.identity.is_anonymous() {
                        let mut e =
                            ApiError::new(ErrorCode::Unauthorized, "authentication required");
                        e.challenge = Some(self.ctx.challenge(&[], None));
                        return Err(e);
                    }
                }
                Need::Catalog => {
                    self.ctx
                        .authorizer()
                        .may_list_catalog(&principal)
                        .map_err(|d| self.denial_error(&d, req.client))?;
                }
                Need::Repo(r, op) => {
                    self.ctx
                        .authorize(&principal, r.as_str(), op.action())
                        .map_err(|d| self.denial_error(&d, req.client))?;
                }
            }
        }
        Ok(principal)
    }

    fn allowed(&self, principal: &Principal, repo: &RepositoryName, op: Op) -> bool {
        match op {
            Op::Pull if principal.token_access.is_none() => {
                self.ctx
                    .authorizer()
                    .may_see_repository(principal, repo.as_str())
                    && self
                        .ctx
                        .authorize(principal, repo.as_str(), Action::Pull)
                        .is_ok()
            }
            _ => self
                .ctx
                .authorize(principal, repo.as_str(), op.action())
                .is_ok(),
        }
    }

    fn may_change_tag(
        &self,
        principal: &Principal,
        repo: &RepositoryName,
        tag: &str,
    ) -> Result<(), ApiError> {
        self.ctx
            .authorizer()
            .may_overwrite_tag(principal, repo.as_str(), tag)
            .map_err(|d| {
                audit_denial(&d, IpAddr::from([0, 0, 0, 0]));
                ApiError::new(ErrorCode::Denied, d.to_string())
            })
    }

    fn token(
        &self,
        req: &RequestMeta<'_>,
        post: bool,
        pairs: &[(String, String)],
    ) -> Option<Response> {
        if !self.ctx.token_service_enabled() {
            return None;
        }
        let request = if post {
            TokenRequest::from_form(pairs)
        } else {
            TokenRequest::from_get(pairs, req.authorization())
        };
        let result = request.and_then(|r| self.ctx.issue_token(&r, req.client));
        Some(match result {
            Ok(grant) => {
                tracing::info!(target: "palisade_registry::audit", client = %req.client,
                    subject = grant.subject.as_deref().unwrap_or("anonymous"), "token issued");
                self.login_event(grant.subject.as_deref(), req.client, true, "token issued");
                Reply::new(StatusCode::OK)
                    .header(http::header::CACHE_CONTROL, "no-store")
                    .json(&serde_json::to_value(&grant.response).unwrap_or_default())
            }
            Err(e) => {
                tracing::warn!(target: "palisade_registry::audit", client = %req.client, error = %e, "token refused");
                self.login_event(None, req.client, false, &e.to_string());
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                let mut r = Reply::new(status);
                if status == StatusCode::UNAUTHORIZED {
                    r = r.header(
                        http::header::WWW_AUTHENTICATE,
                        format!("Basic realm=\"{}\"", "palisade"),
                    );
                }
                r.json(&serde_json::json!({ "error": e.oauth_error(), "error_description": e.to_string() }))
            }
        })
    }
}
