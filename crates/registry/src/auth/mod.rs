//! Authentication and authorization for the registry: a pure library (no HTTP types). The
//! server hands in header values and client addresses and turns the results into responses.
//!
//! # Pieces
//!
//! - [`AuthConfig`] — the `[auth]` section of the server's TOML (`deny_unknown_fields`),
//!   validated with errors that name the field ([`config`] documents every key).
//! - [`AuthState`] — process-lifetime parts: failed-login rate limiter, refresh tokens.
//! - [`AuthContext`] — one configuration generation: [`Authenticator`] (users from the
//!   [`UserDb`], robots, credential cache, bearer verification) + [`Authorizer`] (roles,
//!   repository globs, anonymous access, immutable tags, catalog) + the token service.
//!   Immutable: on SIGHUP build a new one with [`AuthContext::load`] and swap the `Arc`; if
//!   loading fails, keep the old one.
//! - [`UserDb`] — the user database file the CLI edits: `UserDb::update(path, HashCost::DEFAULT,
//!   |db| db.add_user(..))` (load, change, save atomically under a lock) with `add_user`,
//!   `remove_user`, `set_password`, `set_roles`, `set_disabled`, `add_robot` (returns the
//!   robot's secret, shown once), `remove_robot`.
//!
//! # Per request
//!
//! ```no_run
//! use std::net::IpAddr;
//! use std::sync::Arc;
//! use palisade_registry::auth::{Action, AuthConfig, AuthContext, AuthState, Scope, ActionSet};
//!
//! # fn demo(config: &AuthConfig, authorization: Option<&str>, peer: IpAddr) -> Result<(), Box<dyn std::error::Error>> {
//! // At start (and on SIGHUP: build a new context, swap the Arc, keep `state`):
//! let state = AuthState::new(config)?;
//! let auth: Arc<AuthContext> = Arc::new(AuthContext::load(config, &state)?);
//!
//! // For `PUT /v2/team-a/app/manifests/v1`:
//! let (repository, action) = ("team-a/app", Action::Push);
//! let principal = match auth.authenticate(authorization, peer) {
//!     Ok(principal) => principal,
//!     Err(e) if e.is_rate_limited() => { /* 429 TOO_MANY_REQUESTS, Retry-After */ return Ok(()) }
//!     Err(e) => {
//!         let scope = Scope::repository(repository, ActionSet::of(action));
//!         let _www_authenticate = auth.challenge_for_error(&e, Some(&scope));
//!         /* 401 UNAUTHORIZED with that header; audit the failed login */
//!         return Ok(());
//!     }
//! };
//! match auth.authorize(&principal, repository, action) {
//!     Ok(()) => { /* serve; if the tag exists and moves: auth.authorizer().may_overwrite_tag(..) */ }
//!     Err(denial) if denial.challenge => {
//!         let _www_authenticate = auth.challenge_for_denial(&denial); // 401
//!         let _event = denial.audit_event(peer);
//!     }
//!     Err(denial) => {
//!         let _event = denial.audit_event(peer); // 403 DENIED, message: denial.reason
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The token endpoint: parse with [`TokenRequest::from_get`] (query pairs + `Authorization`)
//! or [`TokenRequest::from_form`] (POST form pairs), call [`AuthContext::issue_token`], send
//! [`TokenGrant::response`] as JSON (with `Cache-Control: no-store`) and record
//! [`TokenGrant::audit_event`]; on error answer [`TokenEndpointError::status`] with
//! `{"error": oauth_error(), "error_description": Display}` (a 401 carries
//! [`AuthContext::basic_challenge`]) and log [`TokenEndpointError::detail`].
//!
//! # Security properties (each has tests)
//!
//! - Deny by default; repository names outside the OCI grammar are refused before any rule
//!   (`team-a/../team-b`, `Team-A/x`, `a//b`); globs are segment-wise ([`glob`]).
//! - Tokens never carry more than requested ∩ policy; a bearer principal gets token ∩ current
//!   policy, so revocations and role changes apply before expiry.
//! - JWT verification pins the algorithm (no `none`, no HS256 confusion), checks `kid`,
//!   `iss`, `aud`, `exp`/`nbf`/`iat` with 10 s leeway.
//! - Passwords: argon2id (PHC), zeroized, never logged; unknown users cost a decoy hash;
//!   failed logins are rate-limited per client (IPv6 per /64) and concurrent hashes are
//!   capped globally. Client-facing errors (`Display`) never say whether an account exists;
//!   [`AuthError::detail`] has the reason for logs and [`AuthError::audit_event`] for the
//!   audit log.
//! - Secrets at rest (robot tokens, refresh tokens) are stored as SHA-256 digests only.

pub mod action;
pub mod authenticate;
pub mod authorize;
pub mod cache;
pub mod challenge;
pub mod clock;
pub mod config;
pub mod context;
pub mod glob;
pub mod header;
pub mod identity;
pub mod keys;
pub mod name;
pub mod password;
mod random;
pub mod rate_limit;
pub mod refresh;
pub mod rule;
pub mod scope;
pub mod token;
pub mod token_endpoint;
pub mod users;

#[cfg(test)]
mod tests;

pub use action::{Action, ActionSet, UnknownActionError};
pub use authenticate::{AuthError, Authenticator, LoginFailure};
pub use authorize::Authorizer;
pub use challenge::BearerChallengeError;
pub use config::{AuthConfig, AuthConfigError, CatalogAccess, TokenAlgorithm};
pub use context::{AuthContext, AuthSetupError, AuthState};
pub use glob::{GlobError, RepositoryGlob, TagPattern};
pub use identity::{AuthMethod, Denial, DenialReason, Identity, Principal, ROBOT_PREFIX};
pub use keys::{KeyError, SigningKey};
pub use name::is_valid_repository_name;
pub use password::{HashCost, Password, PasswordError};
pub use rate_limit::RetryAfter;
pub use rule::{Rule, RuleSpec};
pub use scope::{Resource, Scope};
pub use token::TokenError;
pub use token_endpoint::{
    TokenCredentials, TokenEndpointError, TokenGrant, TokenRequest, TokenResponse,
};
pub use users::{UserDb, UserDbError, UserRecord};
