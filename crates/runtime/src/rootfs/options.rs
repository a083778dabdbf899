//! fstab-style mount options (`"ro"`, `"nosuid"`, `"rbind"`, `"mode=755"`) parsed into flags.

use nix::mount::MsFlags;

/// Parsed mount options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// Flags for the mount call.
    pub(crate) flags: MsFlags,
    /// Propagation changes, applied after the mount, in order.
    pub(crate) propagation: Vec<MsFlags>,
    /// Filesystem-specific data (`mode=755,size=65536k`).
    pub(crate) data: Vec<String>,
    /// `bind` or `rbind` was given.
    pub(crate) bind: bool,
    /// Recursive read-only (`rro`): applied with `mount_setattr(AT_RECURSIVE)`.
    pub(crate) recursive_readonly: bool,
    /// `idmap` / `ridmap`: an id-mapped mount.
    pub(crate) idmap: bool,
}

impl MountOptions {
    pub(crate) fn parse<S: AsRef<str>>(options: &[S]) -> Self {
        let mut out = MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
            bind: false,
            recursive_readonly: false,
            idmap: false,
        };
        for option in options {
            let option = option.as_ref();
            let (set, clear) = match option {
                "defaults" => (MsFlags::empty(), MsFlags::empty()),
                "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
                "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
                "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
                "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
                "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
                "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
                "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
                "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
                "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
                "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
                "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
                "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
                "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
                "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
                "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
                "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
                "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
                "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
                "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
                "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
                "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
                "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
                "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
                "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
                "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
                "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
                "bind" => {
                    out.bind = true;
                    (MsFlags::MS_BIND, MsFlags::empty())
                }
                "rbind" => {
                    out.bind = true;
                    (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
                }
                "rro" => {
                    out.recursive_readonly = true;
                    (MsFlags::empty(), MsFlags::empty())
                }
                "idmap" | "ridmap" => {
                    out.idmap = true;
                    (MsFlags::empty(), MsFlags::empty())
                }
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
                | "unbindable" | "runbindable" => {
                    out.propagation.push(propagation(option));
                    (MsFlags::empty(), MsFlags::empty())
                }
                // Harmless or handled elsewhere; runc ignores them too.
                "tmpcopyup" | "rrw" | "rnosuid" | "rsuid" | "rnodev" | "rdev" | "rnoexec"
                | "rexec" => (MsFlags::empty(), MsFlags::empty()),
                data => {
                    out.data.push(data.to_owned());
                    (MsFlags::empty(), MsFlags::empty())
                }
            };
            out.flags.insert(set);
            out.flags.remove(clear);
        }
        out
    }

    pub(crate) fn data(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }
}

fn propagation(option: &str) -> MsFlags {
    match option {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
    }
}

/// Parses `rootfsPropagation`.
pub(crate) fn rootfs_propagation(value: &str) -> Option<MsFlags> {
    match value {
        "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
        | "runbindable" => Some(propagation(value)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_data_and_propagation() {
        let o =
            MountOptions::parse(&["nosuid", "strictatime", "mode=755", "size=65536k", "rslave"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data().as_deref(), Some("mode=755,size=65536k"));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert!(!o.bind);
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let o = MountOptions::parse(&["ro", "rw", "rbind"]);
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert!(o.bind);
        assert_eq!(o.data(), None);
    }

    #[test]
    fn rootfs_propagation_values() {
        assert_eq!(
            rootfs_propagation("rprivate"),
            Some(MsFlags::MS_PRIVATE | MsFlags::MS_REC)
        );
        assert_eq!(rootfs_propagation("bogus"), None);
    }
}
