//! JSON Web Tokens for the Docker token protocol: issuing (signing) and verifying.
//!
//! Tokens are JWS compact serializations with header `{"alg","typ":"JWT","kid"}` and claims
//! `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti` and `access` (the Docker token spec's list
//! of `{type, name, actions}`).
//!
//! Verification is deliberately narrow:
//! - the algorithm is pinned to the configured key's: `alg` must be exactly `ES256` (or
//!   `EdDSA`); `none`, `HS256` (the "public key as HMAC secret" confusion) and every other value
//!   are refused before any cryptography;
//! - `kid`, when present, must be our key's; `jku`, `jwk`, `x5u`, `x5c` are never followed, and a
//!   `crit` header is refused;
//! - segments must be canonical unpadded base64url; the token at most [`MAX_TOKEN_LEN`] bytes;
//! - `iss` must be the configured issuer, `aud` must name the service, `exp`/`nbf`/`iat` are
//!   checked with [`LEEWAY_SECONDS`] of clock skew.
//!
//! Verified tokens are remembered (by SHA-256 of the whole token, bounded, until `exp`) so a
//! client reusing its token pays for the signature check once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::TokenAlgorithm;
use super::keys::{jws_algorithm, SigningKey, VerifyingKey};
use super::random::random_token;
use super::scope::{AccessEntry, Scope};

/// The longest token accepted.
pub const MAX_TOKEN_LEN: usize = 8192;
/// Allowed clock skew for `exp`, `nbf` and `iat`.
pub const LEEWAY_SECONDS: u64 = 10;
/// How many verified tokens are remembered.
pub const VERIFIED_CACHE_CAPACITY: usize = 4096;

/// Why a bearer token was refused. Clients get `invalid_token`; the variant is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments of JSON, or too long.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not the pinned algorithm (includes `none` and `HS256`).
    #[error("token algorithm not accepted")]
    Algorithm,
    /// `kid` names another key, or a `crit` header is present.
    #[error("token header not accepted")]
    Header,
    /// The signature does not verify.
    #[error("bad token signature")]
    Signature,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Before `nbf` or `iat`.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not ours.
    #[error("token issuer not accepted")]
    Issuer,
    /// `aud` does not name this service.
    #[error("token audience not accepted")]
    Audience,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crit: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    #[serde(default)]
    sub: String,
    aud: Audience,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    #[serde(default)]
    access: Vec<AccessEntry>,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    /// `sub`: a user name, `robot$<name>`, or `None` for an anonymous token.
    pub subject: Option<String>,
    /// The granted scopes (entries we would not issue are dropped). Shared, so handing them
    /// to a [`super::Principal`] per request costs no copy.
    pub access: Arc<[Scope]>,
    /// `exp`.
    pub expires_at: u64,
    /// `jti`.
    pub id: String,
}

/// A freshly signed token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The JWS.
    pub token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// `iat`, Unix seconds.
    pub issued_at: u64,
    /// `jti`.
    pub id: String,
}

fn encode_json<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs cannot fail; an empty object would only fail verification.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// Signs access tokens.
#[derive(Debug)]
pub struct TokenSigner {
    key: SigningKey,
    kid: String,
    issuer: String,
    service: String,
    ttl: u64,
}

impl TokenSigner {
    /// A signer for tokens with `iss = issuer`, `aud = service`, valid for `ttl` seconds.
    pub fn new(key: SigningKey, issuer: &str, service: &str, ttl: u64) -> TokenSigner {
        TokenSigner {
            kid: key.verifying_key().key_id(),
            key,
            issuer: issuer.to_owned(),
            service: service.to_owned(),
            ttl,
        }
    }

    /// A verifier for this signer's tokens.
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier::new(self.key.verifying_key(), &self.issuer, &self.service)
    }

    /// The token lifetime in seconds.
    pub fn ttl(&self) -> u64 {
        self.ttl
    }

    /// Sign a token for `subject` (`None`: anonymous) carrying `access`, issued at `now`.
    pub fn issue(&self, subject: Option<&str>, access: &[Scope], now: u64) -> IssuedToken {
        let id = random_token();
        let header = Header {
            alg: jws_algorithm(self.key.algorithm()).to_owned(),
            typ: Some("JWT".to_owned()),
            kid: Some(self.kid.clone()),
            crit: None,
        };
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.unwrap_or_default().to_owned(),
            aud: Audience::One(self.service.clone()),
            exp: now + self.ttl,
            nbf: now,
            iat: now,
            jti: id.clone(),
            access: access.iter().map(AccessEntry::from).collect(),
        };
        let signing_input = format!("{}.{}", encode_json(&header), encode_json(&claims));
        let signature = URL_SAFE_NO_PAD.encode(self.key.sign(signing_input.as_bytes()));
        IssuedToken {
            token: format!("{signing_input}.{signature}"),
            expires_in: self.ttl,
            issued_at: now,
            id,
        }
    }
}

