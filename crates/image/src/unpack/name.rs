//! Entry names: checked, normalised, and told apart (plain entry, whiteout, opaque marker).
//!
//! A checked name ("key") is the entry's components joined by `/`: no leading `/`, no `.`,
//! no empty component, never `..`. The empty key is the layer's root directory. Names are bytes:
//! they need not be UTF-8, but never contain NUL.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Longest single component Linux accepts (`NAME_MAX`).
pub(super) const NAME_MAX: usize = 255;

/// Prefix of a whiteout entry's last component.
const WHITEOUT: &[u8] = b".wh.";
/// Prefix of aufs metadata (and of the opaque marker).
const WHITEOUT_META: &[u8] = b".wh..wh.";
/// The opaque-directory marker.
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Why a name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NameProblem {
    Empty,
    Nul,
    TooLong,
    Absolute,
    Traversal,
}

/// Checks `raw` and returns its key.
pub(super) fn normalize(raw: &[u8], max_len: usize) -> Result<Vec<u8>, NameProblem> {
    if raw.is_empty() {
        return Err(NameProblem::Empty);
    }
    if raw.contains(&0) {
        return Err(NameProblem::Nul);
    }
    if raw.len() > max_len {
        return Err(NameProblem::TooLong);
    }
    if raw[0] == b'/' {
        return Err(NameProblem::Absolute);
    }
    let mut key = Vec::with_capacity(raw.len());
    for component in raw.split(|byte| *byte == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err(NameProblem::Traversal),
            name if name.len() > NAME_MAX => return Err(NameProblem::TooLong),
            name => {
                if !key.is_empty() {
                    key.push(b'/');
                }
                key.extend_from_slice(name);
            }
        }
    }
    Ok(key)
}

/// Splits a non-empty key into its parent's key and its last component.
pub(super) fn split_last(key: &[u8]) -> (&[u8], &[u8]) {
    match key.iter().rposition(|byte| *byte == b'/') {
        Some(slash) => (&key[..slash], &key[slash + 1..]),
        None => (&[], key),
    }
}

/// The key of `name` inside the directory `parent`.
pub(super) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parent.len() + 1 + name.len());
    key.extend_from_slice(parent);
    if !parent.is_empty() {
        key.push(b'/');
    }
    key.extend_from_slice(name);
    key
}

/// A path for messages and reports, with the name's bytes as they are.
pub(super) fn display(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// What a checked name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Meaning<'k> {
    /// An ordinary entry.
    Plain,
    /// `parent/.wh.name`: hide `name` of the lower layers.
    Whiteout { parent: &'k [u8], name: &'k [u8] },
    /// `dir/.wh..wh..opq`: hide everything the lower layers have in `dir`.
    Opaque { dir: &'k [u8] },
    /// Top-level aufs metadata (`.wh..wh.plnk/...`, `.wh..wh.aufs`): skipped, as Docker does.
    AufsMetadata,
}

/// Why a `.wh.` name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WhiteoutProblem {
    /// `.wh.` alone, `.wh..`, `.wh..wh.<other>` below the top, or `.wh.` in a directory name.
    Invalid,
    /// `.wh...`: a whiteout of `..`.
    Traversal,
}

/// Tells what the checked name `key` means.
pub(super) fn meaning(key: &[u8]) -> Result<Meaning<'_>, WhiteoutProblem> {
    if key.is_empty() {
        return Ok(Meaning::Plain);
    }
    let mut components = key.split(|byte| *byte == b'/');
    if components
        .next()
        .is_some_and(|first| first.starts_with(WHITEOUT_META))
        && key != OPAQUE
    {
        return Ok(Meaning::AufsMetadata);
    }
    let (parent, last) = split_last(key);
    if parent
        .split(|byte| *byte == b'/')
        .any(|component| component.starts_with(WHITEOUT))
    {
        return Err(WhiteoutProblem::Invalid);
    }
    if last == OPAQUE {
        return Ok(Meaning::Opaque { dir: parent });
    }
    if last.starts_with(WHITEOUT_META) {
        return Err(WhiteoutProblem::Invalid);
    }
    match last.strip_prefix(WHITEOUT) {
        None => Ok(Meaning::Plain),
        Some(b"" | b".") => Err(WhiteoutProblem::Invalid),
        Some(b"..") => Err(WhiteoutProblem::Traversal),
        Some(name) => Ok(Meaning::Whiteout { parent, name }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_dots_and_repeated_slashes() {
        assert_eq!(normalize(b"./usr//bin/./ls", 4096).unwrap(), b"usr/bin/ls");
        assert_eq!(normalize(b"etc/", 4096).unwrap(), b"etc");
        assert_eq!(normalize(b"./", 4096).unwrap(), b"");
        assert_eq!(normalize(b".", 4096).unwrap(), b"");
    }

    #[test]
    fn normalize_refuses_escapes_and_bad_bytes() {
        assert_eq!(normalize(b"/etc/passwd", 4096), Err(NameProblem::Absolute));
        assert_eq!(normalize(b"../x", 4096), Err(NameProblem::Traversal));
        assert_eq!(normalize(b"a/../../x", 4096), Err(NameProblem::Traversal));
        assert_eq!(normalize(b"a/..", 4096), Err(NameProblem::Traversal));
        assert_eq!(normalize(b"a\0b", 4096), Err(NameProblem::Nul));
        assert_eq!(normalize(b"", 4096), Err(NameProblem::Empty));
        assert_eq!(normalize(b"abcdef", 5), Err(NameProblem::TooLong));
        assert_eq!(normalize(&[b'x'; 256], 4096), Err(NameProblem::TooLong));
    }

    #[test]
    fn normalize_keeps_non_utf8_bytes() {
        assert_eq!(normalize(b"caf\xe9/\xff", 4096).unwrap(), b"caf\xe9/\xff");
    }

    #[test]
    fn split_and_join_are_inverse() {
        assert_eq!(split_last(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
        assert_eq!(join(b"a/b", b"c"), b"a/b/c");
        assert_eq!(join(b"", b"c"), b"c");
    }

    #[test]
    fn whiteouts_and_markers_are_recognised() {
        assert_eq!(meaning(b"usr/bin/ls"), Ok(Meaning::Plain));
        assert_eq!(
            meaning(b"etc/.wh.passwd"),
            Ok(Meaning::Whiteout {
                parent: b"etc",
                name: b"passwd"
            })
        );
        assert_eq!(
            meaning(b".wh.x"),
            Ok(Meaning::Whiteout {
                parent: b"",
                name: b"x"
            })
        );
        assert_eq!(
            meaning(b"var/.wh..wh..opq"),
            Ok(Meaning::Opaque { dir: b"var" })
        );
        assert_eq!(meaning(b".wh..wh..opq"), Ok(Meaning::Opaque { dir: b"" }));
        assert_eq!(meaning(b".wh..wh.plnk/123.456"), Ok(Meaning::AufsMetadata));
        assert_eq!(meaning(b".wh..wh.aufs"), Ok(Meaning::AufsMetadata));
    }

    #[test]
    fn malformed_whiteouts_are_refused() {
        assert_eq!(meaning(b"a/.wh."), Err(WhiteoutProblem::Invalid));
        assert_eq!(meaning(b"a/.wh.."), Err(WhiteoutProblem::Invalid));
        assert_eq!(meaning(b"a/.wh..."), Err(WhiteoutProblem::Traversal));
        assert_eq!(meaning(b"a/.wh..wh.plnk"), Err(WhiteoutProblem::Invalid));
        assert_eq!(meaning(b"a/.wh.dir/file"), Err(WhiteoutProblem::Invalid));
    }
}
