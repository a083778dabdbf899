//! The new mount API calls that neither `nix` nor `rustix` wrap (`mount_setattr`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
const AT_RECURSIVE: libc::c_uint = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes the mount at `target` and every mount below it read-only (`mount_setattr` with
/// `AT_RECURSIVE`), which a plain remount cannot do for submounts.
pub fn set_recursive_readonly(target: &impl std::os::fd::AsFd) -> io::Result<()> {
    let target: BorrowedFd<'_> = target.as_fd();
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a valid `struct mount_attr` that lives across the call, its size is
    // passed alongside, the path is a NUL-terminated empty string used with AT_EMPTY_PATH, and
    // `target` is an open descriptor borrowed for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// Turns the detached mount `tree` (from `open_tree(OPEN_TREE_CLONE)`) into an id-mapped mount
/// using the id maps of the user namespace `userns`, optionally read-only, and for every
/// mount below it when `recursive`.
pub fn set_idmap(
    tree: &impl std::os::fd::AsFd,
    userns: &impl std::os::fd::AsFd,
    read_only: bool,
    recursive: bool,
) -> io::Result<()> {
    let tree: BorrowedFd<'_> = tree.as_fd();
    let userns_fd = u64::try_from(userns.as_fd().as_raw_fd())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr_set = MOUNT_ATTR_IDMAP;
    if read_only {
        attr_set |= MOUNT_ATTR_RDONLY;
    }
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd,
    };
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: as in `set_recursive_readonly`: `attr` is a valid `struct mount_attr` living
    // across the call with its size passed alongside, the path is an empty NUL-terminated
    // string used with AT_EMPTY_PATH, and both descriptors are borrowed open descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
