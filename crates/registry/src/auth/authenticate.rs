//! Authentication: from an `Authorization` header and a client address to a [`Principal`].

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use super::cache::CredentialCache;
use super::config::{AuthConfig, AuthConfigError};
use super::header::{parse_authorization, Credentials, HeaderError};
use super::identity::{AuthMethod, Identity, Principal, ROBOT_PREFIX};
use super::password::{decoy_hash, hash_cost, verify_password, HashCost, Password};
use super::rate_limit::{LoginRateLimiter, RetryAfter};
use super::rule::Rules;
use super::token::{TokenError, TokenVerifier};
use super::users::{robot_token_digest, UserDb};
use super::Authorizer;

/// Why a login failed, for the audit log and logs only (clients are told nothing more than
/// "invalid credentials", so they cannot probe which names exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// No such user or robot.
    UnknownAccount,
    /// Wrong password or robot token.
    WrongSecret,
    /// The user is disabled.
    Disabled,
    /// The robot token has expired.
    Expired,
}

impl fmt::Display for LoginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoginFailure::UnknownAccount => "unknown account",
            LoginFailure::WrongSecret => "wrong password or token",
            LoginFailure::Disabled => "account disabled",
            LoginFailure::Expired => "robot token expired",
        })
    }
}

/// Why authentication failed. The server answers 429 `TOO_MANY_REQUESTS` (with
/// `Retry-After`) for [`AuthError::RateLimited`], and 401 `UNAUTHORIZED` with a challenge for
/// everything else.
///
/// `Display` is safe to send to the client: it never says whether an account exists, is
/// disabled or expired. [`AuthError::detail`] has that, for logs and the audit log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The `Authorization` header is malformed or uses another scheme.
    #[error("bad authorization header: {0}")]
    Header(#[from] HeaderError),
    /// User name or password (or robot token) wrong.
    #[error("invalid user name or password")]
    InvalidCredentials {
        /// The name the client sent (truncated to 64 characters, for the audit log).
        username: String,
        /// What exactly failed (never shown to the client).
        failure: LoginFailure,
    },
    /// Too many failed logins from this client.
    #[error("too many failed logins from this client; retry in {}s", retry_after.seconds())]
    RateLimited {
        /// How long to wait.
        retry_after: RetryAfter,
    },
    /// A bearer token that does not verify.
    #[error("invalid bearer token: {0}")]
    InvalidToken(#[from] TokenError),
    /// A bearer token was sent but the token service is not configured.
    #[error("bearer tokens are not enabled on this registry")]
    BearerDisabled,
    /// A valid token for an account that no longer exists or is disabled.
    #[error("invalid bearer token: its account is no longer valid")]
    UnknownSubject(String),
}

impl AuthError {
    /// Whether the server should answer 429 rather than 401.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, AuthError::RateLimited { .. })
    }

    /// The audit event for this failure: `other` with name `registry_login_failed` and fields
    /// `remote_addr`, `reason` (the precise, internal reason; never the secret) and, when a
    /// name was sent, the actor's `user`.
    pub fn audit_event(&self, remote_addr: IpAddr) -> palisade_audit::Event {
        let actor = match self.username() {
            Some(name) if !name.is_empty() => palisade_audit::Actor::user(name),
            _ => palisade_audit::Actor::default(),
        };
        let mut fields = serde_json::Map::new();
        fields.insert("remote_addr".to_owned(), remote_addr.to_string().into());
        fields.insert("reason".to_owned(), self.detail().into());
        palisade_audit::Event::Other {
            actor,
            name: "registry_login_failed".to_owned(),
            fields,
        }
    }

    /// The full reason, for logs and the audit log (not for the client): which account and
    /// what exactly failed.
    pub fn detail(&self) -> String {
        match self {
            AuthError::InvalidCredentials { username, failure } => {
                format!("invalid credentials for {username:?}: {failure}")
            }
            AuthError::UnknownSubject(subject) => {
                format!("token subject {subject:?} no longer exists or is disabled")
            }
            other => other.to_string(),
        }
    }

    /// The account name involved, if any (for the audit actor).
    pub fn username(&self) -> Option<&str> {
        match self {
            AuthError::InvalidCredentials { username, .. }
            | AuthError::UnknownSubject(username) => Some(username),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct UserEntry {
    password_hash: String,
    roles: Arc<[String]>,
    disabled: bool,
    password_changed_at: u64,
}

#[derive(Debug)]
struct RobotEntry {
    token_sha256: [u8; 32],
    rules: Rules,
    expires_at: u64,
}

/// Verifies credentials. Built from the config and a [`UserDb`] snapshot; immutable apart
/// from its credential cache and the shared rate limiter. Rebuild on reload (a new, empty cache
/// makes changed passwords take effect at once).
#[derive(Debug)]
pub struct Authenticator {
    users: HashMap<String, UserEntry>,
    robots: HashMap<String, RobotEntry>,
    decoy_cost: HashCost,
    decoy: OnceLock<Option<String>>,
    cache: CredentialCache,
    limiter: Arc<LoginRateLimiter>,
    tokens: Option<Arc<TokenVerifier>>,
}

fn truncated(name: &str) -> String {
    name.chars().take(64).collect()
}

impl Authenticator {
    /// Build from config and users; every user's roles must exist in `authorizer`.
    pub fn new(
        config: &AuthConfig,
        users: &UserDb,
        authorizer: &Authorizer,
        limiter: Arc<LoginRateLimiter>,
        tokens: Option<Arc<TokenVerifier>>,
    ) -> Result<Authenticator, AuthConfigError> {
        let mut user_map = HashMap::new();
        let mut decoy_cost = HashCost::DEFAULT;
        for (name, record) in users.users() {
            for role in &record.roles {
                authorizer.check_role(
                    &format!("user database {:?}: user {name:?}", users.path()),
                    role,
                )?;
            }
            if let Some(cost) = hash_cost(&record.password_hash) {
                decoy_cost = cost;
            }
            user_map.insert(
                name.to_owned(),
                UserEntry {
                    password_hash: record.password_hash.clone(),
                    roles: record.roles.clone().into(),
                    disabled: record.disabled,
                    password_changed_at: record.password_changed_at,
                },
            );
        }
        let mut robots = HashMap::new();
        for (name, record) in users.robots() {
            let mut digest = [0u8; 32];
            // Checked as 64 hex digits by UserDb::load; a record that fails here never matches.
            let _ = hex::decode_to_slice(&record.token_sha256, &mut digest);
            let rules = record
                .rules
                .iter()
                .filter_map(|spec| spec.to_rule().ok())
                .collect::<Vec<_>>();
            robots.insert(
                name.to_owned(),
                RobotEntry {
                    token_sha256: digest,
                    rules: rules.into(),
                    expires_at: record.expires_at,
                },
            );
        }
        Ok(Authenticator {
            users: user_map,
            robots,
            decoy_cost,
            decoy: OnceLock::new(),
            cache: CredentialCache::new(
                Duration::from_secs(config.credential_cache.ttl_seconds),
                config.credential_cache.capacity,
            ),
            limiter,
            tokens,
        })
    }

    /// The per-request entry point. `authorization` is the `Authorization` header value (if
    /// any), `client` the peer address. No header → the anonymous principal (the authorizer
    /// decides what anonymous may do).
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        client: IpAddr,
    ) -> Result<Principal, AuthError> {
        let Some(value) = authorization else {
            return Ok(Principal::anonymous());
        };
        match parse_authorization(value)? {
            Credentials::Basic { username, password } => {
                let identity = self.login(&username, &password, client)?;
                let method = match identity {
                    Identity::Robot { .. } => AuthMethod::RobotToken,
                    _ => AuthMethod::Password,
                };
                Ok(Principal {
                    identity,
                    method,
                    token_access: None,
                })
            }
            Credentials::Bearer(token) => {
                let verifier = self.tokens.as_ref().ok_or(AuthError::BearerDisabled)?;
                let claims = verifier.verify(token.expose(), super::clock::unix_now())?;
                let identity = self.resolve_subject(claims.subject.as_deref())?;
                Ok(Principal {
                    identity,
                    method: AuthMethod::Bearer,
                    token_access: Some(claims.access),
                })
            }
        }
    }

    /// Check a user name (or `robot$name`) and password (or robot token), with rate limiting
    /// and the credential cache. The token endpoint calls this for `grant_type=password` and
    /// Basic-authenticated `GET /token`.
    pub fn login(
        &self,
        username: &str,
        password: &Password,
        client: IpAddr,
    ) -> Result<Identity, AuthError> {
        let now = Instant::now();
        self.limiter
            .check(client, now)
            .map_err(|retry_after| AuthError::RateLimited { retry_after })?;
        if let Some(identity) = self.cache.lookup(username, password, now) {
            return Ok(identity);
        }
        let Some(_permit) = self.limiter.try_begin_hash() else {
            return Err(AuthError::RateLimited {
                retry_after: RetryAfter(Duration::from_secs(1)),
            });
        };
        match self.verify_uncached(username, password) {
            Ok(identity) => {
                self.cache.insert(username, password, identity.clone(), now);
                Ok(identity)
            }
            Err(failure) => {
                self.limiter.record_failure(client, now);
                Err(AuthError::InvalidCredentials {
                    username: truncated(username),
                    failure,
                })
            }
        }
    }

    fn verify_uncached(
        &self,
        username: &str,
        password: &Password,
    ) -> Result<Identity, LoginFailure> {
        if let Some(robot_name) = username.strip_prefix(ROBOT_PREFIX) {
            return self.verify_robot(robot_name, password, super::clock::unix_now());
        }
        let Some(user) = self.users.get(username) else {
            self.spend_decoy(password);
            return Err(LoginFailure::UnknownAccount);
        };
        if !verify_password(&user.password_hash, password) {
            return Err(LoginFailure::WrongSecret);
        }
        if user.disabled {
            return Err(LoginFailure::Disabled);
        }
        Ok(Identity::User {
            name: username.to_owned(),
            roles: user.roles.clone(),
        })
    }

    fn verify_robot(
        &self,
        name: &str,
        secret: &Password,
        now: u64,
    ) -> Result<Identity, LoginFailure> {
        let mut presented = [0u8; 32];
        // Hashing is cheap; do it whether or not the robot exists.
        let _ = hex::decode_to_slice(robot_token_digest(secret.expose()), &mut presented);
        let Some(robot) = self.robots.get(name) else {
            return Err(LoginFailure::UnknownAccount);
        };
        if !bool::from(robot.token_sha256.ct_eq(&presented)) {
            return Err(LoginFailure::WrongSecret);
        }
        if robot.expires_at <= now {
            return Err(LoginFailure::Expired);
        }
        Ok(Identity::Robot {
            name: name.to_owned(),
            rules: robot.rules.clone(),
        })
    }

    /// Spend about the time a real verification takes, so unknown names are not faster.
    fn spend_decoy(&self, password: &Password) {
        let decoy = self.decoy.get_or_init(|| decoy_hash(self.decoy_cost).ok());
        if let Some(hash) = decoy {
            let _ = verify_password(hash, password);
        }
    }

    /// The identity a token's `sub` names now (users and robots are looked up again, so a
    /// removed or disabled account's tokens stop working at once; robots also expire).
    pub fn resolve_subject(&self, subject: Option<&str>) -> Result<Identity, AuthError> {
        let Some(subject) = subject.filter(|s| !s.is_empty()) else {
            return Ok(Identity::Anonymous);
        };
        if let Some(name) = subject.strip_prefix(ROBOT_PREFIX) {
            return match self.robots.get(name) {
                Some(robot) if robot.expires_at > super::clock::unix_now() => Ok(Identity::Robot {
                    name: name.to_owned(),
                    rules: robot.rules.clone(),
                }),
                _ => Err(AuthError::UnknownSubject(truncated(subject))),
            };
        }
        match self.users.get(subject) {
            Some(user) if !user.disabled => Ok(Identity::User {
                name: subject.to_owned(),
                roles: user.roles.clone(),
            }),
            _ => Err(AuthError::UnknownSubject(truncated(subject))),
        }
    }

    /// The identity behind a redeemed refresh token: the subject must still exist, and for a
    /// user the password must not have changed since the token was issued.
    pub fn resolve_refresh(
        &self,
        record: &super::refresh::RefreshRecord,
    ) -> Result<Identity, AuthError> {
        let identity = self.resolve_subject(Some(&record.subject))?;
        if let Some(user) = self.users.get(&record.subject) {
            if record.issued_at < user.password_changed_at {
                return Err(AuthError::UnknownSubject(truncated(&record.subject)));
            }
        }
        match identity {
            Identity::Anonymous => Err(AuthError::UnknownSubject(String::new())),
            identity => Ok(identity),
        }
    }

    /// The token verifier, when the token service is configured.
    pub fn token_verifier(&self) -> Option<&Arc<TokenVerifier>> {
        self.tokens.as_ref()
    }

    /// Entries in the credential cache (for metrics).
    pub fn cached_credentials(&self) -> usize {
        self.cache.len()
    }
}
