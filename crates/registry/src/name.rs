//! Repository names, tags and references as the distribution spec defines them.
//!
//! Every value here is validated before it is used to build a storage path, so a name or tag that
//! passed [`RepositoryName::parse`] or [`Tag::parse`] can never escape the storage root.

use std::fmt;

use palisade_image::digest::Digest;

/// The longest repository name accepted (the spec recommends clients stay under 255 bytes).
pub const MAX_NAME_LEN: usize = 255;
/// The longest tag the spec allows.
pub const MAX_TAG_LEN: usize = 128;

/// Why a name, tag or reference is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
    #[error("invalid repository name {0:?}: use lowercase path components like team-a/app")]
    Name(String),
    /// Not `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    #[error("invalid tag {0:?}: up to 128 of [A-Za-z0-9_.-], not starting with . or -")]
    Tag(String),
}

/// A validated repository name (`team-a/app`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Validates `input` against the distribution spec's name grammar.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        if input.is_empty() || input.len() > MAX_NAME_LEN || !input.split('/').all(component_ok) {
            return Err(NameError::Name(truncate(input)));
        }
        Ok(Self(input.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first path component (the namespace quotas and policies group by).
    pub fn namespace(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run: ".", "_", "__" or one or more "-"
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// A validated tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Validates `input` against `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let b = input.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= MAX_TAG_LEN
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(NameError::Tag(truncate(input)))
        }
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `<reference>` of a manifest URL: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A tag.
    Tag(Tag),
    /// A digest.
    Digest(Digest),
}

impl Reference {
    /// A reference containing `:` must be a digest, anything else must be a tag.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if input.contains(':') {
            Digest::parse(input)
                .map(Self::Digest)
                .map_err(|e| ReferenceError::Digest(e.to_string()))
        } else {
            Tag::parse(input)
                .map(Self::Tag)
                .map_err(ReferenceError::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(t) => t.fmt(f),
            Self::Digest(d) => d.fmt(f),
        }
    }
}

/// Why a manifest reference is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Looked like a digest but is not a valid one.
    #[error("{0}")]
    Digest(String),
    /// Not a valid tag.
    #[error(transparent)]
    Tag(NameError),
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "library/busybox",
            "a-b/c__d/e.f",
            "a--b",
            "0/1/2",
            "team-a/app",
        ] {
            assert!(RepositoryName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "a/",
            "/a",
            "a//b",
            "a_",
            "-a",
            "a___b",
            "a..b",
            "a/../b",
            "..",
            "a.-b",
            "a b",
            "a%2fb",
            &"a".repeat(256),
        ] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_and_references() {
        assert!(Tag::parse("v1.0_rc-1").is_ok());
        assert!(Tag::parse(&"a".repeat(128)).is_ok());
        for bad in ["", ".a", "-a", "a/b", "a:b", &"a".repeat(129), ".."] {
            assert!(Tag::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(matches!(Reference::parse(&d), Ok(Reference::Digest(_))));
        assert!(Reference::parse("sha256:xyz").is_err());
        assert!(Reference::parse("md5:abc").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic_and_accept_only_safe_paths(s in "\\PC{0,300}") {
            if let Ok(n) = RepositoryName::parse(&s) {
                proptest::prop_assert!(!n.as_str().split('/').any(|c| c == ".." || c == "." || c.is_empty()));
            }
            if let Ok(t) = Tag::parse(&s) {
                proptest::prop_assert!(!t.as_str().contains('/') && t.as_str() != "..");
            }
            let _ = Reference::parse(&s);
        }
        #[test]
        fn generated_names_parse(s in "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,3}(/[a-z0-9]{1,5}){0,3}") {
            proptest::prop_assert!(RepositoryName::parse(&s).is_ok());
        }
    }
}
