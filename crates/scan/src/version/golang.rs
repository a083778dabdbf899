//! Go module versions: semantic versions with a `v` prefix (optional here, because OSV's Go
//! ranges omit it), pseudo-versions (`v0.0.0-20210101000000-abcdef123456`, which are
//! pre-releases and order by their timestamp), `+incompatible` (build metadata, ignored), and
//! Go toolchain versions (`go1.21rc2` → `1.21.0-rc.2`) for the `stdlib` module.

use std::cmp::Ordering;

use super::semver::SemVersion;
use super::VersionError;

/// Turns a toolchain name (`go1.19`, `go1.21.3`, `go1.22rc1`, `go1.20beta1`) into the
/// semantic version OSV uses for `stdlib` (`1.19.0`, `1.21.3`, `1.22.0-rc.1`, `1.20.0-beta.1`).
/// Returns `None` for strings that are not toolchain versions (for example `devel ...`).
pub fn toolchain_to_semver(go: &str) -> Option<String> {
    let v = go.trim().strip_prefix("go")?;
    let v = v.split([' ', '-', '+']).next()?;
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (nums, pre) = v.split_at(split);
    let mut parts: Vec<&str> = nums.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    while parts.len() < 3 {
        parts.push("0");
    }
    let mut out = parts.join(".");
    if !pre.is_empty() {
        let n = pre.find(|c: char| c.is_ascii_digit()).unwrap_or(pre.len());
        let (word, num) = pre.split_at(n);
        if !word.bytes().all(|b| b.is_ascii_lowercase()) || !num.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        out.push('-');
        out.push_str(word);
        if !num.is_empty() {
            out.push('.');
            out.push_str(num);
        }
    }
    Some(out)
}

/// Parses a Go module version.
pub fn parse(text: &str) -> Result<SemVersion, VersionError> {
    let t = text.trim();
    let t = t.strip_prefix('v').unwrap_or(t);
    SemVersion::parse_as("Go", t)
}

/// Orders two Go module versions.
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(parse(a)?.cmp(&parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_and_incompatible() {
        assert_eq!(
            compare(
                "v0.0.0-20210101000000-abcdef123456",
                "v0.0.0-20220101000000-abcdef123456"
            ),
            Ok(Ordering::Less)
        );
        assert_eq!(
            compare("v0.0.0-20210101000000-abcdef123456", "v0.0.1"),
            Ok(Ordering::Less)
        );
        // A pseudo-version after v1.2.3 sorts above it and below v1.2.4.
        assert_eq!(
            compare("v1.2.4-0.20210101000000-abcdef123456", "v1.2.3"),
            Ok(Ordering::Greater)
        );
        assert_eq!(
            compare("v1.2.4-0.20210101000000-abcdef123456", "v1.2.4"),
            Ok(Ordering::Less)
        );
        assert_eq!(compare("v2.0.0+incompatible", "2.0.0"), Ok(Ordering::Equal));
        assert_eq!(
            compare("v2.1.0+incompatible", "v2.0.9"),
            Ok(Ordering::Greater)
        );
    }

    #[test]
    fn toolchains() {
        assert_eq!(toolchain_to_semver("go1.19").as_deref(), Some("1.19.0"));
        assert_eq!(toolchain_to_semver("go1.19.13").as_deref(), Some("1.19.13"));
        assert_eq!(
            toolchain_to_semver("go1.21rc2").as_deref(),
            Some("1.21.0-rc.2")
        );
        assert_eq!(
            toolchain_to_semver("go1.22.1 X:boringcrypto").as_deref(),
            Some("1.22.1")
        );
        assert_eq!(toolchain_to_semver("devel go1.23-abc"), None);
        assert_eq!(compare("1.21.0-rc.2", "1.21.0"), Ok(Ordering::Less));
    }
}
