//! The container's root filesystem: mounts, devices, pivot_root, masked and read-only paths.
//!
//! Runs in the container's init, in its new mount namespace, before the user process exists.

pub(crate) mod devices;
pub(crate) mod idmap;
pub(crate) mod mounts;
pub(crate) mod options;
pub(crate) mod resolve;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Spec;

use crate::error::{Result, RuntimeError};
use devices::DeviceNode;
use mounts::MountContext;
use resolve::{fd_path, RootDir};

/// Everything `prepare` needs besides the config.
#[derive(Debug)]
pub(crate) struct RootfsPlan<'a> {
    pub(crate) spec: &'a Spec,
    pub(crate) rootfs: &'a Path,
    pub(crate) in_user_namespace: bool,
    pub(crate) cgroup_namespace: bool,
    pub(crate) cgroup_dirs: &'a [(String, PathBuf)],
    pub(crate) cgroup_unified: bool,
    /// Id-mapped mounts prepared by the runtime, by index into the config's mounts.
    pub(crate) idmapped: &'a [idmap::IdmappedMount],
}

/// Steps before pivot_root: make our mounts private to this namespace, bind the rootfs onto
/// itself, mount the config's mounts in order, and populate /dev.
pub(crate) fn prepare(plan: &RootfsPlan<'_>) -> Result<()> {
    let linux = plan.spec.linux().as_ref();
    let propagation = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(options::rootfs_propagation)
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    let host_side = host_side_propagation(propagation);
    mount(None::<&str>, "/", None::<&str>, host_side, None::<&str>)
        .map_err(|e| RuntimeError::sys("make / a slave mount", e))?;
    mount(
        Some(plan.rootfs),
        plan.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| RuntimeError::sys(format!("bind rootfs {:?} onto itself", plan.rootfs), e))?;

    let root = RootDir::open(plan.rootfs)?;
    let ctx = MountContext {
        root: &root,
        in_user_namespace: plan.in_user_namespace,
        cgroup_namespace: plan.cgroup_namespace,
        cgroup_dirs: plan.cgroup_dirs,
        cgroup_unified: plan.cgroup_unified,
        pinned_sources: plan
            .spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(mounts::PINNED_BIND_SOURCES))
            .is_some_and(|v| v == "no-symlinks"),
    };
    let mounts = plan.spec.mounts().as_deref().unwrap_or_default();
    for (index, m) in mounts.iter().enumerate() {
        match plan.idmapped.iter().find(|t| t.index == index) {
            Some(prepared) => {
                let kind = if m.source().as_ref().is_some_and(|s| s.is_dir()) {
                    resolve::TargetKind::Directory
                } else {
                    resolve::TargetKind::File
                };
                let target = root.open_or_create(m.destination(), kind)?;
                idmap::attach(&prepared.tree, &target)?;
            }
            None => mounts::mount_entry(&ctx, m)?,
        }
    }

    let dev_is_bind = mounts.iter().any(|m| {
        resolve::relative(m.destination()) == Path::new("dev")
            && (m.typ().as_deref() == Some("bind")
                || options::MountOptions::parse(m.options().as_deref().unwrap_or_default()).bind)
    });
    let mut nodes = Vec::new();
    if !dev_is_bind {
        nodes.extend(devices::default_devices());
    }
    for device in linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
    {
        nodes.retain(|n: &DeviceNode| n.path != *device.path());
        nodes.push(DeviceNode::from_spec(device)?);
    }
    devices::create_devices(&root, &nodes, plan.in_user_namespace)?;
    if !dev_is_bind {
        let with_pts = mounts
            .iter()
            .any(|m| resolve::relative(m.destination()) == Path::new("dev/pts"));
        devices::create_symlinks(&root, with_pts)?;
    }
    Ok(())
}

/// The propagation given to the namespace's copy of the host's "/" before the rootfs is
/// bound. Shared propagation there would leak our mounts to the host, and an unbindable "/"
/// could not have the rootfs bound from it (EINVAL): only slave/private here; a requested
/// "shared" or "unbindable" is applied to the new root after pivot_root (`finish`).
fn host_side_propagation(requested: MsFlags) -> MsFlags {
    if requested.intersects(MsFlags::MS_SHARED | MsFlags::MS_UNBINDABLE) {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    } else {
        requested | MsFlags::MS_REC
    }
}

