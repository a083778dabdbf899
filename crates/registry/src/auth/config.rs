//! The `[auth]` section of the registry configuration (the server embeds [`AuthConfig`] in its
//! TOML file). Every struct refuses unknown fields; semantic checks (globs, actions, role
//! names) happen in [`AuthConfig::validate`] and when the policy is built, with errors that
//! say where the problem is.
//!
//! ```toml
//! [auth]
//! realm = "palisade"                  # Basic realm
//! users_file = "/var/lib/palisade/registry/users.json"
//! default_roles = ["reader"]          # roles every authenticated user has
//! catalog = "admin"                   # or "authenticated"
//!
//! [auth.roles.reader]
//! rules = [{ repositories = ["library/**"], actions = ["pull"] }]
//! [auth.roles.team-a]
//! rules = [{ repositories = ["team-a/**"], actions = ["pull", "push", "delete"] }]
//! [auth.roles.admin]
//! rules = [{ repositories = ["**"], actions = ["admin"] }]
//!
//! [auth.anonymous]
//! pull = ["public/**"]                # anonymous access is off unless listed here
//!
//! [[auth.immutable_tags]]
//! repositories = ["**"]
//! tags = ["v*"]
//!
//! [auth.token]                        # the built-in Docker token service (optional)
//! realm = "https://registry.example:5000/token"
//! service = "registry.example:5000"
//! issuer = "palisade-registry"
//! key_file = "/var/lib/palisade/registry/token-key.pem"   # created (0600) if absent
//! algorithm = "es256"                 # or "eddsa"
//! ttl_seconds = 300
//! refresh_ttl_seconds = 1209600
//! refresh_file = "/var/lib/palisade/registry/refresh-tokens.json"
//!
//! [auth.login_rate_limit]
//! burst = 10                          # failed logins allowed in a burst, per client
//! per_minute = 10                     # refill rate
//! max_concurrent_password_checks = 0  # 0: twice the CPUs; more logins at once get 429
//!
//! [auth.credential_cache]
//! ttl_seconds = 60
//! capacity = 4096
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::rule::RuleSpec;

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The realm in `Basic` challenges.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// The user database (users, password hashes, roles, robots). `None`: no accounts, only
    /// anonymous access as configured.
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// Named roles, each a list of rules.
    #[serde(default)]
    pub roles: BTreeMap<String, RoleConfig>,
    /// Roles every authenticated user (not robots) has in addition to its own.
    #[serde(default)]
    pub default_roles: Vec<String>,
    /// What unauthenticated clients may do.
    #[serde(default)]
    pub anonymous: AnonymousConfig,
    /// Who may list the catalog.
    #[serde(default)]
    pub catalog: CatalogAccess,
    /// Tags that can be pushed once and never moved or deleted.
    #[serde(default)]
    pub immutable_tags: Vec<ImmutableTagsConfig>,
    /// The built-in token service; `None` means Basic authentication only.
    #[serde(default)]
    pub token: Option<TokenConfig>,
    /// Failed-login rate limiting per client address.
    #[serde(default)]
    pub login_rate_limit: RateLimitConfig,
    /// The verified-credential cache.
    #[serde(default)]
    pub credential_cache: CredentialCacheConfig,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            realm: default_realm(),
            users_file: None,
            roles: BTreeMap::new(),
            default_roles: Vec::new(),
            anonymous: AnonymousConfig::default(),
            catalog: CatalogAccess::default(),
            immutable_tags: Vec::new(),
            token: None,
            login_rate_limit: RateLimitConfig::default(),
            credential_cache: CredentialCacheConfig::default(),
        }
    }
}

fn default_realm() -> String {
    "palisade".to_owned()
}

/// `[auth.roles.<name>]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// The role's rules.
    pub rules: Vec<RuleSpec>,
}

/// `[auth.anonymous]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousConfig {
    /// Repository globs anonymous clients may pull. Empty (the default): no anonymous access.
    #[serde(default)]
    pub pull: Vec<String>,
}

