//! `WWW-Authenticate` challenge values.
//!
//! Values are built only from configuration (realm, service — validated to hold no quotes or
//! control characters) and from scopes we parsed or built (repository names from the OCI
//! grammar), so no request data can inject header syntax.

use std::fmt::Write;

use super::scope::Scope;

/// `Basic realm="<realm>",charset="UTF-8"`.
pub fn basic_challenge(realm: &str) -> String {
    format!("Basic realm=\"{}\",charset=\"UTF-8\"", sanitize(realm))
}

/// The `error` parameter of a Bearer challenge (RFC 6750).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerChallengeError {
    /// The token is expired, forged or otherwise unusable.
    InvalidToken,
    /// The token is fine but lacks the scope.
    InsufficientScope,
}

/// `Bearer realm="<realm>",service="<service>"[,scope="<s1> <s2>"][,error="..."]`.
pub fn bearer_challenge(
    realm: &str,
    service: &str,
    scopes: &[Scope],
    error: Option<BearerChallengeError>,
) -> String {
    let mut value = format!(
        "Bearer realm=\"{}\",service=\"{}\"",
        sanitize(realm),
        sanitize(service)
    );
    if !scopes.is_empty() {
        let joined: Vec<String> = scopes.iter().map(Scope::to_string).collect();
        let _ = write!(value, ",scope=\"{}\"", sanitize(&joined.join(" ")));
    }
    match error {
        Some(BearerChallengeError::InvalidToken) => value.push_str(",error=\"invalid_token\""),
        Some(BearerChallengeError::InsufficientScope) => {
            value.push_str(",error=\"insufficient_scope\"")
        }
        None => {}
    }
    value
}

/// Drop characters that would break a quoted-string (defence in depth; config validation
/// already refuses them).
fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::action::{Action, ActionSet};

    #[test]
    fn formats_like_the_spec() {
        assert_eq!(
            basic_challenge("palisade"),
            "Basic realm=\"palisade\",charset=\"UTF-8\""
        );
        let scope = Scope::repository(
            "samalba/my-app",
            ActionSet::of(Action::Pull).with(Action::Push),
        );
        assert_eq!(
            bearer_challenge("https://auth.example/token", "registry.example", &[scope], None),
            "Bearer realm=\"https://auth.example/token\",service=\"registry.example\",scope=\"repository:samalba/my-app:pull,push\""
        );
        assert_eq!(
            bearer_challenge("r", "s", &[], Some(BearerChallengeError::InsufficientScope)),
            "Bearer realm=\"r\",service=\"s\",error=\"insufficient_scope\""
        );
        assert_eq!(
            basic_challenge("a\"b\r\nc"),
            "Basic realm=\"abc\",charset=\"UTF-8\""
        );
    }
}
