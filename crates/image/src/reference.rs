//! Image references with Docker's grammar and normalisation.
//!
//! ```text
//! reference   := name [ ":" tag ] [ "@" digest ]
//! name        := [domain "/"] path-component ("/" path-component)*
//! domain      := host [":" port]
//! host        := domain-component ("." domain-component)* | "[" ipv6 "]"
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component   := [a-z0-9]+ (separator [a-z0-9]+)*
//! separator   := "." | "_" | "__" | "-"+
//! tag         := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! ```
//!
//! Normalisation follows Docker: the first component is a domain only when it contains `.` or
//! `:`, is `localhost`, or has uppercase letters; otherwise the domain is `docker.io`, and a
//! single-component path on `docker.io` gets `library/`. A reference without tag or digest gets
//! `latest`. So `busybox` is `docker.io/library/busybox:latest`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::{Digest, DigestError};

/// The registry used when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag used when a reference names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// The longest name (domain and path) Docker accepts.
pub const NAME_MAX_LEN: usize = 255;
/// The longest tag.
pub const TAG_MAX_LEN: usize = 128;

const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";

/// Why a string is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The empty string.
    #[error("invalid reference: empty")]
    Empty,
    /// The name is longer than [`NAME_MAX_LEN`].
    #[error("invalid reference: name is {length} characters, the limit is {NAME_MAX_LEN}")]
    NameTooLong {
        /// The name's length.
        length: usize,
    },
    /// The repository path has uppercase letters.
    #[error("invalid reference {input:?}: repository name must be lowercase")]
    Uppercase {
        /// The rejected input (cut to 80 characters).
        input: String,
    },
    /// The whole input is 64 hex characters, which Docker keeps for image ids.
    #[error(
        "invalid repository name {input:?}: a 64-character hex string is an image id, not a name"
    )]
    AmbiguousHexName {
        /// The rejected input.
        input: String,
    },
    /// The domain part is not a host name, IPv4 or bracketed IPv6 address with optional port.
    #[error("invalid reference {input:?}: bad registry domain {domain:?}")]
    InvalidDomain {
        /// The rejected input (cut to 80 characters).
        input: String,
        /// The domain (cut to 80 characters).
        domain: String,
    },
    /// The repository path breaks the path-component grammar.
    #[error("invalid reference {input:?}: bad repository name {path:?} (lowercase letters, digits and single separators . _ __ - between them)")]
    InvalidPath {
        /// The rejected input (cut to 80 characters).
        input: String,
        /// The path (cut to 80 characters).
        path: String,
    },
    /// The tag breaks the tag grammar.
    #[error(
        "invalid tag {tag:?}: up to 128 of letters, digits, _ . - and not starting with . or -"
    )]
    InvalidTag {
        /// The rejected tag (cut to 80 characters).
        tag: String,
    },
    /// The digest is not a valid digest.
    #[error("invalid reference {input:?}: bad digest")]
    InvalidDigest {
        /// The rejected input (cut to 80 characters).
        input: String,
        /// Why.
        #[source]
        source: DigestError,
    },
}

fn shorten(input: &str) -> String {
    input.chars().take(80).collect()
}

