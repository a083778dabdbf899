//! npm versions (node-semver): SemVer 2.0, tolerating a leading `v` or `=` and surrounding
//! spaces, as `semver.compare` in loose-free mode does after `semver.clean`.

use std::cmp::Ordering;

use super::semver::SemVersion;
use super::VersionError;

/// Parses an npm version.
pub fn parse(text: &str) -> Result<SemVersion, VersionError> {
    let t = text.trim();
    let t = t.strip_prefix('=').unwrap_or(t).trim_start();
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
        assert_eq!(compare("v1.2.3", "=1.2.3"), Ok(Ordering::Equal));
        assert_eq!(compare("1.2.3-beta.2", "1.2.3-beta.10"), Ok(Ordering::Less));
        assert!(compare("1.2", "1.2.0").is_err());
    }
}
