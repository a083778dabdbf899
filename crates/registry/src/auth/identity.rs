//! Who a request comes from, how they proved it, and audit-friendly outcomes.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use palisade_audit::{Actor, Event};

use super::action::Action;
use super::rule::Rules;
use super::scope::Scope;

/// The prefix of robot account names: a robot called `ci` logs in as `robot$ci`.
pub const ROBOT_PREFIX: &str = "robot$";

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Nobody proved anything.
    Anonymous,
    /// A user from the user database, with the role names it had when it authenticated.
    User {
        /// User name.
        name: String,
        /// Role names (validated against the policy when the user database was loaded).
        roles: Arc<[String]>,
    },
    /// A robot account (CI): its own rules, nothing else.
    Robot {
        /// The robot's name without the `robot$` prefix.
        name: String,
        /// What the robot token allows.
        rules: Rules,
    },
}

impl Identity {
    /// The name to show and audit: the user name, `robot$<name>`, or `None` for anonymous.
    pub fn subject(&self) -> Option<String> {
        match self {
            Identity::Anonymous => None,
            Identity::User { name, .. } => Some(name.clone()),
            Identity::Robot { name, .. } => Some(format!("{ROBOT_PREFIX}{name}")),
        }
    }

    /// Whether this is the anonymous identity.
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Identity::Anonymous)
    }

    /// The audit actor for this identity.
    pub fn actor(&self) -> Actor {
        match self.subject() {
            Some(subject) => Actor::user(subject),
            None => Actor::default(),
        }
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// No credentials.
    Anonymous,
    /// `Authorization: Basic` with a user password (argon2 verified or cached).
    Password,
    /// `Authorization: Basic` with a robot token as password.
    RobotToken,
    /// `Authorization: Bearer` with a token from our token service.
    Bearer,
}

/// An authenticated request: the identity, how it was proved, and — for bearer tokens — the
/// access the token carries. Authorization intersects that access with the current policy, so
/// a token never allows more than its scopes, and a user removed since still gets nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who.
    pub identity: Identity,
    /// How.
    pub method: AuthMethod,
    /// For [`AuthMethod::Bearer`]: the token's granted scopes. `None` for other methods.
    pub token_access: Option<Arc<[Scope]>>,
}

impl Principal {
    /// The audit actor (user name or `robot$name`; empty for anonymous).
    pub fn actor(&self) -> Actor {
        self.identity.actor()
    }

    /// The anonymous principal.
    pub fn anonymous() -> Principal {
        Principal {
            identity: Identity::Anonymous,
            method: AuthMethod::Anonymous,
            token_access: None,
        }
    }
}

/// Why an authorization check said no. `Display` is the reason to put in the OCI error body
/// and the audit event (it names no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenialReason {
    /// The repository name is not valid (path tricks land here).
    InvalidRepositoryName,
    /// No rule gives this identity the action on the repository.
    NotPermitted,
    /// A bearer token was presented but does not carry this scope (the client should fetch a
    /// new token: the server answers 401 with `error="insufficient_scope"`).
    InsufficientScope,
    /// Catalog listing is restricted.
    CatalogRestricted,
    /// The tag matches an immutable-tag pattern and already exists.
    ImmutableTag {
        /// The pattern that matched.
        pattern: String,
    },
}

impl fmt::Display for DenialReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenialReason::InvalidRepositoryName => f.write_str("invalid repository name"),
            DenialReason::NotPermitted => f.write_str("not permitted by policy"),
            DenialReason::InsufficientScope => f.write_str("token does not grant this scope"),
            DenialReason::CatalogRestricted => f.write_str("catalog listing not permitted"),
            DenialReason::ImmutableTag { pattern } => {
                write!(f, "tag is immutable (pattern {pattern:?})")
            }
        }
    }
}

/// A refused authorization check: who, what, why. The server turns it into 401 (anonymous, or
/// insufficient token scope: a challenge) or 403 `DENIED`, and into an audit event with
/// [`Denial::audit_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Who asked (`None` for anonymous).
    pub subject: Option<String>,
    /// The repository (or `None` for the catalog).
    pub repository: Option<String>,
    /// The action (`None` for the catalog).
    pub action: Option<Action>,
    /// Why.
    pub reason: DenialReason,
    /// Whether the server should answer 401 with a challenge (the client may succeed with
    /// other or fresher credentials) rather than 403.
    pub challenge: bool,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = self.subject.as_deref().unwrap_or("anonymous");
        match (&self.repository, self.action) {
            (Some(repo), Some(action)) => {
                write!(f, "{who} may not {action} {repo}: {}", self.reason)
            }
            (Some(repo), None) => write!(f, "{who} may not change {repo}: {}", self.reason),
            _ => write!(f, "{who}: {}", self.reason),
        }
    }
}

impl std::error::Error for Denial {}

impl Denial {
    /// The scope a fresh token would need (for the `WWW-Authenticate` challenge), if any.
    pub fn required_scope(&self) -> Option<Scope> {
        match (&self.repository, self.action) {
            (Some(repo), Some(action)) => Some(Scope::repository(
                repo.clone(),
                super::action::ActionSet::of(action),
            )),
            (None, None) => Some(Scope::catalog()),
            _ => None,
        }
    }

    /// The audit event for this denial (`registry_request_denied`). The catalog, and actions
    /// the audit crate has no name for, are recorded as `list`/`push` respectively with the
    /// precise action in the reason.
    pub fn audit_event(&self, remote_addr: IpAddr) -> Event {
        let actor = match &self.subject {
            Some(subject) => Actor::user(subject.clone()),
            None => Actor::default(),
        };
        let action = match self.action {
            Some(a) => a
                .audit_action()
                .unwrap_or(palisade_audit::RegistryAction::Push),
            None => palisade_audit::RegistryAction::List,
        };
        let reason = match self.action {
            Some(Action::Admin) => format!("admin: {}", self.reason),
            _ => self.reason.to_string(),
        };
        Event::RegistryRequestDenied {
            actor,
            repository: self
                .repository
                .clone()
                .unwrap_or_else(|| "_catalog".to_owned()),
            action,
            remote_addr,
            reason,
        }
    }
}
