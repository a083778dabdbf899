//! One registry's HTTP endpoint: scheme choice, authentication, and the requests of the
//! distribution spec that pull and push are built from.
//!
//! Authentication follows the registry's challenge. The first request (`GET /v2/`) tells
//! whether the registry is open, wants basic credentials, or wants a bearer token from a
//! realm. Bearer tokens are fetched for the scopes a request needs (`repository:a/b:pull`, or
//! `pull,push` plus `pull` on a mount's source) and cached per scope set until they expire; a
//! `401` that names a wider scope fetches a token for the union and retries once.
//! `Authorization` is only ever sent to the registry's own origin (never to a redirect
//! target or a foreign upload location).

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::http::{self, Method, Response};
use ureq::{Agent, Body, SendBody};

use super::challenge::{parse_challenges, Challenge, Scope, ScopeSet};
use super::credentials::{Credentials, Secret};
use super::error::{registry_detail, sanitize, DistributionError};
use super::tls::{self, is_insecure};
use super::ClientOptions;
use crate::digest::{Digest, Hasher};
use crate::manifest::MAX_MANIFEST_SIZE;
use crate::media_types::ACCEPTED_MANIFESTS;
use crate::reference::ImageReference;

/// The most of an error or token response body that is read.
const SMALL_BODY_LIMIT: u64 = 1 << 20;
/// Tokens are renewed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// Docker's default token lifetime when the server gives none.
const DEFAULT_TOKEN_LIFETIME: u64 = 60;

/// A manifest or index as fetched: its exact bytes, the `Content-Type` it came with, and its
/// digest (checked against the one asked for, or the registry's `Docker-Content-Digest`).
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The bytes, as stored and hashed.
    pub bytes: Vec<u8>,
    /// The media type from `Content-Type`, without parameters.
    pub media_type: Option<String>,
    /// The digest of `bytes`.
    pub digest: Digest,
}

/// How the registry wants requests authenticated, as learned from its challenge.
#[derive(Debug, Clone)]
enum AuthScheme {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug)]
struct CachedToken {
    scopes: ScopeSet,
    token: Secret,
    expires: Instant,
}

#[derive(Debug, Default)]
struct ClientState {
    /// `https://host` or `http://host`, once the registry answered.
    base: Option<String>,
    scheme: Option<AuthScheme>,
    tokens: Vec<CachedToken>,
    /// Agents for token realms on other hosts (their own TLS settings).
    realm_agents: Vec<(String, Agent)>,
}

/// A request body: nothing, bytes in memory (can be sent again after a token refresh), or a
/// stream read once.
pub(crate) enum RequestBody<'a> {
    Empty,
    Bytes(&'a [u8]),
    Stream {
        reader: &'a mut dyn Read,
        length: u64,
    },
}

/// One request to the registry.
pub(crate) struct RegistryRequest<'a> {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: RequestBody<'a>,
    pub(crate) scopes: &'a [Scope],
    /// What this request does, for error messages (`pull manifest a/b:1`).
    pub(crate) operation: &'a str,
}

impl<'a> RegistryRequest<'a> {
    pub(crate) fn new(
        method: Method,
        url: String,
        scopes: &'a [Scope],
        operation: &'a str,
    ) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            body: RequestBody::Empty,
            scopes,
            operation,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn body(mut self, body: RequestBody<'a>) -> Self {
        self.body = body;
        self
    }
}

/// A client for one registry.
#[derive(Debug)]
pub struct RegistryClient {
    /// The registry as references name it (`docker.io`, `localhost:5000`).
    registry: String,
    /// The host to connect to (`registry-1.docker.io` for `docker.io`).
    endpoint: String,
    insecure: bool,
    agent: Agent,
    credentials: Option<Credentials>,
    options: ClientOptions,
    state: Mutex<ClientState>,
}

impl RegistryClient {
    /// A client for `registry` (`host[:port]`), with registry-wide credentials.
    pub fn new(registry: &str, options: &ClientOptions) -> Result<Self, DistributionError> {
        let credentials = options.credentials.find(registry, "");
        Self::with_credentials(registry, credentials, options)
    }

