//! Which extended attributes from a layer are written, and how file capabilities follow the id
//! shift.
//!
//! Kept: `user.*` on files and directories, and `security.capability` on files when
//! [`allow_file_capabilities`](super::UnpackOptions::allow_file_capabilities) is set. Refused
//! (the whole layer): `trusted.overlay.*` and `user.overlay.*`, which would let a layer forge
//! overlayfs whiteouts, opaque directories or redirects. Dropped and reported: everything else
//! (`security.selinux`, `system.posix_acl_*`, other `trusted.*`), which either needs privileges
//! the container does not have or refers to ids the shift does not know about.

use std::borrow::Cow;

use super::{Ownership, UnpackOptions};

/// What the layer must never set.
const RESERVED: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];

const CAPABILITY: &[u8] = b"security.capability";

/// Whether `name` is overlayfs metadata.
pub(super) fn is_reserved(name: &[u8]) -> bool {
    RESERVED.iter().any(|prefix| name.starts_with(prefix))
}

/// The kind of inode an xattr would go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Holder {
    File,
    Directory,
    Other,
}

/// What to do with one xattr.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision<'v> {
    Write(Cow<'v, [u8]>),
    Drop(&'static str),
}

/// Decides about a (non-reserved) xattr.
pub(super) fn decide<'v>(
    name: &[u8],
    value: &'v [u8],
    holder: Holder,
    opts: &UnpackOptions,
) -> Decision<'v> {
    if name.contains(&0) {
        return Decision::Drop("the name has a NUL byte");
    }
    if name.starts_with(b"user.") {
        return match holder {
            Holder::File | Holder::Directory => Decision::Write(Cow::Borrowed(value)),
            Holder::Other => Decision::Drop("user xattrs exist on files and directories only"),
        };
    }
    if name == CAPABILITY {
        if holder != Holder::File {
            return Decision::Drop("file capabilities exist on regular files only");
        }
        if !opts.allow_file_capabilities {
            return Decision::Drop("file capabilities are not allowed (allow_file_capabilities)");
        }
        return match rewrite_capability(value, &opts.ownership) {
            Some(value) => Decision::Write(Cow::Owned(value)),
            None => Decision::Drop("invalid capability, or its root id is outside the id shift"),
        };
    }
    Decision::Drop("only user.* and security.capability xattrs are kept")
}

const REVISION_MASK: u32 = 0xff00_0000;
const REVISION_2: u32 = 0x0200_0000;
const REVISION_3: u32 = 0x0300_0000;
const FLAG_EFFECTIVE: u32 = 0x0000_0001;
/// magic + 2 × (permitted, inheritable)
const SIZE_2: usize = 20;
/// v2 + the root id of the user namespace the capabilities are for
const SIZE_3: usize = 24;

/// Returns the `security.capability` value to write: unchanged without a shift; with a shift,
/// a namespaced (v3) value whose root id is the host id of the container's root (or of the
/// v3 value's own root id), so the capabilities apply inside the container's user namespace and
/// nowhere else. `None` for a value the kernel would not accept, or a root id the shift cannot
/// map.
pub(super) fn rewrite_capability(value: &[u8], ownership: &Ownership) -> Option<Vec<u8>> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(value.get(at..at + 4)?.try_into().ok()?))
    };
    let magic = word(0)?;
    if magic & !(REVISION_MASK | FLAG_EFFECTIVE) != 0 {
        return None;
    }
    let root_id = match (magic & REVISION_MASK, value.len()) {
        (REVISION_2, SIZE_2) => 0,
        (REVISION_3, SIZE_3) => word(SIZE_2)?,
        _ => return None,
    };
    let shift = match ownership {
        Ownership::Preserve | Ownership::Ignore => return Some(value.to_vec()),
        Ownership::Shift(shift) => shift,
    };
    let host_root = shift.uid(u64::from(root_id))?;
    let mut out = Vec::with_capacity(SIZE_3);
    out.extend_from_slice(&(REVISION_3 | (magic & FLAG_EFFECTIVE)).to_le_bytes());
    out.extend_from_slice(&value[4..SIZE_2]);
    out.extend_from_slice(&host_root.to_le_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::IdShift;

    fn v2(effective: bool, permitted: u32) -> Vec<u8> {
        let mut value = (REVISION_2 | u32::from(effective)).to_le_bytes().to_vec();
        for word in [permitted, 0, 0, 0] {
            value.extend_from_slice(&word.to_le_bytes());
        }
        value
    }

    const SHIFT: Ownership = Ownership::Shift(IdShift {
        uid_base: 100_000,
        gid_base: 100_000,
        size: 65_536,
    });

    #[test]
    fn v2_becomes_v3_rooted_at_the_shifted_root() {
        let out = rewrite_capability(&v2(true, 1 << 13), &SHIFT).unwrap();
        assert_eq!(out.len(), SIZE_3);
        assert_eq!(&out[..4], &(REVISION_3 | FLAG_EFFECTIVE).to_le_bytes());
        assert_eq!(&out[4..8], &(1u32 << 13).to_le_bytes());
        assert_eq!(&out[20..], &100_000u32.to_le_bytes());
    }

    #[test]
    fn v3_root_id_is_shifted_or_refused() {
        let mut value = v2(false, 1);
        value[3] = 0x03;
        value.extend_from_slice(&5u32.to_le_bytes());
        let out = rewrite_capability(&value, &SHIFT).unwrap();
        assert_eq!(&out[20..], &100_005u32.to_le_bytes());
        value[20..].copy_from_slice(&70_000u32.to_le_bytes());
        assert_eq!(rewrite_capability(&value, &SHIFT), None);
    }

    #[test]
    fn without_a_shift_the_value_is_kept() {
        let value = v2(true, 1);
        assert_eq!(
            rewrite_capability(&value, &Ownership::Preserve),
            Some(value)
        );
    }

    #[test]
    fn malformed_values_are_dropped() {
        assert_eq!(rewrite_capability(&[], &SHIFT), None);
        assert_eq!(rewrite_capability(&v2(true, 1)[..12], &SHIFT), None);
        let mut v1 = v2(true, 1);
        v1[3] = 0x01;
        assert_eq!(rewrite_capability(&v1, &SHIFT), None);
        let mut flags = v2(true, 1);
        flags[1] = 0x10;
        assert_eq!(rewrite_capability(&flags, &SHIFT), None);
    }

    #[test]
    fn policy_keeps_user_xattrs_and_reserves_overlay_ones() {
        let opts = UnpackOptions::default();
        assert!(is_reserved(b"trusted.overlay.opaque"));
        assert!(is_reserved(b"user.overlay.redirect"));
        assert!(!is_reserved(b"user.mime_type"));
        assert_eq!(
            decide(b"user.mime_type", b"text/plain", Holder::File, &opts),
            Decision::Write(Cow::Borrowed(&b"text/plain"[..]))
        );
        assert!(matches!(
            decide(b"user.x", b"", Holder::Other, &opts),
            Decision::Drop(_)
        ));
        assert!(matches!(
            decide(b"security.selinux", b"x", Holder::File, &opts),
            Decision::Drop(_)
        ));
        assert!(matches!(
            decide(CAPABILITY, &v2(true, 1), Holder::File, &opts),
            Decision::Drop(_)
        ));
        let allowed = UnpackOptions {
            allow_file_capabilities: true,
            ..opts
        };
        assert!(matches!(
            decide(CAPABILITY, &v2(true, 1), Holder::File, &allowed),
            Decision::Write(_)
        ));
    }
}