/// Who may list the catalog (`GET /v2/_catalog`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogAccess {
    /// Only identities holding `admin` on every repository (a rule with glob `**`).
    #[default]
    Admin,
    /// Any authenticated user or robot; the server should list only repositories the client
    /// may pull ([`super::Authorizer::may_see_repository`]).
    Authenticated,
}

/// `[[auth.immutable_tags]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImmutableTagsConfig {
    /// Repository globs.
    pub repositories: Vec<String>,
    /// Tag patterns (`*` matches any run of characters).
    pub tags: Vec<String>,
}

/// Token signing algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAlgorithm {
    /// ECDSA P-256 with SHA-256.
    #[default]
    Es256,
    /// Ed25519.
    Eddsa,
}

/// `[auth.token]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The token endpoint URL clients are sent to (`realm` in the Bearer challenge).
    pub realm: String,
    /// The service name (`service` in the challenge, `aud` in tokens).
    pub service: String,
    /// `iss` in tokens.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// PKCS#8 PEM private key; generated (mode 0600) if the file does not exist.
    pub key_file: PathBuf,
    /// Which algorithm a generated key uses, and which one tokens must carry.
    #[serde(default)]
    pub algorithm: TokenAlgorithm,
    /// Access token lifetime.
    #[serde(default = "default_token_ttl")]
    pub ttl_seconds: u64,
    /// Refresh token lifetime.
    #[serde(default = "default_refresh_ttl")]
    pub refresh_ttl_seconds: u64,
    /// Where refresh tokens (hashed) persist across restarts; `None`: in memory only.
    #[serde(default)]
    pub refresh_file: Option<PathBuf>,
}

fn default_issuer() -> String {
    "palisade-registry".to_owned()
}

fn default_token_ttl() -> u64 {
    300
}

fn default_refresh_ttl() -> u64 {
    14 * 24 * 3600
}

/// `[auth.login_rate_limit]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Failed logins a client may make in a burst.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Failed logins per minute a client regains.
    #[serde(default = "default_per_minute")]
    pub per_minute: u32,
    /// How many client addresses are tracked at once.
    #[serde(default = "default_tracked_clients")]
    pub tracked_clients: usize,
    /// At most this many password hashes (argon2id, tens of milliseconds and 19 MiB each) are
    /// checked at once across all clients; logins beyond that get 429 with `Retry-After: 1`
    /// instead of queueing. 0 (the default): twice the number of CPUs.
    #[serde(default)]
    pub max_concurrent_password_checks: usize,
}

impl Default for RateLimitConfig {
    fn default() -> RateLimitConfig {
        RateLimitConfig {
            burst: default_burst(),
            per_minute: default_per_minute(),
            tracked_clients: default_tracked_clients(),
            max_concurrent_password_checks: 0,
        }
    }
}

fn default_burst() -> u32 {
    10
}

fn default_per_minute() -> u32 {
    10
}

fn default_tracked_clients() -> usize {
    65_536
}

/// `[auth.credential_cache]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialCacheConfig {
    /// How long a verified password is remembered (0 disables the cache).
    #[serde(default = "default_cache_ttl")]
    pub ttl_seconds: u64,
    /// At most this many entries.
    #[serde(default = "default_cache_capacity")]
    pub capacity: usize,
}

impl Default for CredentialCacheConfig {
    fn default() -> CredentialCacheConfig {
        CredentialCacheConfig {
            ttl_seconds: default_cache_ttl(),
            capacity: default_cache_capacity(),
        }
    }
}

fn default_cache_ttl() -> u64 {
    60
}

fn default_cache_capacity() -> usize {
    4096
}

