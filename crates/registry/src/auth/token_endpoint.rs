//! The token endpoint (`GET /token` and `POST /token`) of the Docker token protocol, as plain
//! functions over decoded request parameters.
//!
//! - `GET /token?service=S&scope=A&scope=B[&offline_token=true][&client_id=C]`, with an optional
//!   `Authorization: Basic` header (none: an anonymous token, with whatever anonymous access the
//!   policy gives). `offline_token=true` adds a refresh token to the answer.
//! - `POST /token` (`application/x-www-form-urlencoded`) with `grant_type=password`
//!   (`username`, `password`, `access_type=offline` for a refresh token) or
//!   `grant_type=refresh_token` (`refresh_token`); `scope` is space-separated; `service` and
//!   `client_id` as above.
//!
//! The granted access is always the requested scopes intersected with the policy for the
//! authenticated identity; unknown or malformed scopes are dropped, never errors.

use std::net::IpAddr;

use serde::Serialize;

use super::authenticate::AuthError;
use super::header::{parse_authorization, Credentials};
use super::identity::Identity;
use super::password::Password;
use super::refresh::RefreshStoreError;
use super::scope::{parse_scopes, Scope, ScopeError};

/// How the client proves itself at the token endpoint.
#[derive(Debug)]
pub enum TokenCredentials {
    /// No credentials: an anonymous token.
    Anonymous,
    /// A user (or `robot$name`) and password (or robot token).
    Password {
        /// User name.
        username: String,
        /// Password.
        password: Password,
    },
    /// A refresh token from an earlier offline login.
    RefreshToken(Password),
}

/// A parsed token request.
#[derive(Debug)]
pub struct TokenRequest {
    /// Credentials.
    pub credentials: TokenCredentials,
    /// `service`, if sent (must then be ours).
    pub service: Option<String>,
    /// Raw `scope` values (each may hold several space-separated scopes).
    pub scopes: Vec<String>,
    /// Whether a refresh token was asked for.
    pub offline: bool,
    /// `client_id`, if sent (recorded, not trusted).
    pub client_id: Option<String>,
}

/// Why a token request was refused. [`TokenEndpointError::status`] and
/// [`TokenEndpointError::oauth_error`] give the HTTP status and OAuth2 `error` code.
#[derive(Debug, thiserror::Error)]
pub enum TokenEndpointError {
    /// A missing, repeated or malformed parameter.
    #[error("invalid token request: {0}")]
    InvalidRequest(&'static str),
    /// A `grant_type` other than `password` and `refresh_token`.
    #[error("unsupported grant_type")]
    UnsupportedGrantType,
    /// `service` names another service.
    #[error("token requested for another service")]
    WrongService,
    /// The credentials were refused (401), or the client is rate-limited (429).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The refresh token is unknown, expired, revoked, or its subject is gone.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// The token service is not configured.
    #[error("the token service is not enabled")]
    Disabled,
    /// Storing a refresh token failed.
    #[error(transparent)]
    Store(#[from] RefreshStoreError),
}

impl TokenEndpointError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            TokenEndpointError::InvalidRequest(_)
            | TokenEndpointError::UnsupportedGrantType
            | TokenEndpointError::WrongService => 400,
            TokenEndpointError::Auth(e) if e.is_rate_limited() => 429,
            TokenEndpointError::Auth(_) | TokenEndpointError::InvalidRefreshToken => 401,
            TokenEndpointError::Disabled => 404,
            TokenEndpointError::Store(_) => 500,
        }
    }

    /// The full reason for logs and the audit log (`Display` is what the client may see).
    pub fn detail(&self) -> String {
        match self {
            TokenEndpointError::Auth(e) => e.detail(),
            other => other.to_string(),
        }
    }

    /// The OAuth2 `error` value for a JSON body `{"error": ..., "error_description": ...}`.
    pub fn oauth_error(&self) -> &'static str {
        match self {
            TokenEndpointError::InvalidRequest(_) | TokenEndpointError::WrongService => {
                "invalid_request"
            }
            TokenEndpointError::UnsupportedGrantType => "unsupported_grant_type",
            TokenEndpointError::Auth(e) if e.is_rate_limited() => "slow_down",
            TokenEndpointError::Auth(_) => "invalid_client",
            TokenEndpointError::InvalidRefreshToken => "invalid_grant",
            TokenEndpointError::Disabled => "invalid_request",
            TokenEndpointError::Store(_) => "server_error",
        }
    }
}

