//! Repository globs: the patterns authorization rules are written in.
//!
//! A glob is a `/`-separated list of segments, matched against a repository name segment by
//! segment (names are first checked against the OCI grammar, see [`super::name`]):
//!
//! - A literal segment (`team-a`) matches exactly that segment, byte for byte (names are lower
//!   case; a glob with an upper-case letter is a configuration error).
//! - A segment containing `*` (`team-*`, `*-dev`, `*`) matches one segment where each `*`
//!   stands for zero or more characters **other than `/`**. So `team-a/*` matches `team-a/app`
//!   but neither `team-a/app/sub` nor `team-a` itself, and `team-*` does not match
//!   `team-a/app`.
//! - The segment `**` (alone in its segment) matches zero or more whole segments. So
//!   `team-a/**` matches `team-a`, `team-a/app` and `team-a/app/sub`, but not `team-a-evil/x`
//!   (segments are compared whole), and `**` alone matches every repository.
//! - Nothing else is special: no `?`, no character classes, no escapes.
//!
//! Validation ([`RepositoryGlob::parse`]) refuses empty globs, empty segments (`a//b`, leading or
//! trailing `/`), `.` and `..` segments, `**` mixed with other characters (`a**`), and any
//! character outside `[a-z0-9._-*]`.

use std::fmt;
use std::str::FromStr;

/// Why a repository glob was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// The glob is empty.
    #[error("empty repository glob")]
    Empty,
    /// An empty segment: `a//b`, `/a` or `a/`.
    #[error("repository glob {0:?} has an empty segment")]
    EmptySegment(String),
    /// A `.` or `..` segment.
    #[error("repository glob {0:?} has a '.' or '..' segment")]
    DotSegment(String),
    /// `**` not alone in its segment.
    #[error("repository glob {0:?}: '**' must be a whole segment")]
    MixedDoubleStar(String),
    /// A character repository names cannot contain.
    #[error("repository glob {glob:?} contains {character:?} (allowed: a-z 0-9 . _ - * /)")]
    BadCharacter {
        /// The glob.
        glob: String,
        /// The offending character.
        character: char,
    },
    /// Longer than any repository name could be.
    #[error("repository glob is longer than 255 bytes")]
    TooLong,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this text.
    Literal(String),
    /// Matches one segment; `*` stands for any run of non-`/` characters. Holds the pieces
    /// between the stars (at least two: text before the first star and after the last).
    Wildcard(Vec<String>),
    /// `**`: zero or more segments.
    AnySegments,
}

/// A validated repository glob (see the module documentation for the semantics).
#[derive(Clone, PartialEq, Eq)]
pub struct RepositoryGlob {
    source: String,
    segments: Vec<Segment>,
}

impl RepositoryGlob {
    /// Parse and validate a glob.
    pub fn parse(glob: &str) -> Result<RepositoryGlob, GlobError> {
        if glob.is_empty() {
            return Err(GlobError::Empty);
        }
        if glob.len() > super::name::MAX_NAME_LEN {
            return Err(GlobError::TooLong);
        }
        if let Some(character) = glob.chars().find(|c| {
            !(c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, '.' | '_' | '-' | '*' | '/'))
        }) {
            return Err(GlobError::BadCharacter {
                glob: glob.to_owned(),
                character,
            });
        }
        let mut segments = Vec::new();
        for part in glob.split('/') {
            let segment = match part {
                "" => return Err(GlobError::EmptySegment(glob.to_owned())),
                "." | ".." => return Err(GlobError::DotSegment(glob.to_owned())),
                "**" => Segment::AnySegments,
                p if p.contains("**") => return Err(GlobError::MixedDoubleStar(glob.to_owned())),
                p if p.contains('*') => {
                    Segment::Wildcard(p.split('*').map(str::to_owned).collect())
                }
                p => Segment::Literal(p.to_owned()),
            };
            // Consecutive `**` segments mean the same as one; keep one so matching stays linear.
            if segment == Segment::AnySegments && segments.last() == Some(&Segment::AnySegments) {
                continue;
            }
            segments.push(segment);
        }
        Ok(RepositoryGlob {
            source: glob.to_owned(),
            segments,
        })
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the glob matches every repository name (it is `**`, possibly repeated).
    pub fn matches_everything(&self) -> bool {
        self.segments == [Segment::AnySegments]
    }

