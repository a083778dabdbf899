//! SemVer 2.0 versions as Cargo (crates.io) reads them: `MAJOR.MINOR.PATCH[-PRE][+BUILD]`,
//! pre-release identifiers compared field by field (numbers numerically and before words),
//! build metadata ignored.

use std::cmp::Ordering;

use super::VersionError;

/// A pre-release identifier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ident {
    /// Digits only: compared as a number, and before any alphanumeric identifier.
    Numeric(u64),
    /// Anything else: compared as ASCII text.
    Alpha(String),
}

/// A parsed SemVer version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemVersion {
    /// MAJOR.MINOR.PATCH.
    pub core: [u64; 3],
    /// Pre-release identifiers (empty for a release).
    pub pre: Vec<Ident>,
}

impl SemVersion {
    /// Parses a strict SemVer 2.0 version (what crates.io accepts).
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        Self::parse_as("SemVer", text)
    }

    pub(crate) fn parse_as(scheme: &'static str, text: &str) -> Result<Self, VersionError> {
        let err = |reason| VersionError::new(scheme, text, reason);
        let without_build = text.split_once('+').map_or(text, |(v, _)| v);
        let (core, pre) = match without_build.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (without_build, None),
        };
        let mut parts = core.split('.');
        let mut nums = [0u64; 3];
        for n in &mut nums {
            let p = parts.next().ok_or_else(|| err("needs MAJOR.MINOR.PATCH"))?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("core components must be numbers"));
            }
            if p.len() > 1 && p.starts_with('0') {
                return Err(err("numbers must not have leading zeros"));
            }
            *n = p.parse().map_err(|_| err("number too large"))?;
        }
        if parts.next().is_some() {
            return Err(err("more than three core components"));
        }
        let pre = match pre {
            None => Vec::new(),
            Some(p) => p
                .split('.')
                .map(|id| {
                    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        Err(err("bad pre-release identifier"))
                    } else if id.bytes().all(|b| b.is_ascii_digit()) {
                        if id.len() > 1 && id.starts_with('0') {
                            return Err(err("numeric identifiers must not have leading zeros"));
                        }
                        id.parse()
                            .map(Ident::Numeric)
                            .map_err(|_| err("number too large"))
                    } else {
                        Ok(Ident::Alpha(id.to_owned()))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self { core: nums, pre })
    }
}

impl Ord for SemVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for SemVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Orders two SemVer versions.
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(SemVersion::parse(a)?.cmp(&SemVersion::parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_precedence() {
        let order = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.5.4",
            "1.5.5",
            "1.10.0",
        ];
        for w in order.windows(2) {
            assert_eq!(
                compare(w[0], w[1]),
                Ok(Ordering::Less),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        assert_eq!(compare("1.0.0+build1", "1.0.0+build2"), Ok(Ordering::Equal));
        assert!(compare("1.0", "1.0.0").is_err());
    }
}
