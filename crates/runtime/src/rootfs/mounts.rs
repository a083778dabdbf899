//! The `mounts` of a config, mounted in order inside the rootfs.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;

use super::options::MountOptions;
use super::resolve::{fd_path, RootDir, TargetKind};
use crate::error::{Result, RuntimeError};

/// Files under /proc that a bind mount may cover (lxcfs-style virtualisation). Anything else
/// mounted over a /proc path could hide the real procfs from the runtime's own checks
/// (CVE-2019-16884, CVE-2019-19921), so it is refused.
const PROC_BIND_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// Context a mount needs from the container being built.
#[derive(Debug)]
pub(crate) struct MountContext<'a> {
    pub(crate) root: &'a RootDir,
    /// The container has its own user namespace (no mknod, no sysfs without own netns).
    pub(crate) in_user_namespace: bool,
    /// The container has its own cgroup namespace.
    pub(crate) cgroup_namespace: bool,
    /// Host paths of the container's cgroup in every hierarchy, for `cgroup` mounts:
    /// (name inside /sys/fs/cgroup, host directory). For cgroup v2 a single ("", dir).
    pub(crate) cgroup_dirs: &'a [(String, PathBuf)],
    /// cgroup v2 is the host's only hierarchy.
    pub(crate) cgroup_unified: bool,
    /// Bind sources are opened without following any symlink and mounted from that file
    /// descriptor (annotation [`PINNED_BIND_SOURCES`]): the engine checked the canonical
    /// path, so a symlink found now was swapped in since, and is refused.
    pub(crate) pinned_sources: bool,
}

pub(crate) use crate::spec::PINNED_BIND_SOURCES;

/// Opens a bind source as an `O_PATH` descriptor, refusing symlinks on the whole path.
fn open_pinned_source(source: &Path) -> Result<std::os::fd::OwnedFd> {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags, CWD};
    openat2(
        CWD,
        source,
        // No O_NOFOLLOW: with it a trailing symlink would be opened itself, not refused.
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| {
        RuntimeError::InvalidConfig(format!(
            "bind source {source:?} cannot be opened without following symlinks ({e}); it was \
             checked as a real path, so it has been changed since: refusing to mount it"
        ))
    })
}

/// Checks a mount destination against the /proc rules before anything is mounted.
pub(crate) fn check_destination(m: &Mount) -> Result<()> {
    let dest = super::resolve::relative(m.destination());
    let dest = Path::new("/").join(dest);
    if !m.destination().is_absolute() {
        return Err(RuntimeError::InvalidConfig(format!(
            "mount destination {:?} must be an absolute path",
            m.destination()
        )));
    }
    if dest.starts_with("/proc") && dest != Path::new("/proc") {
        let bind = MountOptions::parse(m.options().as_deref().unwrap_or_default()).bind
            || m.typ().as_deref() == Some("bind");
        if !(bind && PROC_BIND_ALLOWED.iter().any(|p| Path::new(p) == dest)) {
            return Err(RuntimeError::InvalidConfig(format!(
                "mount over {dest:?} is not allowed: only bind mounts onto {} may cover /proc files",
                PROC_BIND_ALLOWED.join(", ")
            )));
        }
    }
    if dest == Path::new("/proc") && m.typ().as_deref() != Some("proc") {
        return Err(RuntimeError::InvalidConfig(format!(
            "/proc must be mounted with type \"proc\", not {:?}",
            m.typ().as_deref().unwrap_or("bind")
        )));
    }
    Ok(())
}

/// Mounts one entry of the config.
pub(crate) fn mount_entry(ctx: &MountContext<'_>, m: &Mount) -> Result<()> {
    let options = MountOptions::parse(m.options().as_deref().unwrap_or_default());
    let typ = m
        .typ()
        .as_deref()
        .unwrap_or(if options.bind { "bind" } else { "" });
    let bind = options.bind || typ == "bind";
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, m, &options);
    }
    let mut source = m.source().clone().unwrap_or_default();
    let pinned = match bind && ctx.pinned_sources && source.is_absolute() {
        true => Some(open_pinned_source(&source)?),
        false => None,
    };
    if let Some(fd) = &pinned {
        // /proc/self/fd/N names exactly the object opened, whatever the path is now.
        source = fd_path(fd);
    }
    let kind = if bind && !source.is_dir() {
        TargetKind::File
    } else {
        TargetKind::Directory
    };
    let target = ctx.root.open_or_create(m.destination(), kind)?;
    let target_path = fd_path(&target);
    let dest = ctx.root.display(m.destination());
    let mut flags = options.flags;
    if bind {
        flags |= MsFlags::MS_BIND;
        mount(
            Some(&source),
            &target_path,
            None::<&str>,
            flags & (MsFlags::MS_BIND | MsFlags::MS_REC),
            None::<&str>,
        )
        .map_err(|e| mount_error(&source, &dest, typ, e))?;
        // A bind mount ignores every flag but MS_BIND|MS_REC: apply the rest with a remount,
        // keeping the flags the kernel locked on the source (in a user namespace they cannot
        // be cleared, and asking to would fail).
        let extra = flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            let target = ctx
                .root
                .open_path(m.destination())
                .map_err(|e| RuntimeError::io("reopen mount", &dest, e))?;
            remount_bind(&fd_path(&target), extra, &dest)?;
        }
    } else {
        let fstype = if typ.is_empty() { None } else { Some(typ) };
        let data = options.data();
        let result = mount(Some(&source), &target_path, fstype, flags, data.as_deref());
        match (result, typ) {
            (Ok(()), _) => {}
            // Without its own network namespace a user namespace may not mount sysfs, and
            // mqueue needs an owned ipc namespace: bind the host's instead, read-only, as
            // runc does.
            (Err(nix::errno::Errno::EPERM), "sysfs" | "mqueue") if ctx.in_user_namespace => {
                let host = if typ == "sysfs" {
                    "/sys"
                } else {
                    "/dev/mqueue"
                };
                mount(
                    Some(host),
                    &target_path,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| mount_error(Path::new(host), &dest, "bind", e))?;
                let target = ctx
                    .root
                    .open_path(m.destination())
                    .map_err(|e| RuntimeError::io("reopen mount", &dest, e))?;
                remount_bind(&fd_path(&target), flags | MsFlags::MS_RDONLY, &dest)?;
            }
            (Err(e), _) => return Err(mount_error(&source, &dest, typ, e)),
        }
    }
    if options.recursive_readonly {
        let target = ctx
            .root
            .open_path(m.destination())
            .map_err(|e| RuntimeError::io("reopen mount", &dest, e))?;
        palisade_sys::mount::set_recursive_readonly(&target)
            .map_err(|e| RuntimeError::io("make recursively read-only", &dest, e))?;
    }
    apply_propagation(ctx.root, m.destination(), &options.propagation)
}

