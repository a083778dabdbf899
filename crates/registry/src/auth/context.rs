//! [`AuthContext`]: everything the server needs per request, built from the config and files,
//! immutable, swapped whole behind an `Arc` on reload; and [`AuthState`], the parts that live
//! for the whole process (rate limiter, refresh tokens).

use std::net::IpAddr;
use std::sync::Arc;

use super::action::Action;
use super::authenticate::{AuthError, Authenticator};
use super::authorize::Authorizer;
use super::challenge::{basic_challenge, bearer_challenge, BearerChallengeError};
use super::config::{AuthConfig, AuthConfigError};
use super::identity::{Denial, DenialReason, Principal};
use super::keys::{KeyError, SigningKey};
use super::rate_limit::LoginRateLimiter;
use super::refresh::{RefreshStore, RefreshStoreError};
use super::scope::Scope;
use super::token::TokenSigner;
use super::users::{UserDb, UserDbError};

/// Why the auth context could not be built. On reload, keep the old context and log this.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// A configuration error.
    #[error(transparent)]
    Config(#[from] AuthConfigError),
    /// The user database.
    #[error(transparent)]
    Users(#[from] UserDbError),
    /// The token key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The refresh token file.
    #[error(transparent)]
    Refresh(#[from] RefreshStoreError),
    /// The key does not match `auth.token.algorithm`.
    #[error("the token key's algorithm does not match auth.token.algorithm")]
    KeyAlgorithm,
}

/// Process-lifetime state shared by successive [`AuthContext`]s: failed-login buckets (a
/// reload forgives nobody) and refresh tokens. Built once, from the first configuration
/// (`login_rate_limit` and `token.refresh_file` changes need a restart).
#[derive(Debug, Clone)]
pub struct AuthState {
    pub(crate) limiter: Arc<LoginRateLimiter>,
    pub(crate) refresh: Arc<RefreshStore>,
}

impl AuthState {
    /// Build from the configuration (opens `auth.token.refresh_file` if set).
    pub fn new(config: &AuthConfig) -> Result<AuthState, AuthSetupError> {
        let refresh = match config
            .token
            .as_ref()
            .and_then(|t| t.refresh_file.as_deref())
        {
            Some(path) => RefreshStore::open(path)?,
            None => RefreshStore::in_memory(),
        };
        Ok(AuthState {
            limiter: Arc::new(LoginRateLimiter::new(&config.login_rate_limit)),
            refresh: Arc::new(refresh),
        })
    }

    /// The refresh token store (to revoke a user's tokens after `user rm` or `passwd`).
    pub fn refresh_tokens(&self) -> &RefreshStore {
        &self.refresh
    }

    /// The failed-login limiter.
    pub fn login_limiter(&self) -> &LoginRateLimiter {
        &self.limiter
    }
}

#[derive(Debug)]
pub(crate) struct TokenService {
    pub(crate) signer: TokenSigner,
    pub(crate) realm: String,
    pub(crate) service: String,
    pub(crate) refresh_ttl: u64,
}

/// Authentication and authorization for one configuration generation.
#[derive(Debug)]
pub struct AuthContext {
    pub(crate) authenticator: Authenticator,
    pub(crate) authorizer: Authorizer,
    pub(crate) tokens: Option<TokenService>,
    pub(crate) state: AuthState,
    realm: String,
}

impl AuthContext {
    /// Validate `config`, read the user database (`users_file`; none → no accounts) and the
    /// token key (generated if absent), and build the context.
    pub fn load(config: &AuthConfig, state: &AuthState) -> Result<AuthContext, AuthSetupError> {
        config.validate()?;
        let users = match &config.users_file {
            Some(path) => UserDb::load(path)?,
            None => UserDb::empty("/dev/null"),
        };
        let key = match &config.token {
            Some(token) => Some(SigningKey::load_or_generate(
                &token.key_file,
                token.algorithm,
            )?),
            None => None,
        };
        AuthContext::from_parts(config, &users, key, state)
    }

    /// Build from values already in memory (tests, or a server that reads files itself).
    /// `key` is required when `config.token` is set.
    pub fn from_parts(
        config: &AuthConfig,
        users: &UserDb,
        key: Option<SigningKey>,
        state: &AuthState,
    ) -> Result<AuthContext, AuthSetupError> {
        config.validate()?;
        let authorizer = Authorizer::from_config(config)?;
        let tokens = match (&config.token, key) {
            (Some(token), Some(key)) => {
                if key.algorithm() != token.algorithm {
                    return Err(AuthSetupError::KeyAlgorithm);
                }
                Some(TokenService {
                    signer: TokenSigner::new(key, &token.issuer, &token.service, token.ttl_seconds),
                    realm: token.realm.clone(),
                    service: token.service.clone(),
                    refresh_ttl: token.refresh_ttl_seconds,
                })
            }
            (Some(_), None) => {
                return Err(AuthSetupError::Config(AuthConfigError::Token {
                    field: "key_file",
                    reason: "no signing key",
                }))
            }
            (None, _) => None,
        };
        let verifier = tokens.as_ref().map(|t| Arc::new(t.signer.verifier()));
        let authenticator =
            Authenticator::new(config, users, &authorizer, state.limiter.clone(), verifier)?;
        Ok(AuthContext {
            authenticator,
            authorizer,
            tokens,
            state: state.clone(),
            realm: config.realm.clone(),
        })
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    /// The authorizer.
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// The process-lifetime state.
    pub fn state(&self) -> &AuthState {
        &self.state
    }

    /// Whether the Docker token service is configured (then challenges are `Bearer`).
    pub fn token_service_enabled(&self) -> bool {
        self.tokens.is_some()
    }

    /// Shorthand for [`Authenticator::authenticate`].
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        client: IpAddr,
    ) -> Result<Principal, AuthError> {
        self.authenticator.authenticate(authorization, client)
    }

    /// Shorthand for [`Authorizer::authorize`].
    pub fn authorize(
        &self,
        principal: &Principal,
        repository: &str,
        action: Action,
    ) -> Result<(), Denial> {
        self.authorizer.authorize(principal, repository, action)
    }

    /// The `WWW-Authenticate` value for a 401: `Bearer realm=..,service=..[,scope=..][,error=..]`
    /// with the token service, else `Basic realm=..`.
    pub fn challenge(&self, scopes: &[Scope], error: Option<BearerChallengeError>) -> String {
        match &self.tokens {
            Some(tokens) => bearer_challenge(&tokens.realm, &tokens.service, scopes, error),
            None => basic_challenge(&self.realm),
        }
    }

    /// `Basic realm="<auth.realm>"`, e.g. for a 401 from the token endpoint.
    pub fn basic_challenge(&self) -> String {
        basic_challenge(&self.realm)
    }

    /// The challenge for a failed authentication (`scope`: what the request needed, if known).
    pub fn challenge_for_error(&self, error: &AuthError, scope: Option<&Scope>) -> String {
        let scopes: Vec<Scope> = scope.into_iter().cloned().collect();
        let bearer_error = matches!(
            error,
            AuthError::InvalidToken(_) | AuthError::UnknownSubject(_)
        )
        .then_some(BearerChallengeError::InvalidToken);
        self.challenge(&scopes, bearer_error)
    }

    /// The challenge for a denial with `challenge == true` (anonymous, or a token lacking
    /// the scope).
    pub fn challenge_for_denial(&self, denial: &Denial) -> String {
        let scopes: Vec<Scope> = denial.required_scope().into_iter().collect();
        let error = (denial.reason == DenialReason::InsufficientScope)
            .then_some(BearerChallengeError::InsufficientScope);
        self.challenge(&scopes, error)
    }
}
