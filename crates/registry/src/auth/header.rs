//! Strict parsing of the `Authorization` request header.
//!
//! Accepted: `Basic <base64>` where the base64 is the standard alphabet with correct padding
//! and decodes to UTF-8 `user:password` (user non-empty, no control characters); and
//! `Bearer <token>` where the token is the JWS compact characters `[A-Za-z0-9._~+/=-]`. The
//! scheme is case-insensitive (RFC 9110), exactly one space follows it, and nothing else is
//! tolerated (no trailing data, no second credential, no parameters).

use base64::Engine;

use super::password::{Password, MAX_PASSWORD_LEN};

/// The longest `Authorization` value looked at.
pub const MAX_AUTHORIZATION_LEN: usize = 8192;

/// A parsed `Authorization` header.
#[derive(Debug)]
pub enum Credentials {
    /// `Basic`: a user (or `robot$name`) and a password (or robot token).
    Basic {
        /// The user name as sent.
        username: String,
        /// The password.
        password: Password,
    },
    /// `Bearer`: a token from the token service.
    Bearer(BearerToken),
}

/// A bearer token string; `Debug` does not print it.
#[derive(Clone)]
pub struct BearerToken(String);

impl BearerToken {
    /// The token. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken([redacted])")
    }
}

/// Why an `Authorization` header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Longer than [`MAX_AUTHORIZATION_LEN`].
    #[error("authorization header too long")]
    TooLong,
    /// A scheme other than Basic or Bearer.
    #[error("unsupported authorization scheme")]
    UnsupportedScheme,
    /// Not `<scheme> <credentials>` with a single space.
    #[error("malformed authorization header")]
    Malformed,
    /// The Basic payload is not valid base64.
    #[error("malformed base64 in basic credentials")]
    Base64,
    /// The Basic payload is not UTF-8 `user:password`.
    #[error("basic credentials are not user:password")]
    NotUserPassword,
    /// The bearer token has characters no JWS has.
    #[error("malformed bearer token")]
    BearerToken,
}

/// Parse an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Result<Credentials, HeaderError> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(HeaderError::TooLong);
    }
    let (scheme, rest) = value.split_once(' ').ok_or(HeaderError::Malformed)?;
    if rest.is_empty() || rest.contains([' ', '\t']) {
        return Err(HeaderError::Malformed);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        parse_basic(rest)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if !rest.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'-')
        }) {
            return Err(HeaderError::BearerToken);
        }
        Ok(Credentials::Bearer(BearerToken(rest.to_owned())))
    } else {
        Err(HeaderError::UnsupportedScheme)
    }
}

fn parse_basic(encoded: &str) -> Result<Credentials, HeaderError> {
    let decoded = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| HeaderError::Base64)?,
    );
    let text = std::str::from_utf8(&decoded).map_err(|_| HeaderError::NotUserPassword)?;
    let (username, password) = text.split_once(':').ok_or(HeaderError::NotUserPassword)?;
    if username.is_empty()
        || username.len() > 256
        || password.len() > MAX_PASSWORD_LEN
        || text.contains(char::is_control)
    {
        return Err(HeaderError::NotUserPassword);
    }
    Ok(Credentials::Basic {
        username: username.to_owned(),
        password: Password::new(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn basic(raw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn parses_basic() {
        match parse_authorization(&basic("alice:pa:ss word")) {
            Ok(Credentials::Basic { username, password }) => {
                assert_eq!(username, "alice");
                assert_eq!(
                    password.expose(),
                    "pa:ss word",
                    "only the first colon splits"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_authorization(&basic("alice:pw")[..].replace("Basic", "bAsIc")),
            Ok(Credentials::Basic { .. })
        ));
        assert!(matches!(
            parse_authorization(&basic("robot$ci:x")),
            Ok(Credentials::Basic { .. })
        ));
    }

    #[test]
    fn refuses_sloppy_basic() {
        let good = basic("alice:pw");
        let payload = good.trim_start_matches("Basic ");
        for bad in [
            "Basic".to_owned(),
            "Basic ".to_owned(),
            format!("Basic  {payload}"),
            format!("Basic {payload} "),
            format!("Basic {payload}, Basic {payload}"),
            format!("Basic\t{payload}"),
            format!("Basic {}", payload.trim_end_matches('=')),
            format!("Basic {payload}=="),
            "Basic !!!!".to_owned(),
            basic("no-colon"),
            basic(":empty-user"),
            basic("alice:pw\nInjected: yes"),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode([0xff, b':', b'x'])
            ),
            format!("Digest {payload}"),
            format!("Basic {}", "A".repeat(MAX_AUTHORIZATION_LEN)),
        ] {
            assert!(parse_authorization(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_authorization("Negotiate abc").err(),
            Some(HeaderError::UnsupportedScheme)
        );
    }

    #[test]
    fn parses_bearer_strictly() {
        assert!(matches!(
            parse_authorization("Bearer aaa.bbb.ccc"),
            Ok(Credentials::Bearer(_))
        ));
        assert!(matches!(
            parse_authorization("bearer aaa.bbb.ccc"),
            Ok(Credentials::Bearer(_))
        ));
        assert_eq!(
            parse_authorization("Bearer aaa.bbb ccc").err(),
            Some(HeaderError::Malformed)
        );
        assert_eq!(
            parse_authorization("Bearer aaa\"").err(),
            Some(HeaderError::BearerToken)
        );
        let token = match parse_authorization("Bearer secret.token.x") {
            Ok(Credentials::Bearer(t)) => t,
            other => panic!("{other:?}"),
        };
        assert!(!format!("{token:?}").contains("secret"));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(value in ".{0,200}") {
            let _ = parse_authorization(&value);
        }

        #[test]
        fn never_panics_on_arbitrary_basic_payloads(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&bytes));
            if let Ok(Credentials::Basic { username, password }) = parse_authorization(&value) {
                prop_assert!(!username.is_empty());
                prop_assert!(!username.contains(':'));
                let joined = format!("{username}:{}", password.expose());
                prop_assert_eq!(joined.as_bytes(), &bytes[..]);
            }
        }

        #[test]
        fn basic_round_trips(user in "[a-z0-9$._-]{1,30}", pw in "[^\\x00-\\x1f\\x7f-\\x9f]{0,40}") {
            let value = basic(&format!("{user}:{pw}"));
            match parse_authorization(&value) {
                Ok(Credentials::Basic { username, password }) => {
                    prop_assert_eq!(username, user);
                    prop_assert_eq!(password.expose(), pw.as_str());
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