/// Verifies bearer tokens (see the module documentation for what is checked).
#[derive(Debug)]
pub struct TokenVerifier {
    key: VerifyingKey,
    algorithm: TokenAlgorithm,
    kid: String,
    issuer: String,
    service: String,
    verified: Mutex<HashMap<[u8; 32], VerifiedClaims>>,
}

impl TokenVerifier {
    /// A verifier pinned to `key`'s algorithm.
    pub fn new(key: VerifyingKey, issuer: &str, service: &str) -> TokenVerifier {
        TokenVerifier {
            algorithm: key.algorithm(),
            kid: key.key_id(),
            key,
            issuer: issuer.to_owned(),
            service: service.to_owned(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Verify `token` at time `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: u64) -> Result<VerifiedClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        {
            let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(claims) = cache.get(&digest) {
                if claims.expires_at + LEEWAY_SECONDS > now {
                    return Ok(claims.clone());
                }
                cache.remove(&digest);
                return Err(TokenError::Expired);
            }
        }
        let claims = self.verify_uncached(token, now)?;
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= VERIFIED_CACHE_CAPACITY {
            cache.retain(|_, c| c.expires_at + LEEWAY_SECONDS > now);
            if cache.len() >= VERIFIED_CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(digest, claims.clone());
        Ok(claims)
    }

    fn verify_uncached(&self, token: &str, now: u64) -> Result<VerifiedClaims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| TokenError::Malformed)?;
        let header: Header =
            serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
        // Pin the algorithm before touching the signature: no `none`, no HS256-with-public-key.
        if header.alg != jws_algorithm(self.algorithm) {
            return Err(TokenError::Algorithm);
        }
        if header.crit.is_some() || header.kid.as_deref().is_some_and(|kid| kid != self.kid) {
            return Err(TokenError::Header);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| TokenError::Malformed)?;
        let signing_input_len = header_b64.len() + 1 + claims_b64.len();
        if !self
            .key
            .verify(&token.as_bytes()[..signing_input_len], &signature)
        {
            return Err(TokenError::Signature);
        }
        let claims_json = URL_SAFE_NO_PAD
            .decode(claims_b64)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims =
            serde_json::from_slice(&claims_json).map_err(|_| TokenError::Malformed)?;
        if claims.iss != self.issuer {
            return Err(TokenError::Issuer);
        }
        let audience_ok = match &claims.aud {
            Audience::One(aud) => *aud == self.service,
            Audience::Many(auds) => auds.contains(&self.service),
        };
        if !audience_ok {
            return Err(TokenError::Audience);
        }
        if claims.exp.saturating_add(LEEWAY_SECONDS) <= now {
            return Err(TokenError::Expired);
        }
        if claims.nbf > now + LEEWAY_SECONDS || claims.iat > now + LEEWAY_SECONDS {
            return Err(TokenError::NotYetValid);
        }
        Ok(VerifiedClaims {
            subject: (!claims.sub.is_empty()).then_some(claims.sub),
            access: claims
                .access
                .iter()
                .filter_map(AccessEntry::to_scope)
                .collect(),
            expires_at: claims.exp,
            id: claims.jti,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::action::{Action, ActionSet};
    use hmac::{Hmac, Mac};

    const NOW: u64 = 1_800_000_000;

    fn pull(repo: &str) -> Scope {
        Scope::repository(repo, ActionSet::of(Action::Pull))
    }

    fn signer(algorithm: TokenAlgorithm) -> TokenSigner {
        TokenSigner::new(
            SigningKey::generate(algorithm),
            "palisade",
            "registry.test",
            300,
        )
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn decode_part(token: &str, index: usize) -> serde_json::Value {
        let part = token
            .split('.')
            .nth(index)
            .unwrap_or_else(|| panic!("no part {index}"));
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    fn with_claims(token: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut claims = decode_part(token, 1);
        edit(&mut claims);
        let parts: Vec<&str> = token.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            b64(&serde_json::to_vec(&claims).unwrap_or_default()),
            parts[2]
        )
    }

    #[test]
    fn issues_and_verifies_both_algorithms() {
        for algorithm in [TokenAlgorithm::Es256, TokenAlgorithm::Eddsa] {
            let signer = signer(algorithm);
            let verifier = signer.verifier();
            let issued = signer.issue(Some("alice"), &[pull("team-a/app"), Scope::catalog()], NOW);
            let claims = verifier
                .verify(&issued.token, NOW + 1)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(claims.subject.as_deref(), Some("alice"));
            assert_eq!(&claims.access[..], &[pull("team-a/app"), Scope::catalog()]);
            assert_eq!(claims.expires_at, NOW + 300);
            let header = decode_part(&issued.token, 0);
            assert_eq!(header["alg"], jws_algorithm(algorithm));
            let body = decode_part(&issued.token, 1);
            for claim in ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"] {
                assert!(body.get(claim).is_some(), "{claim}");
            }
            assert_eq!(body["access"][0]["type"], "repository");
            assert_eq!(body["access"][0]["actions"][0], "pull");
            // Cached path gives the same answer.
            assert_eq!(verifier.verify(&issued.token, NOW + 2), Ok(claims));
        }
    }

    #[test]
    fn anonymous_tokens_have_no_subject() {
        let signer = signer(TokenAlgorithm::Es256);
        let issued = signer.issue(None, &[pull("public/x")], NOW);
        let claims = signer
            .verifier()
            .verify(&issued.token, NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(claims.subject, None);
    }

    #[test]
    fn tampered_payload_is_refused() {
        let signer = signer(TokenAlgorithm::Es256);
        let issued = signer.issue(Some("alice"), &[pull("team-a/app")], NOW);
        let escalated = with_claims(&issued.token, |c| {
            c["access"][0]["actions"] = serde_json::json!(["pull", "push", "*"]);
        });
        assert_eq!(
            signer.verifier().verify(&escalated, NOW),
            Err(TokenError::Signature)
        );
        let other_sub = with_claims(&issued.token, |c| c["sub"] = "admin".into());
        assert_eq!(
            signer.verifier().verify(&other_sub, NOW),
            Err(TokenError::Signature)
        );
        let mut flipped = issued.token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap_or_default();
        assert!(signer.verifier().verify(&flipped, NOW).is_err());
    }

    #[test]
    fn wrong_key_is_refused() {
        let ours = signer(TokenAlgorithm::Es256);
        let theirs = signer(TokenAlgorithm::Es256);
        let forged = theirs.issue(Some("alice"), &[pull("a")], NOW);
        // Their kid differs from ours: refused on the header.
        assert_eq!(
            ours.verifier().verify(&forged.token, NOW),
            Err(TokenError::Header)
        );
        // Without a kid, the signature check refuses it.
        let mut header = decode_part(&forged.token, 0);
        header.as_object_mut().map(|h| h.remove("kid"));
        let parts: Vec<&str> = forged.token.split('.').collect();
        let signing_input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(&header).unwrap_or_default()),
            parts[1]
        );
        let SigningKey::Es256(_) = &theirs.key else {
            panic!("es256 expected")
        };
        let signature = b64(&theirs.key.sign(signing_input.as_bytes()));
        let no_kid = format!("{signing_input}.{signature}");
        assert_eq!(
            ours.verifier().verify(&no_kid, NOW),
            Err(TokenError::Signature)
        );
        assert!(
            theirs.verifier().verify(&no_kid, NOW).is_ok(),
            "the forgery is otherwise well-formed"
        );
    }

    fn forge(alg: &str, claims: &serde_json::Value, signature: &[u8]) -> String {
        let header = serde_json::json!({"alg": alg, "typ": "JWT"});
        format!(
            "{}.{}.{}",
            b64(&serde_json::to_vec(&header).unwrap_or_default()),
            b64(&serde_json::to_vec(claims).unwrap_or_default()),
            b64(signature)
        )
    }

    #[test]
    fn alg_none_and_hs256_confusion_are_refused() {
        let signer = signer(TokenAlgorithm::Es256);
        let issued = signer.issue(Some("alice"), &[pull("a")], NOW);
        let claims = decode_part(&issued.token, 1);
        for alg in [
            "none", "None", "NONE", "HS256", "RS256", "ES384", "EdDSA", "es256", "",
        ] {
            assert_eq!(
                signer.verifier().verify(&forge(alg, &claims, b""), NOW),
                Err(TokenError::Algorithm),
                "{alg}"
            );
        }
        // HS256 keyed with the public key (the classic confusion attack).
        let public = signer.key.verifying_key().public_bytes();
        let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = b64(&serde_json::to_vec(&claims).unwrap_or_default());
        let mut mac =
            <Hmac<sha2::Sha256> as Mac>::new_from_slice(&public).unwrap_or_else(|e| panic!("{e}"));
        mac.update(format!("{header}.{body}").as_bytes());
        let forged = format!("{header}.{body}.{}", b64(&mac.finalize().into_bytes()));
        assert_eq!(
            signer.verifier().verify(&forged, NOW),
            Err(TokenError::Algorithm)
        );
        // An EdDSA verifier refuses ES256 tokens too.
        let ed = signer_with(TokenAlgorithm::Eddsa);
        assert_eq!(
            ed.verifier().verify(&issued.token, NOW),
            Err(TokenError::Algorithm)
        );
    }

    fn signer_with(algorithm: TokenAlgorithm) -> TokenSigner {
        signer(algorithm)
    }

    #[test]
    fn time_issuer_and_audience_are_checked() {
        let signer = signer(TokenAlgorithm::Eddsa);
        let issued = signer.issue(Some("alice"), &[pull("a")], NOW);
        let verifier = signer.verifier();
        assert_eq!(
            verifier.verify(&issued.token, NOW + 300 + LEEWAY_SECONDS),
            Err(TokenError::Expired)
        );
        assert!(
            verifier
                .verify(&issued.token, NOW + 300 + LEEWAY_SECONDS - 1)
                .is_ok(),
            "within leeway"
        );
        let fresh = signer.verifier();
        assert_eq!(
            fresh.verify(&issued.token, NOW - LEEWAY_SECONDS - 1),
            Err(TokenError::NotYetValid)
        );
        let other_aud = TokenVerifier::new(signer.key.verifying_key(), "palisade", "other.service");
        assert_eq!(
            other_aud.verify(&issued.token, NOW),
            Err(TokenError::Audience)
        );
        let other_iss =
            TokenVerifier::new(signer.key.verifying_key(), "someone-else", "registry.test");
        assert_eq!(
            other_iss.verify(&issued.token, NOW),
            Err(TokenError::Issuer)
        );
        // The verified-token cache still honours expiry.
        assert!(verifier.verify(&issued.token, NOW).is_ok());
        assert_eq!(
            verifier.verify(&issued.token, NOW + 1000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn crit_and_foreign_kid_are_refused() {
        let signer = signer(TokenAlgorithm::Eddsa);
        let claims = serde_json::json!({"iss":"palisade","sub":"a","aud":"registry.test","exp":NOW+100,"nbf":NOW,"iat":NOW,"jti":"x","access":[]});
        for header in [
            serde_json::json!({"alg":"EdDSA","crit":["exp"]}),
            serde_json::json!({"alg":"EdDSA","kid":"someone-else"}),
        ] {
            let h = b64(&serde_json::to_vec(&header).unwrap_or_default());
            let c = b64(&serde_json::to_vec(&claims).unwrap_or_default());
            let s = b64(&signer.key.sign(format!("{h}.{c}").as_bytes()));
            assert_eq!(
                signer.verifier().verify(&format!("{h}.{c}.{s}"), NOW),
                Err(TokenError::Header)
            );
        }
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let signer = signer(TokenAlgorithm::Es256);
        let issued = signer.issue(Some("alice"), &[], NOW);
        let verifier = signer.verifier();
        for bad in [
            String::new(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            format!("{}.", issued.token),
            format!("{}=", issued.token),
            issued.token.replace('.', ".."),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(verifier.verify(&bad, NOW).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn verify_never_panics_on_arbitrary_text(token in ".{0,400}") {
            let signer = signer(TokenAlgorithm::Eddsa);
            proptest::prop_assert!(signer.verifier().verify(&token, NOW).is_err());
        }

        #[test]
        fn verify_never_panics_on_json_shaped_parts(
            header in proptest::prelude::any::<Vec<u8>>(),
            claims in "\\{[\"a-z0-9:,\\[\\]{} ]{0,120}\\}",
            signature in proptest::prelude::any::<Vec<u8>>(),
        ) {
            let signer = signer(TokenAlgorithm::Es256);
            let token = format!("{}.{}.{}", b64(&header), b64(claims.as_bytes()), b64(&signature));
            proptest::prop_assert!(signer.verifier().verify(&token, NOW).is_err());
        }
    }
}
