//! What an unpack may do: limits, ownership, and the policies for privileged entries.

/// Options for [`unpack_layer`](super::unpack_layer) and [`apply_layer`](super::apply_layer).
///
/// The defaults are the secure ones: devices, setuid/setgid bits and file capabilities are
/// dropped (and listed in the report), and every limit is on. Relaxing a policy is an explicit,
/// loudly named field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Most bytes the layer may expand to: the uncompressed tar stream, and separately the file
    /// contents written (a sparse entry writes more than it reads).
    pub max_total_bytes: u64,
    /// Most tar entries (including extension headers' entries) in one layer.
    pub max_entries: u64,
    /// Longest entry name or link target, in bytes.
    pub max_path_len: usize,
    /// Most memory kept about one layer's entries (their names, for duplicate and hard-link
    /// checks, and the report's lists), in bytes.
    pub max_metadata_bytes: u64,
    /// Most times the uncompressed stream may be larger than the compressed one, checked once
    /// the stream is past 64 MiB; `None` for no ratio limit.
    pub max_compression_ratio: Option<u64>,
    /// What to do with block and character devices.
    pub devices: DevicePolicy,
    /// Keep setuid and setgid bits on files (directories keep setgid regardless: it only
    /// chooses the group of new files). Off by default: the bits are cleared and reported.
    pub allow_setuid: bool,
    /// Keep `security.capability` (file capabilities), rewritten for the id shift. Off by
    /// default: they are dropped and reported.
    pub allow_file_capabilities: bool,
    /// Who owns the extracted files.
    pub ownership: Ownership,
    /// Which xattr namespace marks overlayfs opaque directories in the per-layer form; the
    /// default is [`OverlayXattrs::detect`].
    pub overlay_xattrs: OverlayXattrs,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            max_total_bytes: 16 << 30,
            max_entries: 1_000_000,
            max_path_len: 4096,
            max_metadata_bytes: 256 << 20,
            max_compression_ratio: Some(1024),
            devices: DevicePolicy::Drop,
            allow_setuid: false,
            allow_file_capabilities: false,
            ownership: Ownership::Preserve,
            overlay_xattrs: OverlayXattrs::detect(),
        }
    }
}

/// What to do with block and character device nodes in a layer. FIFOs are always allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DevicePolicy {
    /// Skip them and list them in the report.
    #[default]
    Drop,
    /// Fail the unpack with [`UnpackError::DeviceNode`](super::UnpackError::DeviceNode).
    Refuse,
}

/// Who owns the extracted files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ownership {
    /// The numeric uid and gid from the layer, as they are (user and group names are ignored).
    /// Needs CAP_CHOWN, as any layer with files not owned by the unpacking user does.
    #[default]
    Preserve,
    /// The layer's ids moved into a user namespace's range.
    Shift(IdShift),
    /// Leave files owned by the unpacking user (an unprivileged unpack without a helper).
    Ignore,
}

/// Container ids `0..size` become host ids `uid_base + id` and `gid_base + id`; a layer with an
/// id outside the range is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdShift {
    /// Host uid of container uid 0.
    pub uid_base: u32,
    /// Host gid of container gid 0.
    pub gid_base: u32,
    /// Number of ids mapped.
    pub size: u32,
}

impl IdShift {
    /// The host uid of container uid `id`, if `id` is in the range.
    pub fn uid(&self, id: u64) -> Option<u32> {
        shift(self.uid_base, self.size, id)
    }

    /// The host gid of container gid `id`, if `id` is in the range.
    pub fn gid(&self, id: u64) -> Option<u32> {
        shift(self.gid_base, self.size, id)
    }
}

fn shift(base: u32, size: u32, id: u64) -> Option<u32> {
    if id >= u64::from(size) {
        return None;
    }
    // `u32::MAX` means "unchanged" to chown(2); it is never a real id.
    base.checked_add(u32::try_from(id).ok()?)
        .filter(|host| *host != u32::MAX)
}

/// The xattr namespace overlayfs reads its metadata from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayXattrs {
    /// `trusted.overlay.*`: a mount by real root (needs CAP_SYS_ADMIN in the initial user
    /// namespace to write).
    Trusted,
    /// `user.overlay.*`: a mount with the `userxattr` option, as an unprivileged user or inside
    /// a user namespace.
    User,
}

impl OverlayXattrs {
    /// `Trusted` when this process is root in the initial user namespace, `User` otherwise.
    pub fn detect() -> Self {
        let initial_namespace = std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
            map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]
        });
        if rustix::process::geteuid().is_root() && initial_namespace {
            OverlayXattrs::Trusted
        } else {
            OverlayXattrs::User
        }
    }

    /// The xattr name prefix overlayfs uses, `trusted.overlay.` or `user.overlay.`.
    pub fn prefix(self) -> &'static str {
        match self {
            OverlayXattrs::Trusted => "trusted.overlay.",
            OverlayXattrs::User => "user.overlay.",
        }
    }

    /// The name of the opaque-directory xattr.
    pub fn opaque(self) -> &'static str {
        match self {
            OverlayXattrs::Trusted => "trusted.overlay.opaque",
            OverlayXattrs::User => "user.overlay.opaque",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_maps_inside_the_range_only() {
        let shift = IdShift {
            uid_base: 100_000,
            gid_base: 200_000,
            size: 65_536,
        };
        assert_eq!(shift.uid(0), Some(100_000));
        assert_eq!(shift.gid(65_535), Some(265_535));
        assert_eq!(shift.uid(65_536), None);
        assert_eq!(shift.uid(u64::MAX), None);
    }

    #[test]
    fn shift_never_overflows_or_yields_the_unchanged_id() {
        let shift = IdShift {
            uid_base: u32::MAX - 1,
            gid_base: u32::MAX,
            size: 10,
        };
        assert_eq!(shift.uid(0), Some(u32::MAX - 1));
        assert_eq!(shift.uid(1), None);
        assert_eq!(shift.gid(0), None);
    }
}