    /// Whether the glob matches `name`. The caller is expected to have validated `name` as a
    /// repository name; for a string that is not one, the answer is still well-defined (and
    /// segment-wise) but the authorizer never asks.
    pub fn matches(&self, name: &str) -> bool {
        let parts: Vec<&str> = name.split('/').collect();
        self.matches_segments(&parts)
    }

    /// [`RepositoryGlob::matches`] for a name already split at `/` (the authorizer splits
    /// once per request, not once per glob).
    pub fn matches_segments(&self, name: &[&str]) -> bool {
        match_segments(&self.segments, name)
    }
}

/// Segment-wise match with `**` backtracking. Patterns are short (a handful of segments), and
/// consecutive `**` are collapsed at parse time, so the recursion stays small.
fn match_segments(pattern: &[Segment], name: &[&str]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((Segment::AnySegments, rest)) => {
            (0..=name.len()).any(|skip| match_segments(rest, &name[skip..]))
        }
        Some((segment, rest)) => match name.split_first() {
            Some((first, name_rest)) => {
                match_segment(segment, first) && match_segments(rest, name_rest)
            }
            None => false,
        },
    }
}

fn match_segment(segment: &Segment, text: &str) -> bool {
    match segment {
        Segment::Literal(literal) => literal == text,
        Segment::Wildcard(pieces) => match_wildcard(pieces, text),
        Segment::AnySegments => true,
    }
}

/// `pieces` are the literal parts between stars (`a*b*c` → `["a", "b", "c"]`).
fn match_wildcard(pieces: &[String], text: &str) -> bool {
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else {
        return false;
    };
    if pieces.len() < 2 {
        return first == text;
    }
    if text.len() < first.len() + last.len()
        || !text.starts_with(first.as_str())
        || !text.ends_with(last.as_str())
    {
        return false;
    }
    // Greedy-leftmost placement of the middle pieces is optimal for `*` globs.
    let mut rest = &text[first.len()..text.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece.as_str()) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

impl FromStr for RepositoryGlob {
    type Err = GlobError;

    fn from_str(glob: &str) -> Result<RepositoryGlob, GlobError> {
        RepositoryGlob::parse(glob)
    }
}

impl fmt::Display for RepositoryGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Debug for RepositoryGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepositoryGlob({:?})", self.source)
    }
}

impl serde::Serialize for RepositoryGlob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> serde::Deserialize<'de> for RepositoryGlob {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<RepositoryGlob, D::Error> {
        let text = String::deserialize(deserializer)?;
        RepositoryGlob::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A tag pattern for immutable-tag rules: `*` matches any run of characters (tags have no
/// `/`), everything else is literal. Tags follow `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`, and so must
/// the literal parts of the pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct TagPattern {
    source: String,
    pieces: Vec<String>,
}

impl TagPattern {
    /// Parse a tag pattern (`v*`, `latest`, `*-release`, `*`).
    pub fn parse(pattern: &str) -> Result<TagPattern, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.len() > 128 {
            return Err(GlobError::TooLong);
        }
        if let Some(character) = pattern
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*')))
        {
            return Err(GlobError::BadCharacter {
                glob: pattern.to_owned(),
                character,
            });
        }
        Ok(TagPattern {
            source: pattern.to_owned(),
            pieces: pattern.split('*').map(str::to_owned).collect(),
        })
    }

    /// Whether `tag` matches (case-sensitive: tags are).
    pub fn matches(&self, tag: &str) -> bool {
        match_wildcard(&self.pieces, tag)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TagPattern({:?})", self.source)
    }
}

impl<'de> serde::Deserialize<'de> for TagPattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TagPattern, D::Error> {
        let text = String::deserialize(deserializer)?;
        TagPattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(g: &str) -> RepositoryGlob {
        RepositoryGlob::parse(g).unwrap_or_else(|e| panic!("{g}: {e}"))
    }

    #[test]
    fn single_star_stays_in_one_segment() {
        let g = glob("team-a/*");
        assert!(g.matches("team-a/app"));
        assert!(!g.matches("team-a/app/sub"));
        assert!(!g.matches("team-a"));
        assert!(!g.matches("team-a-evil/app"));
        assert!(!g.matches("team-b/app"));
        let g = glob("team-*");
        assert!(g.matches("team-a"));
        assert!(g.matches("team-"), "a star may match nothing");
        assert!(!g.matches("team-a/app"));
        let g = glob("*");
        assert!(g.matches("x"));
        assert!(!g.matches("x/y"));
    }