/// The JSON body of a successful answer (both GET and POST).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    /// The access token (Docker spelling).
    pub token: String,
    /// The same token (OAuth2 spelling).
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// RFC 3339 issue time.
    pub issued_at: String,
    /// A refresh token, when one was asked for and issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// A successful answer plus what the audit log wants to know.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// The body to send.
    pub response: TokenResponse,
    /// Who the token is for (`None`: anonymous).
    pub subject: Option<String>,
    /// What was asked for (after parsing).
    pub requested: Vec<Scope>,
    /// What the token carries.
    pub granted: Vec<Scope>,
    /// Scope strings that were dropped, and why.
    pub dropped: Vec<ScopeError>,
    /// `jti` of the token.
    pub token_id: String,
}

impl TokenGrant {
    /// The audit event for this grant: `other` with name `registry_token_issued` and fields
    /// `remote_addr`, `token_id` (`jti`), `granted` and `requested` (scope strings),
    /// `refresh_token_issued`. Never the token itself.
    pub fn audit_event(&self, remote_addr: IpAddr) -> palisade_audit::Event {
        let actor = match &self.subject {
            Some(subject) => palisade_audit::Actor::user(subject.clone()),
            None => palisade_audit::Actor::default(),
        };
        let scopes = |list: &[Scope]| -> serde_json::Value {
            list.iter()
                .map(|s| serde_json::Value::from(s.to_string()))
                .collect()
        };
        let mut fields = serde_json::Map::new();
        fields.insert("remote_addr".to_owned(), remote_addr.to_string().into());
        fields.insert("token_id".to_owned(), self.token_id.clone().into());
        fields.insert("granted".to_owned(), scopes(&self.granted));
        fields.insert("requested".to_owned(), scopes(&self.requested));
        fields.insert(
            "refresh_token_issued".to_owned(),
            self.response.refresh_token.is_some().into(),
        );
        palisade_audit::Event::Other {
            actor,
            name: "registry_token_issued".to_owned(),
            fields,
        }
    }
}

fn single<'a>(
    pairs: &'a [(String, String)],
    key: &str,
) -> Result<Option<&'a str>, TokenEndpointError> {
    let mut found = None;
    for (k, v) in pairs {
        if k == key {
            if found.is_some() {
                return Err(TokenEndpointError::InvalidRequest("repeated parameter"));
            }
            found = Some(v.as_str());
        }
    }
    Ok(found)
}

fn scopes_of(pairs: &[(String, String)]) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect()
}

fn common(
    pairs: &[(String, String)],
) -> Result<(Option<String>, Option<String>), TokenEndpointError> {
    Ok((
        single(pairs, "service")?.map(str::to_owned),
        single(pairs, "client_id")?.map(|c| c.chars().take(128).collect()),
    ))
}

