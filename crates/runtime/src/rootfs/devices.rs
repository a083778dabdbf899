//! The container's /dev: the default device set, `linux.devices`, and the usual symlinks.
//!
//! Only the devices listed here exist in the container; the device cgroup (set up by the
//! cgroups crate) denies everything else even if a node appears.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::resolve::{fd_path, relative, RootDir, TargetKind};
use crate::error::{Result, RuntimeError};

/// A device node to create: path, type, major, minor, mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceNode {
    pub(crate) path: PathBuf,
    pub(crate) kind: SFlag,
    pub(crate) major: u64,
    pub(crate) minor: u64,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// The devices every container gets, as the runtime spec requires.
pub(crate) fn default_devices() -> Vec<DeviceNode> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| DeviceNode {
        path: PathBuf::from("/dev").join(name),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

impl DeviceNode {
    pub(crate) fn from_spec(device: &LinuxDevice) -> Result<Self> {
        let kind = match device.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(RuntimeError::InvalidConfig(format!(
                    "device {:?}: type \"a\" is only valid in the device cgroup",
                    device.path()
                )))
            }
        };
        if !device.path().starts_with("/dev") {
            return Err(RuntimeError::InvalidConfig(format!(
                "device {:?} must be under /dev",
                device.path()
            )));
        }
        Ok(DeviceNode {
            path: device.path().clone(),
            kind,
            major: u64::try_from(device.major()).unwrap_or_default(),
            minor: u64::try_from(device.minor()).unwrap_or_default(),
            mode: device.file_mode().unwrap_or(0o666) & 0o7777,
            uid: device.uid().unwrap_or(0),
            gid: device.gid().unwrap_or(0),
        })
    }
}

/// Creates `nodes` in the rootfs: `mknod` when allowed, else (in a user namespace) a bind
/// mount of the host's node over an empty file.
pub(crate) fn create_devices(root: &RootDir, nodes: &[DeviceNode], bind: bool) -> Result<()> {
    for node in nodes {
        if bind {
            bind_device(root, node)?;
        } else {
            match make_node(root, node) {
                Ok(()) => {}
                Err(nix::errno::Errno::EPERM) => bind_device(root, node)?,
                Err(e) => {
                    return Err(RuntimeError::sys(
                        format!("mknod {:?}", root.display(&node.path)),
                        e,
                    ))
                }
            }
        }
    }
    Ok(())
}

fn make_node(root: &RootDir, node: &DeviceNode) -> nix::Result<()> {
    let rel = relative(&node.path);
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().ok_or(nix::errno::Errno::EINVAL)?;
    let dir = root
        .open_or_create(parent, TargetKind::Directory)
        .map_err(|_| nix::errno::Errno::ENOENT)?;
    // A node left over (or planted by the image) is replaced: the config decides what it is.
    let dir_path = fd_path(&dir);
    let _ = nix::unistd::unlinkat(
        None,
        &dir_path.join(name),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    let dev = makedev(node.major, node.minor);
    mknodat(
        None,
        &dir_path.join(name),
        node.kind,
        Mode::from_bits_truncate(node.mode),
        dev,
    )?;
    let path = dir_path.join(name);
    // mknod applies the umask; the config's mode is what must stick.
    nix::sys::stat::fchmodat(
        None,
        &path,
        Mode::from_bits_truncate(node.mode),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .or_else(|_| {
        nix::sys::stat::fchmodat(
            None,
            &path,
            Mode::from_bits_truncate(node.mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
    })?;
    nix::unistd::fchownat(
        None,
        &path,
        Some(nix::unistd::Uid::from_raw(node.uid)),
        Some(nix::unistd::Gid::from_raw(node.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

fn bind_device(root: &RootDir, node: &DeviceNode) -> Result<()> {
    let target = root.open_or_create(&node.path, TargetKind::File)?;
    mount(
        Some(&node.path),
        &fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| RuntimeError::sys(format!("bind device {:?}", node.path), e))
}

/// `/dev/fd`, `/dev/std*`, `/dev/ptmx` and `/dev/core`-free symlinks.
pub(crate) fn create_symlinks(root: &RootDir, with_pts: bool) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ];
    if with_pts {
        links.push(("pts/ptmx", "/dev/ptmx"));
    }
    for (to, at) in links {
        let host = root.display(Path::new(at));
        if with_pts && at == "/dev/ptmx" {
            let _ = std::fs::remove_file(&host);
        }
        match symlink(to, &host) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(RuntimeError::io("create symlink", host, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceBuilder;

    #[test]
    fn the_default_set_is_minimal() {
        let names: Vec<_> = default_devices().into_iter().map(|d| d.path).collect();
        assert_eq!(names.len(), 6);
        assert!(!names
            .iter()
            .any(|p| p.ends_with("mem") || p.ends_with("kmsg") || p.ends_with("kvm")));
    }

    #[test]
    fn spec_devices_are_checked() {
        let ok = LinuxDeviceBuilder::default()
            .path("/dev/fuse")
            .typ(LinuxDeviceType::C)
            .major(10)
            .minor(229)
            .build()
            .unwrap();
        let node = DeviceNode::from_spec(&ok).unwrap();
        assert_eq!((node.major, node.minor, node.mode), (10, 229, 0o666));
        let outside = LinuxDeviceBuilder::default()
            .path("/etc/sda")
            .typ(LinuxDeviceType::B)
            .major(8)
            .minor(0)
            .build()
            .unwrap();
        assert!(DeviceNode::from_spec(&outside).is_err());
        let all = LinuxDeviceBuilder::default()
            .path("/dev/x")
            .typ(LinuxDeviceType::A)
            .build()
            .unwrap();
        assert!(DeviceNode::from_spec(&all).is_err());
    }
}