/// Remounts a bind mount with `flags`, OR-ing in the flags the kernel has locked.
pub(crate) fn remount_bind(target: &Path, flags: MsFlags, display: &Path) -> Result<()> {
    let locked = locked_flags(target);
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked,
        None::<&str>,
    )
    .map_err(|e| RuntimeError::sys(format!("remount {display:?} with {flags:?}"), e))
}

/// The flags of the mount at `path` that an unprivileged remount must keep.
fn locked_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(stat) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = stat.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

fn apply_propagation(root: &RootDir, dest: &Path, propagation: &[MsFlags]) -> Result<()> {
    for flags in propagation {
        let target = root
            .open_path(dest)
            .map_err(|e| RuntimeError::io("reopen mount", root.display(dest), e))?;
        mount(
            None::<&str>,
            &fd_path(&target),
            None::<&str>,
            *flags,
            None::<&str>,
        )
        .map_err(|e| {
            RuntimeError::sys(format!("set propagation of {:?}", root.display(dest)), e)
        })?;
    }
    Ok(())
}

/// `cgroup` mounts: with a cgroup namespace on a v2 host, a fresh cgroup2 mount shows exactly
/// the container's cgroup. Otherwise (v1, or no cgroup namespace) the container's own cgroup
/// directories are bound in, so the hierarchy roots, and with them v1's `release_agent`
/// (CVE-2022-0492), are never reachable.
fn mount_cgroup(ctx: &MountContext<'_>, m: &Mount, options: &MountOptions) -> Result<()> {
    let dest = ctx.root.display(m.destination());
    let target = ctx
        .root
        .open_or_create(m.destination(), TargetKind::Directory)?;
    let flags = options.flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
    if ctx.cgroup_unified {
        if ctx.cgroup_namespace {
            mount(
                Some("cgroup2"),
                &fd_path(&target),
                Some("cgroup2"),
                flags,
                None::<&str>,
            )
            .map_err(|e| mount_error(Path::new("cgroup2"), &dest, "cgroup2", e))?;
        } else if let Some((_, dir)) = ctx.cgroup_dirs.first() {
            mount(
                Some(dir),
                &fd_path(&target),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| mount_error(dir, &dest, "bind", e))?;
            remount_bind(&fd_path(&target), flags, &dest)?;
        }
        return Ok(());
    }
    // v1: a tmpfs holding one bind mount per hierarchy, then the tmpfs is made read-only.
    mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .map_err(|e| mount_error(Path::new("tmpfs"), &dest, "tmpfs", e))?;
    for (name, dir) in ctx.cgroup_dirs {
        let inside = m.destination().join(name);
        let sub = ctx.root.open_or_create(&inside, TargetKind::Directory)?;
        mount(
            Some(dir),
            &fd_path(&sub),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| mount_error(dir, &ctx.root.display(&inside), "bind", e))?;
        let sub = ctx
            .root
            .open_path(&inside)
            .map_err(|e| RuntimeError::io("reopen mount", ctx.root.display(&inside), e))?;
        remount_bind(
            &fd_path(&sub),
            flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            &dest,
        )?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let target = ctx
            .root
            .open_path(m.destination())
            .map_err(|e| RuntimeError::io("reopen mount", &dest, e))?;
        mount(
            None::<&str>,
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        )
        .map_err(|e| RuntimeError::sys(format!("remount {dest:?} read-only"), e))?;
    }
    Ok(())
}

fn mount_error(source: &Path, dest: &Path, typ: &str, e: nix::errno::Errno) -> RuntimeError {
    RuntimeError::sys(format!("mount {source:?} on {dest:?} (type {typ:?})"), e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::MountBuilder;

    fn m(dest: &str, typ: &str, options: &[&str]) -> Mount {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source("/somewhere")
            .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
            .unwrap()
    }

    #[test]
    fn proc_overmounts_are_refused() {
        check_destination(&m("/proc", "proc", &[])).unwrap();
        check_destination(&m("/proc/meminfo", "bind", &["bind"])).unwrap();
        assert!(check_destination(&m("/proc", "bind", &["rbind"])).is_err());
        assert!(check_destination(&m("/proc/self", "tmpfs", &[])).is_err());
        assert!(check_destination(&m("/proc/sys", "bind", &["rbind"])).is_err());
        assert!(check_destination(&m("/proc/../proc/sysrq-trigger", "bind", &["bind"])).is_err());
        assert!(check_destination(&m("relative", "tmpfs", &[])).is_err());
    }
}
