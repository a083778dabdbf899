//! The distribution client's error type: one line each, no secrets, with what to do.

use std::io;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::manifest::ManifestError;
use crate::store::StoreError;

/// What went wrong talking to a registry, or keeping credentials.
///
/// Every message is one line. Text a registry sent (error codes and messages) is cut to a few
/// hundred characters with control characters removed; credentials and tokens never appear.
#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    /// No connection could be made (refused, unknown host, timed out).
    #[error("cannot reach registry {host}: {reason} ({hint})")]
    Unreachable {
        /// The registry.
        host: String,
        /// What the connection attempt said.
        reason: String,
        /// What to check.
        hint: String,
    },
    /// The TLS handshake failed (unknown CA, wrong name, a plain-HTTP server).
    #[error("TLS connection to registry {host} failed: {reason} ({hint})")]
    Tls {
        /// The registry (or token server).
        host: String,
        /// What rustls said.
        reason: String,
        /// What to do.
        hint: String,
    },
    /// The registry or its token server refused the credentials (or their absence): HTTP 401.
    #[error("registry {host} refused authentication: {detail} ({hint})")]
    AuthRefused {
        /// The registry.
        host: String,
        /// The registry's error code and message.
        detail: String,
        /// What to do.
        hint: String,
    },
    /// The credentials are valid but do not allow the operation: HTTP 403.
    #[error("registry {host} denied {operation}: {detail}")]
    AccessDenied {
        /// The registry.
        host: String,
        /// What was attempted.
        operation: String,
        /// The registry's error code and message.
        detail: String,
    },
    /// No such repository, tag or manifest on the registry.
    #[error("unknown image {reference}: {detail}")]
    ImageNotFound {
        /// The reference pulled.
        reference: String,
        /// The registry's error code and message.
        detail: String,
    },
    /// A blob a manifest lists is not on the registry.
    #[error("registry {host} has no blob {digest} in {repository}")]
    BlobNotFound {
        /// The registry.
        host: String,
        /// The repository.
        repository: String,
        /// The blob.
        digest: Digest,
    },
    /// Content from the registry does not hash to the digest that names it; nothing was kept.
    #[error("digest mismatch for {what} from {host}: expected {expected}, got {actual}; nothing was kept")]
    DigestMismatch {
        /// The registry.
        host: String,
        /// "manifest", "layer", "config".
        what: &'static str,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what came.
        actual: Digest,
    },
    /// Content from the registry has another size than its descriptor says; nothing was kept.
    #[error("size mismatch for {what} {digest} from {host}: expected {expected} bytes, got {actual}{more}; nothing was kept", more = if *.exceeded { " or more" } else { "" })]
    SizeMismatch {
        /// The registry.
        host: String,
        /// "manifest", "layer", "config".
        what: &'static str,
        /// The digest.
        digest: Digest,
        /// The size the descriptor gives.
        expected: u64,
        /// The size seen.
        actual: u64,
        /// Whether the transfer was stopped for running past the expected size.
        exceeded: bool,
    },
    /// A manifest larger than Palisade accepts.
    #[error("manifest {reference} from {host} is larger than {limit} bytes")]
    ManifestTooLarge {
        /// The registry.
        host: String,
        /// What was fetched.
        reference: String,
        /// The limit.
        limit: u64,
    },
    /// A manifest, index or config the registry sent is not acceptable.
    #[error("invalid {what} from {host}")]
    Manifest {
        /// The registry.
        host: String,
        /// "manifest", "index", "image config".
        what: &'static str,
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// The registry answered with an unexpected status.
    #[error("registry {host} answered {status} to {operation}: {detail}")]
    Registry {
        /// The registry.
        host: String,
        /// What was attempted.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error code and message.
        detail: String,
    },
    /// The registry's answer does not follow the distribution spec.
    #[error("registry {host} sent an invalid answer to {operation}: {reason}")]
    Protocol {
        /// The registry.
        host: String,
        /// What was attempted.
        operation: String,
        /// What is wrong.
        reason: String,
    },
    /// The connection broke or timed out in the middle of a transfer.
    #[error("transfer with registry {host} failed during {operation}: {reason} (run the command again to resume)")]
    Transfer {
        /// The registry.
        host: String,
        /// What was attempted.
        operation: String,
        /// What the transport said.
        reason: String,
    },
    /// The token realm a registry names is not usable.
    #[error("registry {host} names token server {realm:?}, which {reason}")]
    Realm {
        /// The registry.
        host: String,
        /// The realm URL (cut to 200 characters).
        realm: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A destination that does not fit what is pushed.
    #[error("cannot push to {destination}: {reason}")]
    Destination {
        /// The destination reference.
        destination: String,
        /// Why.
        reason: String,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local file (partial download, auth file, certificate) could not be used.
    #[error("failed to {action} {path:?}")]
    File {
        /// "read", "write", "lock", ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An auth file that is not valid JSON of the expected shape.
    #[error("invalid auth file {path:?}: {reason}")]
    AuthFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the secret itself).
        reason: String,
    },
    /// A CA certificate or client certificate file that cannot be used.
    #[error("invalid certificate file {path:?}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Neither `$XDG_CONFIG_HOME` nor `$HOME` is set.
    #[error("cannot find the configuration directory: set XDG_CONFIG_HOME or HOME")]
    NoConfigDir,
    /// `logout` for a registry without stored credentials.
    #[error("not logged in to {host} (no credentials for it in {path:?})")]
    NotLoggedIn {
        /// The registry.
        host: String,
        /// Palisade's auth file.
        path: PathBuf,
    },
}

impl DistributionError {
    /// Whether retrying the same transfer could succeed (a broken connection), as opposed to a
    /// refusal, a missing image or bad content.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transfer { .. })
    }
}