/// A semantic error in `[auth]`, with its location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// A bad rule in a role.
    #[error("auth.roles.{role}: rule {index}: {source}")]
    RoleRule {
        /// Role name.
        role: String,
        /// 1-based rule index.
        index: usize,
        /// What is wrong.
        #[source]
        source: super::rule::RuleError,
    },
    /// A role name that is not `[a-z0-9_-]+`.
    #[error("auth.roles: invalid role name {0:?} (use lower-case letters, digits, '-' and '_')")]
    RoleName(String),
    /// A reference to a role that is not defined.
    #[error("{place}: unknown role {role:?} (defined roles: {defined})")]
    UnknownRole {
        /// Where the reference is.
        place: String,
        /// The role.
        role: String,
        /// The roles that exist.
        defined: String,
    },
    /// A bad anonymous glob.
    #[error("auth.anonymous.pull: {0}")]
    AnonymousGlob(#[source] super::glob::GlobError),
    /// A bad immutable-tags entry.
    #[error("auth.immutable_tags[{index}]: {source}")]
    ImmutableTags {
        /// 1-based index.
        index: usize,
        /// What is wrong.
        #[source]
        source: super::glob::GlobError,
    },
    /// An immutable-tags entry with no repositories or no tags.
    #[error("auth.immutable_tags[{0}]: needs at least one repository glob and one tag pattern")]
    ImmutableTagsEmpty(usize),
    /// A bad `[auth.token]` value.
    #[error("auth.token.{field}: {reason}")]
    Token {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A bad rate-limit or cache value.
    #[error("auth.{field}: {reason}")]
    Limits {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

impl AuthConfig {
    /// Check the parts that do not need the policy built (token and limits). Role, glob and
    /// action errors are reported by [`super::Authorizer::from_config`]; the server should call
    /// both at start (and on reload) — [`super::AuthContext::load`] does.
    pub fn validate(&self) -> Result<(), AuthConfigError> {
        if let Some(token) = &self.token {
            if token.realm.is_empty() {
                return Err(AuthConfigError::Token {
                    field: "realm",
                    reason: "must be the token endpoint URL",
                });
            }
            if token.realm.contains('"')
                || token.service.contains('"')
                || token.realm.contains(char::is_control)
                || token.service.contains(char::is_control)
            {
                return Err(AuthConfigError::Token {
                    field: "realm",
                    reason: "realm and service may not contain quotes or control characters",
                });
            }
            if token.service.is_empty() {
                return Err(AuthConfigError::Token {
                    field: "service",
                    reason: "must not be empty",
                });
            }
            if token.issuer.is_empty() {
                return Err(AuthConfigError::Token {
                    field: "issuer",
                    reason: "must not be empty",
                });
            }
            if !(30..=86_400).contains(&token.ttl_seconds) {
                return Err(AuthConfigError::Token {
                    field: "ttl_seconds",
                    reason: "must be between 30 and 86400",
                });
            }
            if !(60..=365 * 86_400).contains(&token.refresh_ttl_seconds) {
                return Err(AuthConfigError::Token {
                    field: "refresh_ttl_seconds",
                    reason: "must be between 60 and 31536000",
                });
            }
        }
        if self.realm.contains('"') || self.realm.contains(char::is_control) {
            return Err(AuthConfigError::Limits {
                field: "realm",
                reason: "may not contain quotes or control characters",
            });
        }
        if self.login_rate_limit.burst == 0 || self.login_rate_limit.per_minute == 0 {
            return Err(AuthConfigError::Limits {
                field: "login_rate_limit",
                reason: "burst and per_minute must be at least 1",
            });
        }
        if self.login_rate_limit.tracked_clients == 0 {
            return Err(AuthConfigError::Limits {
                field: "login_rate_limit.tracked_clients",
                reason: "must be at least 1",
            });
        }
        if self.credential_cache.ttl_seconds > 600 {
            return Err(AuthConfigError::Limits {
                field: "credential_cache.ttl_seconds",
                reason: "at most 600 (a changed password must take effect soon)",
            });
        }
        Ok(())
    }
}