/// A parsed, normalised image reference: `domain/path[:tag][@digest]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageReference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageReference {
    /// Parses and normalises a reference (`busybox` → `docker.io/library/busybox:latest`).
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if input.len() == 64
            && input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(ReferenceError::AmbiguousHexName {
                input: input.to_owned(),
            });
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                let digest =
                    Digest::parse(digest).map_err(|source| ReferenceError::InvalidDigest {
                        input: shorten(input),
                        source,
                    })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A tag follows the last ':' that comes after the last '/'; an earlier ':' is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let colon = last_slash + i;
                let tag = &rest[colon + 1..];
                validate_tag(tag)?;
                (&rest[..colon], Some(tag.to_owned()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::InvalidPath {
                input: shorten(input),
                path: String::new(),
            });
        }
        if name.len() > NAME_MAX_LEN {
            return Err(ReferenceError::NameTooLong { length: name.len() });
        }
        let (domain, path) = split_domain(name);
        validate_domain(input, &domain)?;
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                input: shorten(input),
            });
        }
        validate_path(input, &path)?;
        let normalised_len = domain.len() + 1 + path.len();
        if normalised_len > NAME_MAX_LEN {
            return Err(ReferenceError::NameTooLong {
                length: normalised_len,
            });
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (tag, _) => tag,
        };
        Ok(Self {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The registry host (and port): `docker.io`, `localhost:5000`, `[::1]:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry: `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `domain/path`: `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository as Docker shows it: `busybox` for `docker.io/library/busybox`,
    /// `user/app` for `docker.io/user/app`, the full name elsewhere.
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_PREFIX) {
                Some(short) if !short.contains('/') => short.to_owned(),
                _ => self.path.clone(),
            }
        } else {
            self.repository()
        }
    }

    /// The tag, if any (`latest` when the input named neither tag nor digest).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        validate_tag(tag)?;
        Ok(Self {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        })
    }

    /// The same repository pinned to `digest`, without a tag.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The same reference without its digest (`latest` if that leaves no tag).
    pub fn without_digest(&self) -> Self {
        Self {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(self.tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_owned())),
            digest: None,
        }
    }

    /// The short form Docker prints: `busybox:latest`, `localhost:5000/a/b:tag`.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_repository();
        push_suffix(&mut out, self.tag.as_deref(), self.digest.as_ref());
        out
    }
}

fn push_suffix(out: &mut String, tag: Option<&str>, digest: Option<&Digest>) {
    if let Some(tag) = tag {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(&digest.to_string());
    }
}

/// Splits a name into (domain, path) the way Docker's `ParseNormalizedNamed` does.
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    let domain = if domain == LEGACY_DOMAIN {
        DEFAULT_DOMAIN.to_owned()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::InvalidTag { tag: shorten(tag) };
    let mut chars = tag.chars();
    let first = chars.next().ok_or_else(bad)?;
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return Err(bad());
    }
    if tag.len() > TAG_MAX_LEN || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        return Err(bad());
    }
    Ok(())
}

fn validate_domain(input: &str, domain: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::InvalidDomain {
        input: shorten(input),
        domain: shorten(domain),
    };
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (ipv6, after) = rest.split_once(']').ok_or_else(bad)?;
        if ipv6.is_empty() || !ipv6.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(bad());
        }
        match after {
            "" => ("", None),
            _ => ("", Some(after.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
    }
    if !domain.starts_with('[') {
        if host.is_empty() {
            return Err(bad());
        }
        for component in host.split('.') {
            let bytes = component.as_bytes();
            let edges_ok = match (bytes.first(), bytes.last()) {
                (Some(a), Some(z)) => a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric(),
                _ => false,
            };
            if !edges_ok
                || !bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            {
                return Err(bad());
            }
        }
    }
    Ok(())
}

fn validate_path(input: &str, path: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::InvalidPath {
        input: shorten(input),
        path: shorten(path),
    };
    for component in path.split('/') {
        if !is_path_component(component) {
            return Err(bad());
        }
    }
    Ok(())
}

/// `[a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*`
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let sep_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[sep_start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.repository();
        push_suffix(&mut out, self.tag.as_deref(), self.digest.as_ref());
        f.write_str(&out)
    }
}

impl fmt::Debug for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageReference({self})")
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for ImageReference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ImageReference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parts(input: &str) -> (String, String, Option<String>, Option<String>) {
        let r = ImageReference::parse(input).unwrap();
        (
            r.domain().to_owned(),
            r.path().to_owned(),
            r.tag().map(str::to_owned),
            r.digest().map(|d| d.to_string()),
        )
    }

    #[test]
    fn normalises_like_docker() {
        let cases: &[(&str, &str)] = &[
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/a/b:tag", "localhost:5000/a/b:tag"),
            ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
            ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"),
            ("[::1]:5000/x:y", "[::1]:5000/x:y"),
            ("Registry/app", "Registry/app:latest"),
            ("a.b/c/d/e__f-g--h.i", "a.b/c/d/e__f-g--h.i:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(
                ImageReference::parse(input).unwrap().to_string(),
                *want,
                "{input}"
            );
        }
    }

    #[test]
    fn digests_and_tags_together() {
        let (domain, path, tag, digest) = parts(&format!("busybox@{D}"));
        assert_eq!(
            (domain.as_str(), path.as_str()),
            ("docker.io", "library/busybox")
        );
        assert_eq!(tag, None);
        assert_eq!(digest.as_deref(), Some(D));
        let both = ImageReference::parse(&format!("localhost:5000/a:v1@{D}")).unwrap();
        assert_eq!(both.tag(), Some("v1"));
        assert_eq!(both.digest().unwrap().to_string(), D);
        assert_eq!(both.to_string(), format!("localhost:5000/a:v1@{D}"));
        assert_eq!(both.without_digest().to_string(), "localhost:5000/a:v1");
    }

    #[test]
    fn familiar_names() {
        let r = ImageReference::parse("busybox").unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.familiar_repository(), "busybox");
        let r = ImageReference::parse("user/app:1").unwrap();
        assert_eq!(r.familiar(), "user/app:1");
        let r = ImageReference::parse("localhost:5000/a").unwrap();
        assert_eq!(r.familiar(), "localhost:5000/a:latest");
    }

    #[test]
    fn strict_errors() {
        let long = format!("a/{}", "b".repeat(260));
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "Empty"),
            ("Busybox".into(), "Uppercase"),
            ("docker.io/Library/busybox".into(), "Uppercase"),
            ("busybox:".into(), "InvalidTag"),
            ("busybox:-tag".into(), "InvalidTag"),
            ("busybox:.tag".into(), "InvalidTag"),
            ("busybox:ta/g".into(), "InvalidDomain"),
            (format!("busybox:{}", "t".repeat(129)), "InvalidTag"),
            ("busybox@sha256:abc".into(), "InvalidDigest"),
            (
                "busybox@md5:d41d8cd98f00b204e9800998ecf8427e".into(),
                "InvalidDigest",
            ),
            (format!("busybox@{}", D.to_uppercase()), "InvalidDigest"),
            (long, "NameTooLong"),
            ("a".repeat(64).replace('a', "f"), "AmbiguousHexName"),
            ("bad..name".into(), "InvalidPath"),
            ("-bad".into(), "InvalidPath"),
            ("bad-".into(), "InvalidPath"),
            ("a//b".into(), "InvalidPath"),
            ("a/".into(), "InvalidPath"),
            ("/a".into(), "InvalidPath"),
            ("a___b".into(), "InvalidPath"),
            ("-x.io/a".into(), "InvalidDomain"),
            ("x.io:port/a".into(), "InvalidDomain"),
            ("[zz]:5000/a".into(), "InvalidDomain"),
            (":5000/a".into(), "InvalidDomain"),
            ("a b".into(), "InvalidPath"),
            ("busybox@".into(), "InvalidDigest"),
            ("a@b@c".into(), "InvalidDigest"),
        ];
        for (input, kind) in cases {
            let err = ImageReference::parse(&input).unwrap_err();
            assert!(
                format!("{err:?}").contains(kind),
                "{input:?} gave {err:?}, wanted {kind}"
            );
        }
    }

    #[test]
    fn with_tag_and_digest() {
        let r = ImageReference::parse("busybox").unwrap();
        assert_eq!(
            r.with_tag("v2").unwrap().to_string(),
            "docker.io/library/busybox:v2"
        );
        assert!(r.with_tag("bad tag").is_err());
        let d = Digest::parse(D).unwrap();
        assert_eq!(
            r.with_digest(d).to_string(),
            format!("docker.io/library/busybox@{D}")
        );
    }

    fn path_component() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}")
            .unwrap()
    }

    fn domain() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(
            (
                proptest::string::string_regex("[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?").unwrap(),
                proptest::option::of(proptest::string::string_regex("[a-z]{2,4}").unwrap()),
                proptest::option::of(1u16..65535),
            )
                .prop_filter_map("needs . or :", |(host, tld, port)| {
                    let mut d = host;
                    if let Some(tld) = tld {
                        d = format!("{d}.{tld}");
                    }
                    if let Some(port) = port {
                        d = format!("{d}:{port}");
                    }
                    let special = d == "docker.io" || d == "index.docker.io";
                    ((d.contains(['.', ':']) || d == "localhost") && !special).then_some(d)
                }),
        )
    }

    proptest! {
        #[test]
        fn valid_references_round_trip(
            domain in domain(),
            path in proptest::collection::vec(path_component(), 1..4),
            tag in proptest::option::of(proptest::string::string_regex("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}").unwrap()),
            digest in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
        ) {
            // Without a domain, a first component with a '.' is read as a domain (Docker's rule).
            prop_assume!(domain.is_some() || path.len() == 1 || !path[0].contains('.'));
            let mut input = String::new();
            if let Some(domain) = &domain {
                input.push_str(domain);
                input.push('/');
            }
            input.push_str(&path.join("/"));
            if let Some(tag) = &tag {
                input.push(':');
                input.push_str(tag);
            }
            let digest = digest.map(|bytes| Digest::of(&bytes));
            if let Some(digest) = &digest {
                input.push('@');
                input.push_str(&digest.to_string());
            }
            let parsed = ImageReference::parse(&input).unwrap();
            prop_assert_eq!(parsed.tag(), tag.as_deref().or(if digest.is_none() { Some("latest") } else { None }));
            prop_assert_eq!(parsed.digest(), digest.as_ref());
            if let Some(domain) = &domain {
                prop_assert_eq!(parsed.domain(), domain.as_str());
                prop_assert_eq!(parsed.path(), path.join("/"));
            } else {
                prop_assert_eq!(parsed.domain(), "docker.io");
            }
            // Normalisation is idempotent: the canonical form parses to itself, and so does the
            // familiar form.
            let again = ImageReference::parse(&parsed.to_string()).unwrap();
            prop_assert_eq!(&again, &parsed);
            let familiar = ImageReference::parse(&parsed.familiar()).unwrap();
            prop_assert_eq!(&familiar, &parsed);
        }

        #[test]
        fn arbitrary_input_never_panics(input in ".{0,300}") {
            if let Ok(parsed) = ImageReference::parse(&input) {
                // Anything accepted is canonical once normalised.
                prop_assert_eq!(ImageReference::parse(&parsed.to_string()).unwrap(), parsed);
            }
        }
    }
}