impl TokenRequest {
    /// `GET /token`: the decoded query pairs and the `Authorization` header value.
    pub fn from_get(
        query: &[(String, String)],
        authorization: Option<&str>,
    ) -> Result<TokenRequest, TokenEndpointError> {
        let (service, client_id) = common(query)?;
        let offline = match single(query, "offline_token")? {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(TokenEndpointError::InvalidRequest(
                    "offline_token must be true or false",
                ))
            }
        };
        let credentials = match authorization {
            None => TokenCredentials::Anonymous,
            Some(value) => match parse_authorization(value).map_err(AuthError::from)? {
                Credentials::Basic { username, password } => {
                    TokenCredentials::Password { username, password }
                }
                Credentials::Bearer(_) => {
                    return Err(TokenEndpointError::InvalidRequest(
                        "use Basic credentials or a refresh token",
                    ))
                }
            },
        };
        Ok(TokenRequest {
            credentials,
            service,
            scopes: scopes_of(query),
            offline,
            client_id,
        })
    }

    /// `POST /token`: the decoded form pairs.
    pub fn from_form(form: &[(String, String)]) -> Result<TokenRequest, TokenEndpointError> {
        let (service, client_id) = common(form)?;
        let offline = matches!(single(form, "access_type")?, Some("offline"));
        let credentials = match single(form, "grant_type")? {
            Some("password") => {
                let username = single(form, "username")?
                    .filter(|u| !u.is_empty())
                    .ok_or(TokenEndpointError::InvalidRequest("username missing"))?;
                let password = single(form, "password")?
                    .ok_or(TokenEndpointError::InvalidRequest("password missing"))?;
                TokenCredentials::Password {
                    username: username.to_owned(),
                    password: Password::new(password),
                }
            }
            Some("refresh_token") => {
                let token = single(form, "refresh_token")?
                    .filter(|t| !t.is_empty())
                    .ok_or(TokenEndpointError::InvalidRequest("refresh_token missing"))?;
                TokenCredentials::RefreshToken(Password::new(token))
            }
            Some(_) => return Err(TokenEndpointError::UnsupportedGrantType),
            None => return Err(TokenEndpointError::InvalidRequest("grant_type missing")),
        };
        Ok(TokenRequest {
            credentials,
            service,
            scopes: scopes_of(form),
            offline,
            client_id,
        })
    }
}

impl super::AuthContext {
    /// Answer a token request from `client`. See the module documentation.
    pub fn issue_token(
        &self,
        request: &TokenRequest,
        client: IpAddr,
    ) -> Result<TokenGrant, TokenEndpointError> {
        self.issue_token_at(request, client, super::clock::unix_now())
    }

    pub(crate) fn issue_token_at(
        &self,
        request: &TokenRequest,
        client: IpAddr,
        now: u64,
    ) -> Result<TokenGrant, TokenEndpointError> {
        let tokens = self.tokens.as_ref().ok_or(TokenEndpointError::Disabled)?;
        if request
            .service
            .as_deref()
            .is_some_and(|s| s != tokens.service)
        {
            return Err(TokenEndpointError::WrongService);
        }
        let (identity, may_refresh) = match &request.credentials {
            TokenCredentials::Anonymous => (Identity::Anonymous, false),
            TokenCredentials::Password { username, password } => {
                (self.authenticator.login(username, password, client)?, true)
            }
            TokenCredentials::RefreshToken(token) => {
                let record = self
                    .state
                    .refresh
                    .redeem(token, now)
                    .ok_or(TokenEndpointError::InvalidRefreshToken)?;
                let identity = self
                    .authenticator
                    .resolve_refresh(&record)
                    .map_err(|_| TokenEndpointError::InvalidRefreshToken)?;
                // The client keeps using the refresh token it has; no new one.
                (identity, false)
            }
        };
        let (requested, dropped) = parse_scopes(request.scopes.iter().map(String::as_str));
        let granted = self.authorizer.grant(&identity, &requested);
        let subject = identity.subject();
        let issued = tokens.signer.issue(subject.as_deref(), &granted, now);
        let refresh_token = match (&subject, request.offline && may_refresh) {
            (Some(subject), true) => Some(
                self.state
                    .refresh
                    .issue(subject, now, tokens.refresh_ttl)?
                    .expose()
                    .to_owned(),
            ),
            _ => None,
        };
        Ok(TokenGrant {
            response: TokenResponse {
                access_token: issued.token.clone(),
                token: issued.token,
                expires_in: issued.expires_in,
                issued_at: palisade_audit::Timestamp::from_unix(issued.issued_at, 0).to_string(),
                refresh_token,
            },
            subject,
            requested,
            granted,
            dropped,
            token_id: issued.id,
        })
    }
}
