//! npm versions (node-semver, strict mode): SemVer 2.0 with an optional leading `v` and
//! surrounding spaces, as `semver.valid` and `semver.compare` read them.

use std::cmp::Ordering;

use super::semver::SemVersion;
use super::VersionError;

/// Parses an npm version.
pub fn parse(text: &str) -> Result<SemVersion, VersionError> {
    let t = text.trim();
    let t = t.strip_prefix('v').unwrap_or(t);
    SemVersion::parse_as("npm", t)
}

/// Orders two npm versions.
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(parse(a)?.cmp(&parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(compare("v1.2.3", " 1.2.3 "), Ok(Ordering::Equal));
        assert!(compare("01.2.3", "1.2.3").is_err());
        assert_eq!(compare("1.2.3-beta.2", "1.2.3-beta.10"), Ok(Ordering::Less));
        assert!(compare("1.2", "1.2.0").is_err());
    }
}