    #[test]
    fn double_star_spans_whole_segments() {
        let g = glob("team-a/**");
        assert!(g.matches("team-a"));
        assert!(g.matches("team-a/app"));
        assert!(g.matches("team-a/app/sub/deeper"));
        assert!(!g.matches("team-a-evil/x"));
        assert!(!g.matches("team-ab"));
        assert!(!g.matches("x/team-a/app"));
        assert!(glob("**").matches("anything/at/all"));
        let g = glob("**/cache");
        assert!(g.matches("cache"));
        assert!(g.matches("a/b/cache"));
        assert!(!g.matches("a/b/cache/x"));
        let g = glob("a/**/z");
        assert!(g.matches("a/z"));
        assert!(g.matches("a/b/c/z"));
        assert!(!g.matches("a/b/c/zz"));
        assert!(glob("a/**/**/z").matches("a/z"));
    }

    #[test]
    fn literal_is_exact() {
        let g = glob("team-a/app");
        assert!(g.matches("team-a/app"));
        assert!(!g.matches("team-a/app2"));
        assert!(!g.matches("team-a/ap"));
        assert!(!g.matches("team-a/app/x"));
    }

    #[test]
    fn wildcard_pieces() {
        let g = glob("a*b*c");
        assert!(g.matches("abc"));
        assert!(g.matches("axxbyyc"));
        assert!(!g.matches("ac"));
        assert!(!g.matches("acb"));
        assert!(!glob("ab*ba").matches("aba"), "pieces may not overlap");
        assert!(glob("ab*ba").matches("abba"));
    }

    #[test]
    fn invalid_globs_are_refused_with_a_reason() {
        assert_eq!(RepositoryGlob::parse(""), Err(GlobError::Empty));
        for bad in ["a//b", "/a", "a/"] {
            assert!(
                matches!(RepositoryGlob::parse(bad), Err(GlobError::EmptySegment(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            RepositoryGlob::parse("a/../b"),
            Err(GlobError::DotSegment(_))
        ));
        assert!(matches!(
            RepositoryGlob::parse("a**"),
            Err(GlobError::MixedDoubleStar(_))
        ));
        assert!(matches!(
            RepositoryGlob::parse("Team/*"),
            Err(GlobError::BadCharacter { .. })
        ));
        assert!(matches!(
            RepositoryGlob::parse("a?"),
            Err(GlobError::BadCharacter { .. })
        ));
        assert!(matches!(
            RepositoryGlob::parse(&"a".repeat(300)),
            Err(GlobError::TooLong)
        ));
    }

    #[test]
    fn tag_patterns() {
        let p = TagPattern::parse("v*").unwrap_or_else(|e| panic!("{e}"));
        assert!(p.matches("v1.0"));
        assert!(!p.matches("V1.0"));
        assert!(!p.matches("latest"));
        let p = TagPattern::parse("latest").unwrap_or_else(|e| panic!("{e}"));
        assert!(p.matches("latest"));
        assert!(!p.matches("latest2"));
        assert!(TagPattern::parse("a/b").is_err());
        assert!(TagPattern::parse("").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_and_match_never_panic(glob in "[a-z0-9*/._-]{0,40}", name in "[a-z0-9/._-]{0,40}") {
            if let Ok(g) = RepositoryGlob::parse(&glob) {
                let _ = g.matches(&name);
            }
        }

        #[test]
        fn literal_globs_match_only_themselves(name in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,3}", other in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,3}") {
            let g = RepositoryGlob::parse(&name).unwrap_or_else(|e| panic!("{e}"));
            proptest::prop_assert!(g.matches(&name));
            proptest::prop_assert_eq!(g.matches(&other), other == name);
        }

        #[test]
        fn single_star_never_crosses_a_slash(prefix in "[a-z0-9]{1,8}", rest in "[a-z0-9]{1,8}/[a-z0-9]{1,8}") {
            let g = RepositoryGlob::parse(&format!("{prefix}/*")).unwrap_or_else(|e| panic!("{e}"));
            let name = format!("{prefix}/{rest}");
            proptest::prop_assert!(!g.matches(&name));
        }
    }
}
