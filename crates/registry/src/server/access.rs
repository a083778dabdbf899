//! The hook through which every request is authenticated and authorized before it is handled.

use std::net::IpAddr;

use http::HeaderMap;

use super::response::Response;
use crate::error::ApiError;
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

/// Who a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user, robot or `anonymous`.
    pub name: String,
}

impl Principal {
    /// The anonymous principal.
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
        }
    }
}

/// What the request carried, for the access decision.
#[derive(Debug)]
pub struct RequestMeta<'a> {
    /// Request headers (Authorization).
    pub headers: &'a HeaderMap,
    /// The client address.
    pub client: IpAddr,
}

/// Authentication and authorization for the HTTP layer.
pub trait Access: Send + Sync + 'static {
    /// Decides whether the request may do everything in `needs`: the principal, or a spec error
    /// (401 `UNAUTHORIZED` with a challenge in `challenge`, or 403 `DENIED`).
    fn check(&self, req: &RequestMeta<'_>, needs: &[Need]) -> Result<Principal, Denial>;

    /// Whether `principal` may do `op` on `repo` (used for a mount's source repository, and to
    /// filter the catalog).
    fn allowed(&self, principal: &Principal, repo: &RepositoryName, op: Op) -> bool;

    /// Answers `GET /token` (the Docker token service), `None` when this access layer has none.
    fn token(&self, _req: &RequestMeta<'_>, _query: &[(String, String)]) -> Option<Response> {
        None
    }
}

/// A refused request.
#[derive(Debug, Clone)]
pub struct Denial {
    /// The spec error.
    pub error: ApiError,
    /// The `WWW-Authenticate` value for a 401.
    pub challenge: Option<String>,
    /// Who was refused (for the audit trail), if known.
    pub principal: Option<String>,
}

/// Everyone may do everything: a registry without authentication (development, conformance).
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenAccess;

impl Access for OpenAccess {
    fn check(&self, _req: &RequestMeta<'_>, _needs: &[Need]) -> Result<Principal, Denial> {
        Ok(Principal::anonymous())
    }

    fn allowed(&self, _principal: &Principal, _repo: &RepositoryName, _op: Op) -> bool {
        true
    }
}