    /// A client for the registry of `reference`, with the credentials for its repository.
    pub fn for_reference(
        reference: &ImageReference,
        options: &ClientOptions,
    ) -> Result<Self, DistributionError> {
        let credentials = options
            .credentials
            .find(reference.domain(), reference.path());
        Self::with_credentials(reference.domain(), credentials, options)
    }

    fn with_credentials(
        registry: &str,
        credentials: Option<Credentials>,
        options: &ClientOptions,
    ) -> Result<Self, DistributionError> {
        let endpoint = match registry {
            crate::reference::DEFAULT_DOMAIN => "registry-1.docker.io".to_owned(),
            other => other.to_owned(),
        };
        let insecure = is_insecure(registry, &options.insecure_registries)
            || is_insecure(&endpoint, &options.insecure_registries);
        let agent = build_agent(&endpoint, insecure, options)?;
        Ok(Self {
            registry: registry.to_owned(),
            endpoint,
            insecure,
            agent,
            credentials,
            options: options.clone(),
            state: Mutex::new(ClientState::default()),
        })
    }

    /// The registry's name as references give it.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Whether credentials are being used.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    pub(crate) fn options(&self) -> &ClientOptions {
        &self.options
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ClientState> {
        // A panic in another thread while holding the lock leaves plain data behind: use it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `scheme://host`, learning scheme and authentication from `GET /v2/` the first time.
    pub(crate) fn base(&self) -> Result<String, DistributionError> {
        if let Some(base) = self.state().base.clone() {
            return Ok(base);
        }
        let schemes: &[&str] = if self.insecure {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut last_error = None;
        for (i, scheme) in schemes.iter().enumerate() {
            let base = format!("{scheme}://{}", self.endpoint);
            let url = format!("{base}/v2/");
            match self.agent.get(&url).call() {
                Ok(response) => {
                    let auth = self.ping_result(response)?;
                    let mut state = self.state();
                    state.base = Some(base.clone());
                    if state.scheme.is_none() {
                        state.scheme = Some(auth);
                    }
                    return Ok(base);
                }
                Err(error) => {
                    let error =
                        self.transport_error(&self.endpoint, error, "connect", scheme == &"https");
                    // An insecure host that does not speak TLS is tried again over plain HTTP.
                    let retry = i + 1 < schemes.len()
                        && matches!(
                            error,
                            DistributionError::Tls { .. }
                                | DistributionError::Protocol { .. }
                                | DistributionError::Transfer { .. }
                        );
                    tracing::debug!(registry = %self.registry, %scheme, %error, "ping failed");
                    if !retry {
                        return Err(error);
                    }
                    last_error = Some(error);
                }
            }
        }
        Err(
            last_error.unwrap_or_else(|| DistributionError::Unreachable {
                host: self.registry.clone(),
                reason: "no scheme to try".to_owned(),
                hint: String::new(),
            }),
        )
    }

    fn ping_result(&self, mut response: Response<Body>) -> Result<AuthScheme, DistributionError> {
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(AuthScheme::Anonymous),
            401 => {
                let challenges = challenges_of(&response);
                scheme_from(&challenges).ok_or_else(|| DistributionError::Protocol {
                    host: self.registry.clone(),
                    operation: "GET /v2/".to_owned(),
                    reason: "401 without a Basic or Bearer challenge".to_owned(),
                })
            }
            404 => Err(DistributionError::Protocol {
                host: self.registry.clone(),
                operation: "GET /v2/".to_owned(),
                reason: "404: it does not serve the registry API (/v2/)".to_owned(),
            }),
            _ => {
                let body = read_small(&mut response);
                Err(DistributionError::Registry {
                    host: self.registry.clone(),
                    operation: "GET /v2/".to_owned(),
                    status,
                    detail: registry_detail(&body, status),
                })
            }
        }
    }

    /// Sends a request with the authentication its scopes need, refreshing a token and
    /// retrying once on a `401` when the body can be sent again.
    pub(crate) fn send(
        &self,
        request: RegistryRequest<'_>,
    ) -> Result<Response<Body>, DistributionError> {
        let base = self.base()?;
        let same_origin = request.url.starts_with(&format!("{base}/"));
        let mut wanted = ScopeSet::of(request.scopes);
        let RegistryRequest {
            method,
            url,
            headers,
            body,
            operation,
            ..
        } = request;
        let mut body = Some(body);
        let mut retried = false;
        loop {
            let authorization = if same_origin {
                self.authorization(&wanted)?
            } else {
                None
            };
            let replayable = !matches!(body, Some(RequestBody::Stream { .. }));
            let this_body = if replayable {
                match &body {
                    Some(RequestBody::Bytes(bytes)) => RequestBody::Bytes(bytes),
                    _ => RequestBody::Empty,
                }
            } else {
                body.take().unwrap_or(RequestBody::Empty)
            };
            let response = self.raw(
                &method,
                &url,
                &headers,
                this_body,
                authorization.as_ref(),
                operation,
            )?;
            if response.status().as_u16() != 401 || retried || !same_origin || !replayable {
                return Ok(response);
            }
            retried = true;
            let challenges = challenges_of(&response);
            match scheme_from(&challenges) {
                Some(AuthScheme::Bearer { realm, service }) => {
                    if let Some(scope) = challenges
                        .iter()
                        .find(|c| c.is("bearer"))
                        .and_then(|c| c.param("scope"))
                    {
                        let mut named = ScopeSet::default();
                        named.add_all(scope);
                        wanted = wanted.union(&named);
                    }
                    let mut state = self.state();
                    state.scheme = Some(AuthScheme::Bearer { realm, service });
                    // The token in hand was not enough: forget every token for these scopes.
                    state.tokens.retain(|t| !t.scopes.covers(&wanted));
                }
                Some(AuthScheme::Basic) if self.credentials.is_some() => {
                    let mut state = self.state();
                    if matches!(state.scheme, Some(AuthScheme::Basic)) {
                        return Ok(response); // the credentials were sent and refused
                    }
                    state.scheme = Some(AuthScheme::Basic);
                }
                _ => return Ok(response),
            }
            tracing::debug!(registry = %self.registry, operation, "retrying with new authorization");
        }
    }

    /// The `Authorization` header for `wanted`, fetching a token if needed.
    fn authorization(&self, wanted: &ScopeSet) -> Result<Option<Secret>, DistributionError> {
        let scheme = self.state().scheme.clone();
        match scheme {
            None | Some(AuthScheme::Anonymous) => Ok(None),
            Some(AuthScheme::Basic) => Ok(self.credentials.as_ref().map(Credentials::basic_header)),
            Some(AuthScheme::Bearer { realm, service }) => {
                {
                    let state = self.state();
                    let now = Instant::now();
                    if let Some(token) = state
                        .tokens
                        .iter()
                        .find(|t| t.expires > now && t.scopes.covers(wanted))
                    {
                        return Ok(Some(Secret::new(format!(
                            "Bearer {}",
                            token.token.expose()
                        ))));
                    }
                }
                let token = self.fetch_token(&realm, service.as_deref(), wanted)?;
                let header = Secret::new(format!("Bearer {}", token.token.expose()));
                let mut state = self.state();
                state.tokens.retain(|t| t.expires > Instant::now());
                state.tokens.push(token);
                Ok(Some(header))
            }
        }
    }

    /// Makes sure requests for `scopes` will carry a valid authorization (used before a
    /// streamed upload, which cannot be replayed after a `401`).
    pub(crate) fn authorize(&self, scopes: &[Scope]) -> Result<(), DistributionError> {
        self.base()?;
        self.authorization(&ScopeSet::of(scopes)).map(|_| ())
    }

    /// Docker token auth: `GET realm?service=..&scope=..` with basic credentials if any.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &ScopeSet,
    ) -> Result<CachedToken, DistributionError> {
        let realm_error = |reason| DistributionError::Realm {
            host: self.registry.clone(),
            realm: sanitize(realm, 200),
            reason,
        };
        let (scheme, rest) = realm
            .split_once("://")
            .ok_or_else(|| realm_error("is not an http(s) URL"))?;
        let realm_host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if realm_host.is_empty() || realm_host.contains('@') {
            return Err(realm_error("has no valid host"));
        }
        let realm_insecure = is_insecure(realm_host, &self.options.insecure_registries);
        match scheme.to_ascii_lowercase().as_str() {
            "https" => {}
            "http" if realm_insecure => {}
            "http" => {
                return Err(realm_error(
                    "is plain HTTP: credentials would travel in clear text (name it with --insecure-registry to allow it)",
                ))
            }
            _ => return Err(realm_error("is not an http(s) URL")),
        }
        let mut url = realm.to_owned();
        let mut separator = if url.contains('?') { '&' } else { '?' };
        if let Some(service) = service {
            url.push(separator);
            url.push_str("service=");
            url.push_str(&percent_encode(service));
            separator = '&';
        }
        for scope in scopes.strings() {
            url.push(separator);
            url.push_str("scope=");
            url.push_str(&percent_encode(&scope));
            separator = '&';
        }
        let agent = self.realm_agent(realm_host, realm_insecure)?;
        let mut builder = http::Request::get(&url);
        if let Some(credentials) = &self.credentials {
            builder = builder.header("Authorization", credentials.basic_header().expose());
        }
        let request = builder.body(()).map_err(|e| DistributionError::Protocol {
            host: self.registry.clone(),
            operation: "token request".to_owned(),
            reason: e.to_string(),
        })?;
        tracing::debug!(registry = %self.registry, realm = %sanitize(realm, 200), scopes = %scopes.key(), "requesting token");
        let mut response = agent
            .run(request)
            .map_err(|e| self.transport_error(realm_host, e, "token request", scheme == "https"))?;
        let status = response.status().as_u16();
        let body = read_small(&mut response);
        match status {
            200..=299 => {}
            401 | 403 => {
                return Err(DistributionError::AuthRefused {
                    host: self.registry.clone(),
                    detail: registry_detail(&body, status),
                    hint: self.login_hint(),
                })
            }
            _ => {
                return Err(DistributionError::Registry {
                    host: self.registry.clone(),
                    operation: "token request".to_owned(),
                    status,
                    detail: registry_detail(&body, status),
                })
            }
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| DistributionError::Protocol {
                host: self.registry.clone(),
                operation: "token request".to_owned(),
                reason: "the token server's answer is not the expected JSON".to_owned(),
            })?;
        let token = parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| DistributionError::Protocol {
                host: self.registry.clone(),
                operation: "token request".to_owned(),
                reason: "the token server sent no token".to_owned(),
            })?;
        if token.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(DistributionError::Protocol {
                host: self.registry.clone(),
                operation: "token request".to_owned(),
                reason: "the token has characters not allowed in a header".to_owned(),
            });
        }
        let lifetime =
            Duration::from_secs(parsed.expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME).max(1));
        let lifetime = lifetime
            .saturating_sub(TOKEN_MARGIN)
            .max(Duration::from_secs(1));
        Ok(CachedToken {
            scopes: scopes.clone(),
            token: Secret::new(token),
            expires: Instant::now() + lifetime,
        })
    }

    fn realm_agent(&self, host: &str, insecure: bool) -> Result<Agent, DistributionError> {
        if host == self.endpoint {
            return Ok(self.agent.clone());
        }
        if let Some((_, agent)) = self.state().realm_agents.iter().find(|(h, _)| h == host) {
            return Ok(agent.clone());
        }
        let agent = build_agent(host, insecure, &self.options)?;
        self.state()
            .realm_agents
            .push((host.to_owned(), agent.clone()));
        Ok(agent)
    }

    /// One HTTP exchange, transport errors mapped.
    fn raw(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&'static str, String)],
        body: RequestBody<'_>,
        authorization: Option<&Secret>,
        operation: &str,
    ) -> Result<Response<Body>, DistributionError> {
        let mut builder = http::Request::builder().method(method.clone()).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        if let Some(authorization) = authorization {
            builder = builder.header("Authorization", authorization.expose());
        }
        let protocol = |e: http::Error| DistributionError::Protocol {
            host: self.registry.clone(),
            operation: operation.to_owned(),
            reason: sanitize(&e.to_string(), 200),
        };
        tracing::debug!(registry = %self.registry, %method, url = %sanitize(url, 300), "request");
        let https = url.starts_with("https://");
        let result = match body {
            RequestBody::Empty if matches!(*method, Method::GET | Method::HEAD) => {
                self.agent.run(builder.body(()).map_err(protocol)?)
            }
            RequestBody::Empty => self.agent.run(
                builder
                    .header("Content-Length", "0")
                    .body(SendBody::none())
                    .map_err(protocol)?,
            ),
            RequestBody::Bytes(bytes) => {
                let mut slice = bytes;
                self.agent.run(
                    builder
                        .header("Content-Length", bytes.len().to_string())
                        .body(SendBody::from_reader(&mut slice))
                        .map_err(protocol)?,
                )
            }
            RequestBody::Stream { reader, length } => self.agent.run(
                builder
                    .header("Content-Length", length.to_string())
                    .body(SendBody::from_reader(reader))
                    .map_err(protocol)?,
            ),
        };
        result.map_err(|e| self.transport_error(&self.endpoint, e, operation, https))
    }

    /// Turns a ureq error into a one-line [`DistributionError`] with a hint.
    pub(crate) fn transport_error(
        &self,
        host: &str,
        error: ureq::Error,
        operation: &str,
        https: bool,
    ) -> DistributionError {
        let host_name = if host == self.endpoint {
            self.registry.clone()
        } else {
            host.to_owned()
        };
        let unreachable_hint = if https && !self.insecure {
            format!("is it running? use --insecure-registry {host_name} for plain HTTP")
        } else {
            "is it running?".to_owned()
        };
        let unreachable = |reason: String| DistributionError::Unreachable {
            host: host_name.clone(),
            reason,
            hint: unreachable_hint.clone(),
        };
        match error {
            // rustls reports handshake failures (unknown CA, a plain-HTTP server) as
            // InvalidData I/O errors.
            ureq::Error::Io(e) if https && e.kind() == std::io::ErrorKind::InvalidData => {
                self.tls_error(host_name, &e.to_string())
            }
            ureq::Error::Io(e) => match e.kind() {
                std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::NotFound
                | std::io::ErrorKind::HostUnreachable
                | std::io::ErrorKind::NetworkUnreachable => unreachable(io_reason(&e)),
                _ => DistributionError::Transfer {
                    host: host_name,
                    operation: operation.to_owned(),
                    reason: io_reason(&e),
                },
            },
            ureq::Error::HostNotFound => unreachable("host not found".to_owned()),
            ureq::Error::ConnectionFailed => unreachable("connection failed".to_owned()),
            ureq::Error::Timeout(timeout) => {
                let phase = timeout.to_string();
                if matches!(timeout, ureq::Timeout::Connect | ureq::Timeout::Resolve) {
                    unreachable(format!("timed out ({phase})"))
                } else {
                    DistributionError::Transfer {
                        host: host_name,
                        operation: operation.to_owned(),
                        reason: format!("timed out ({phase})"),
                    }
                }
            }
            ureq::Error::Rustls(e) => self.tls_error(host_name, &e.to_string()),
            ureq::Error::Tls(message) => self.tls_error(host_name, message),
            ureq::Error::Pem(_) => self.tls_error(host_name, "invalid PEM data"),
            other => DistributionError::Protocol {
                host: host_name,
                operation: operation.to_owned(),
                reason: sanitize(&other.to_string(), 200),
            },
        }
    }

    fn tls_error(&self, host: String, reason: &str) -> DistributionError {
        let lower = reason.to_ascii_lowercase();
        let hint = if lower.contains("corrupt message") || lower.contains("invalidcontenttype") {
            format!("it may speak plain HTTP; use --insecure-registry {host} to allow that")
        } else {
            let certs = self
                .options
                .config_dir
                .as_ref()
                .map(|dir| {
                    tls::certs_dir(dir, &host)
                        .join("ca.crt")
                        .display()
                        .to_string()
                })
                .unwrap_or_else(|| format!("certs.d/{host}/ca.crt"));
            format!(
                "trust its CA with --ca-cert FILE or {certs}, or use --insecure-registry {host}"
            )
        };
        DistributionError::Tls {
            host,
            reason: sanitize(reason, 200),
            hint,
        }
    }

    pub(crate) fn login_hint(&self) -> String {
        if self.credentials.is_some() {
            format!(
                "check the user name and password, then `palisade login {}`",
                self.registry
            )
        } else {
            format!("log in with `palisade login {}`", self.registry)
        }
    }

    /// The error for an unexpected status (401 and 403 become auth errors).
    pub(crate) fn status_error(
        &self,
        mut response: Response<Body>,
        operation: &str,
    ) -> DistributionError {
        let status = response.status().as_u16();
        let body = read_small(&mut response);
        let detail = registry_detail(&body, status);
        match status {
            401 => DistributionError::AuthRefused {
                host: self.registry.clone(),
                detail,
                hint: self.login_hint(),
            },
            403 => DistributionError::AccessDenied {
                host: self.registry.clone(),
                operation: operation.to_owned(),
                detail,
            },
            _ => DistributionError::Registry {
                host: self.registry.clone(),
                operation: operation.to_owned(),
                status,
                detail,
            },
        }
    }

    /// Checks that the credentials are accepted: `GET /v2/` with them (fetching a token
    /// first for a token-auth registry).
    pub fn check_login(&self) -> Result<(), DistributionError> {
        let base = self.base()?;
        if matches!(self.state().scheme, Some(AuthScheme::Anonymous)) {
            tracing::info!(registry = %self.registry, "the registry needs no authentication");
        }
        let url = format!("{base}/v2/");
        let response = self.send(RegistryRequest::new(Method::GET, url, &[], "log in"))?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(self.status_error(response, "log in"))
    }

    /// `GET /v2/<repository>/manifests/<tag or digest>`. With `expected`, the bytes must hash
    /// to it; otherwise they must match the registry's `Docker-Content-Digest` when it sends
    /// one.
    pub fn fetch_manifest(
        &self,
        repository: &str,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<FetchedManifest, DistributionError> {
        let base = self.base()?;
        let separator = if reference.contains(':') { '@' } else { ':' };
        let display = format!("{}/{repository}{separator}{reference}", self.registry);
        let operation = format!("pull manifest {display}");
        let scopes = [Scope::pull(repository)];
        let request = RegistryRequest::new(
            Method::GET,
            format!("{base}/v2/{repository}/manifests/{reference}"),
            &scopes,
            &operation,
        )
        .header("Accept", ACCEPTED_MANIFESTS.join(", "));
        let mut response = self.send(request)?;
        let status = response.status().as_u16();
        if status == 404 {
            let body = read_small(&mut response);
            return Err(DistributionError::ImageNotFound {
                reference: display,
                detail: registry_detail(&body, status),
            });
        }
        if !response.status().is_success() {
            return Err(self.status_error(response, &operation));
        }
        let media_type = header(&response, "content-type")
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
            .filter(|v| !v.is_empty());
        let announced =
            header(&response, "docker-content-digest").and_then(|v| Digest::parse(v.trim()).ok());
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(MAX_MANIFEST_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| DistributionError::Transfer {
                host: self.registry.clone(),
                operation: operation.clone(),
                reason: io_reason(&e),
            })?;
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(DistributionError::ManifestTooLarge {
                host: self.registry.clone(),
                reference: display,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let check = expected.or(announced.as_ref());
        let digest = match check {
            Some(expected) => {
                let mut hasher = Hasher::new(expected.algorithm());
                hasher.update(&bytes);
                let actual = hasher.finish();
                if actual != *expected {
                    return Err(DistributionError::DigestMismatch {
                        host: self.registry.clone(),
                        what: "manifest",
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            None => Digest::of(&bytes),
        };
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// `HEAD /v2/<repository>/blobs/<digest>`: the blob's size when the registry has it.
    pub fn blob_exists(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, DistributionError> {
        let base = self.base()?;
        let operation = format!("check blob {digest} in {repository}");
        let scopes = [Scope::pull(repository)];
        let response = self.send(RegistryRequest::new(
            Method::HEAD,
            format!("{base}/v2/{repository}/blobs/{digest}"),
            &scopes,
            &operation,
        ))?;
        match response.status().as_u16() {
            200..=299 => Ok(Some(
                header(&response, "content-length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            _ => Err(self.status_error(response, &operation)),
        }
    }

    /// `GET /v2/<repository>/blobs/<digest>`, from `offset` on when it is not 0. Returns the
    /// response for a 200, 206 or 416; the caller checks which.
    pub(crate) fn blob_response(
        &self,
        repository: &str,
        digest: &Digest,
        offset: u64,
        operation: &str,
    ) -> Result<Response<Body>, DistributionError> {
        let base = self.base()?;
        let scopes = [Scope::pull(repository)];
        let mut request = RegistryRequest::new(
            Method::GET,
            format!("{base}/v2/{repository}/blobs/{digest}"),
            &scopes,
            operation,
        );
        if offset > 0 {
            request = request.header("Range", format!("bytes={offset}-"));
        }
        let response = self.send(request)?;
        match response.status().as_u16() {
            200 | 206 | 416 => Ok(response),
            404 => Err(DistributionError::BlobNotFound {
                host: self.registry.clone(),
                repository: repository.to_owned(),
                digest: digest.clone(),
            }),
            _ => Err(self.status_error(response, operation)),
        }
    }
}

fn build_agent(
    host: &str,
    insecure: bool,
    options: &ClientOptions,
) -> Result<Agent, DistributionError> {
    let tls = tls::tls_config(
        host,
        insecure,
        &options.ca_certs,
        options.config_dir.as_deref(),
    )?;
    Ok(Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(5)
        .user_agent(concat!("palisade/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(options.connect_timeout))
        .timeout_per_read(Some(options.io_timeout))
        .timeout_per_write(Some(options.io_timeout))
        .build()
        .new_agent())
}

fn challenges_of(response: &Response<Body>) -> Vec<Challenge> {
    response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .collect()
}

/// Bearer wins over Basic when a registry offers both.
fn scheme_from(challenges: &[Challenge]) -> Option<AuthScheme> {
    if let Some(bearer) = challenges.iter().find(|c| c.is("bearer")) {
        let realm = bearer.param("realm")?.to_owned();
        return Some(AuthScheme::Bearer {
            realm,
            service: bearer.param("service").map(str::to_owned),
        });
    }
    challenges
        .iter()
        .any(|c| c.is("basic"))
        .then_some(AuthScheme::Basic)
}

pub(crate) fn header<'r>(response: &'r Response<Body>, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Reads up to [`SMALL_BODY_LIMIT`] of a body (errors and tokens); a broken body reads empty.
pub(crate) fn read_small(response: &mut Response<Body>) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(SMALL_BODY_LIMIT)
        .read_to_end(&mut bytes);
    bytes
}

/// An I/O error as a short reason, without the "(os error N)" noise doubled up.
pub(crate) fn io_reason(error: &std::io::Error) -> String {
    sanitize(&error.to_string(), 200)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        assert_eq!(
            percent_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(percent_encode("sha256:ab"), "sha256%3Aab");
    }

    #[test]
    fn bearer_is_preferred() {
        let challenges =
            parse_challenges(r#"Basic realm="r", Bearer realm="https://a/t",service="s""#);
        assert!(matches!(
            scheme_from(&challenges),
            Some(AuthScheme::Bearer { .. })
        ));
        let basic = parse_challenges(r#"Basic realm="r""#);
        assert!(matches!(scheme_from(&basic), Some(AuthScheme::Basic)));
        assert!(scheme_from(&parse_challenges("Bearer service=x")).is_none());
    }

    /// A one-thread HTTP server answering each connection with the next of `responses`,
    /// recording what each sent (a request head, or a TLS hello for an HTTPS attempt).
    fn serve(responses: Vec<&'static str>) -> (u16, std::sync::Arc<Mutex<Vec<String>>>) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for response in responses {
                let (mut stream, _) = listener.accept().unwrap();
                // Requests are small: on loopback they arrive in one read.
                let mut buffer = vec![0u8; 16 << 10];
                let n = stream.read(&mut buffer).unwrap_or(0);
                record
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buffer[..n]).into_owned());
                let _ = stream.write_all(response.as_bytes());
            }
        });
        (port, seen)
    }

    const BASIC_CHALLENGE: &str = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

    fn plain_options(insecure: &str, credentials: Option<Credentials>) -> ClientOptions {
        let mut store = super::super::CredentialStore::none();
        if let Some(credentials) = credentials {
            store = store.with_credentials(insecure, credentials);
        }
        ClientOptions {
            insecure_registries: vec![insecure.to_owned()],
            credentials: store,
            config_dir: None,
            ..ClientOptions::default()
        }
    }

    #[test]
    fn credentials_go_to_the_registry_only() {
        // The registry: a TLS attempt (dropped), the ping, then one request.
        let (registry, registry_seen) = serve(vec![OK, BASIC_CHALLENGE, OK]);
        let (elsewhere, elsewhere_seen) = serve(vec![OK]);
        let host = format!("127.0.0.1:{registry}");
        let options = plain_options(&host, Some(Credentials::new("u", Secret::new("pw"))));
        let client = RegistryClient::new(&host, &options).unwrap();
        let base = client.base().unwrap();
        assert_eq!(base, format!("http://{host}"));
        let same = client
            .send(RegistryRequest::new(
                Method::GET,
                format!("{base}/v2/a/tags/list"),
                &[],
                "t",
            ))
            .unwrap();
        assert_eq!(same.status().as_u16(), 200);
        let foreign = client
            .send(RegistryRequest::new(
                Method::GET,
                format!("http://127.0.0.1:{elsewhere}/upload"),
                &[],
                "t",
            ))
            .unwrap();
        assert_eq!(foreign.status().as_u16(), 200);
        let registry_seen = registry_seen.lock().unwrap();
        let last = registry_seen.last().unwrap();
        assert!(last.contains("authorization: Basic dTpwdw=="), "{last}");
        let elsewhere_seen = elsewhere_seen.lock().unwrap();
        assert!(
            !elsewhere_seen[0]
                .to_ascii_lowercase()
                .contains("authorization"),
            "{elsewhere_seen:?}"
        );
    }

    #[test]
    fn plain_http_token_realms_need_to_be_named_insecure() {
        let options = plain_options(
            "registry.invalid",
            Some(Credentials::new("u", Secret::new("pw"))),
        );
        let client = RegistryClient::new("registry.invalid", &options).unwrap();
        let error = client
            .fetch_token("http://auth.invalid/token", Some("s"), &ScopeSet::default())
            .unwrap_err();
        assert!(
            matches!(error, DistributionError::Realm { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("clear text"), "{error}");
        for realm in [
            "ftp://auth.invalid/t",
            "https://user@auth.invalid/t",
            "nonsense",
        ] {
            assert!(matches!(
                client.fetch_token(realm, None, &ScopeSet::default()),
                Err(DistributionError::Realm { .. })
            ));
        }
    }

    #[test]
    fn docker_hub_uses_its_api_host() {
        let options = ClientOptions {
            credentials: super::super::CredentialStore::none(),
            config_dir: None,
            ..ClientOptions::default()
        };
        let client = RegistryClient::new("docker.io", &options).unwrap();
        assert_eq!(client.endpoint, "registry-1.docker.io");
        assert!(!client.insecure);
        let local = RegistryClient::new(
            "localhost:5000",
            &ClientOptions {
                insecure_registries: vec!["localhost:5000".to_owned()],
                ..options
            },
        )
        .unwrap();
        assert!(local.insecure);
    }
}