/// Makes the rootfs the process's root. With `no_pivot` (for ramdisk roots where pivot_root
/// is impossible) the rootfs is moved over `/` and chrooted into, which is weaker: the old
/// root stays reachable to a process that can escape the chroot.
pub(crate) fn enter(rootfs: &Path, no_pivot: bool) -> Result<()> {
    if no_pivot {
        nix::unistd::chdir(rootfs).map_err(|e| RuntimeError::sys("chdir to rootfs", e))?;
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(|e| RuntimeError::sys("move rootfs over /", e))?;
        nix::unistd::chroot(".").map_err(|e| RuntimeError::sys("chroot into rootfs", e))?;
        return nix::unistd::chdir("/").map_err(|e| RuntimeError::sys("chdir /", e));
    }
    use rustix::fs::OFlags;
    let dir = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    let old_root = rustix::fs::open("/", dir, rustix::fs::Mode::empty())
        .map_err(|e| RuntimeError::sys("open old root", std::io::Error::from(e)))?;
    let new_root = rustix::fs::open(rootfs, dir, rustix::fs::Mode::empty())
        .map_err(|e| RuntimeError::sys("open new root", std::io::Error::from(e)))?;
    nix::unistd::fchdir(new_root.as_raw_fd())
        .map_err(|e| RuntimeError::sys("fchdir to rootfs", e))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; it is then detached
    // from where we stand, so no path leads back to the host's filesystem.
    nix::unistd::pivot_root(".", ".").map_err(|e| RuntimeError::sys("pivot_root", e))?;
    nix::unistd::fchdir(old_root.as_raw_fd())
        .map_err(|e| RuntimeError::sys("fchdir to old root", e))?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| RuntimeError::sys("make old root a slave", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| RuntimeError::sys("detach old root", e))?;
    nix::unistd::chdir("/").map_err(|e| RuntimeError::sys("chdir /", e))
}

/// Steps after pivot_root: propagation of the new root, masked paths, read-only paths, and
/// a read-only rootfs.
pub(crate) fn finish(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    if let Some(flags) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(options::rootfs_propagation)
    {
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .map_err(|e| RuntimeError::sys("set rootfs propagation", e))?;
    }
    check_proc()?;
    for path in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default()
    {
        mask_path(Path::new(path))?;
    }
    for path in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default()
    {
        readonly_path(Path::new(path))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        mounts::remount_bind(Path::new("/"), MsFlags::MS_RDONLY, Path::new("/"))?;
    }
    Ok(())
}

/// Refuses to go on if /proc is not a real procfs (a container image or a mount could have
/// put something else there to fool writes the runtime makes under it).
fn check_proc() -> Result<()> {
    match nix::sys::statfs::statfs("/proc") {
        Ok(stat) if stat.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC => Ok(()),
        Ok(_) => Err(RuntimeError::InvalidConfig(
            "/proc in the container is not procfs: refusing to continue".into(),
        )),
        // No /proc at all: nothing under it can be masked or written.
        Err(_) => Ok(()),
    }
}

fn open_nofollow(path: &Path) -> Result<Option<std::os::fd::OwnedFd>> {
    use rustix::fs::OFlags;
    match rustix::fs::open(
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(RuntimeError::sys(
            format!("open {path:?}"),
            std::io::Error::from(e),
        )),
    }
}

/// Hides `path`: a directory gets an empty read-only tmpfs, anything else /dev/null.
fn mask_path(path: &Path) -> Result<()> {
    let Some(fd) = open_nofollow(path)? else {
        return Ok(());
    };
    let is_dir = nix::sys::stat::fstat(fd.as_raw_fd())
        .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .unwrap_or(false);
    let target = fd_path(&fd);
    let result = if is_dir {
        mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0k,mode=000"),
        )
    } else {
        mount(
            Some("/dev/null"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    result.map_err(|e| RuntimeError::sys(format!("mask {path:?}"), e))
}

fn readonly_path(path: &Path) -> Result<()> {
    let Some(fd) = open_nofollow(path)? else {
        return Ok(());
    };
    let target = fd_path(&fd);
    mount(
        Some(&target),
        &target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| RuntimeError::sys(format!("bind {path:?} for read-only"), e))?;
    let fd = open_nofollow(path)?
        .ok_or_else(|| RuntimeError::InvalidConfig(format!("{path:?} vanished")))?;
    mounts::remount_bind(&fd_path(&fd), MsFlags::MS_RDONLY | MsFlags::MS_REC, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_side_propagation_is_never_shared_or_unbindable() {
        let slave = MsFlags::MS_SLAVE | MsFlags::MS_REC;
        for requested in ["shared", "rshared", "unbindable", "runbindable"] {
            let flags = options::rootfs_propagation(requested).unwrap();
            assert_eq!(host_side_propagation(flags), slave, "{requested}");
        }
        let private = options::rootfs_propagation("private").unwrap();
        assert_eq!(
            host_side_propagation(private),
            MsFlags::MS_PRIVATE | MsFlags::MS_REC
        );
        assert_eq!(host_side_propagation(slave), slave);
    }
}