/// Registry-sent text made safe for a one-line message: control characters become spaces and
/// the text is cut to `limit` characters.
pub(crate) fn sanitize(text: &str, limit: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(limit)
        .collect();
    if text.chars().count() > limit {
        out.push('…');
    }
    out.trim().to_owned()
}

/// The `errors` array of a distribution-spec error body, as `CODE: message; ...`.
pub(crate) fn registry_detail(body: &[u8], status: u16) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Entry>,
        // Token servers (Docker Hub's, for one) use these instead.
        #[serde(default)]
        details: Option<String>,
        #[serde(default)]
        error: Option<serde_json::Value>,
        #[serde(default)]
        message: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let reason = http_reason(status);
    let Ok(parsed) = serde_json::from_slice::<Body>(body) else {
        return format!("{status} {reason}");
    };
    let mut parts: Vec<String> = parsed
        .errors
        .iter()
        .take(3)
        .map(|e| match (&e.code, &e.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            (None, Some(message)) => message.clone(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        if let Some(text) = parsed.details.or(parsed.message) {
            parts.push(text);
        } else if let Some(serde_json::Value::String(text)) = parsed.error {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        return format!("{status} {reason}");
    }
    sanitize(&parts.join("; "), 300)
}

fn http_reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_become_one_short_line() {
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication\nrequired","detail":[{"Type":"repository"}]}]}"#;
        assert_eq!(
            registry_detail(body, 401),
            "UNAUTHORIZED: authentication required"
        );
        assert_eq!(registry_detail(b"<html>", 404), "404 Not Found");
        assert_eq!(
            registry_detail(br#"{"details":"incorrect username or password"}"#, 401),
            "incorrect username or password"
        );
        let long = format!(
            r#"{{"errors":[{{"code":"X","message":"{}"}}]}}"#,
            "a".repeat(1000)
        );
        assert!(registry_detail(long.as_bytes(), 500).chars().count() <= 301);
    }

    #[test]
    fn sanitize_strips_control_characters() {
        assert_eq!(sanitize("a\r\nb\x1b[31m", 100), "a  b [31m");
    }
}
