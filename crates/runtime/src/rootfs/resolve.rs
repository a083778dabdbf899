//! Paths inside a container's rootfs, resolved by the kernel so that no symlink, `..` or
//! magic link can lead outside it (`openat2` with `RESOLVE_IN_ROOT`).
//!
//! Mount targets are opened here and mounted on through `/proc/self/fd/<n>`, so the
//! directory that was checked is the one that gets the mount, even if the rootfs changes
//! between the check and the mount.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::error::{Result, RuntimeError};

/// An open rootfs directory.
#[derive(Debug)]
pub(crate) struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// What to create when a mount destination does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetKind {
    Directory,
    File,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl RootDir {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RuntimeError::io("open rootfs", path, e.into()))?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `inside` (absolute or relative to the rootfs) with `O_PATH`, resolved in the root.
    pub(crate) fn open_path(&self, inside: &Path) -> std::io::Result<OwnedFd> {
        let rel = relative(inside);
        rustix::fs::openat2(
            self.fd.as_fd(),
            if rel.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &rel
            },
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
        .map_err(Into::into)
    }

    /// Opens `inside`, creating it (and its parents, as directories) if missing.
    ///
    /// Symlinks on the way are followed by hand, within the root (an absolute target restarts
    /// at the rootfs, `..` stops at it), and missing targets are created inside the rootfs, so
    /// a dangling link to a host path makes a directory in the container, never on the host.
    pub(crate) fn open_or_create(&self, inside: &Path, kind: TargetKind) -> Result<OwnedFd> {
        match self.open_path(inside) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(RuntimeError::io(
                    "resolve in rootfs",
                    self.display(inside),
                    e,
                ))
            }
        }
        let mut pending: std::collections::VecDeque<std::ffi::OsString> =
            relative(inside).iter().map(ToOwned::to_owned).collect();
        let mut resolved = PathBuf::new();
        let mut links = 0;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                resolved.pop();
                continue;
            }
            if name == "." {
                continue;
            }
            let parent = self
                .open_path(&resolved)
                .map_err(|e| RuntimeError::io("resolve in rootfs", self.display(&resolved), e))?;
            let here = resolved.join(&name);
            let last = pending.is_empty();
            match rustix::fs::statat(parent.as_fd(), &name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat)
                    if rustix::fs::FileType::from_raw_mode(stat.st_mode)
                        == rustix::fs::FileType::Symlink =>
                {
                    links += 1;
                    if links > 40 {
                        return Err(RuntimeError::io(
                            "resolve in rootfs",
                            self.display(inside),
                            std::io::Error::from_raw_os_error(libc::ELOOP),
                        ));
                    }
                    let target = rustix::fs::readlinkat(parent.as_fd(), &name, Vec::new())
                        .map_err(|e| {
                            RuntimeError::io(
                                "read symlink in rootfs",
                                self.display(&here),
                                e.into(),
                            )
                        })?;
                    let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
                    if target.is_absolute() {
                        resolved = PathBuf::new();
                    }
                    for component in target.iter().rev().filter(|c| *c != "/") {
                        pending.push_front(component.to_owned());
                    }
                }
                Ok(_) => resolved.push(&name),
                Err(rustix::io::Errno::NOENT) => {
                    let made = if last && kind == TargetKind::File {
                        rustix::fs::openat(
                            parent.as_fd(),
                            &name,
                            OFlags::CREATE
                                | OFlags::EXCL
                                | OFlags::WRONLY
                                | OFlags::CLOEXEC
                                | OFlags::NOFOLLOW,
                            Mode::from_raw_mode(0o644),
                        )
                        .map(drop)
                    } else {
                        rustix::fs::mkdirat(parent.as_fd(), &name, Mode::from_raw_mode(0o755))
                    };
                    match made {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => resolved.push(&name),
                        Err(e) => {
                            let hint = if e == rustix::io::Errno::ACCESS {
                                " (the container's root cannot write there: create it in the image, or give the rootfs to the container's uid range)"
                            } else {
                                ""
                            };
                            return Err(RuntimeError::io(
                                "create in rootfs",
                                self.display(&here),
                                std::io::Error::new(
                                    std::io::Error::from(e).kind(),
                                    format!("{}{hint}", std::io::Error::from(e)),
                                ),
                            ));
                        }
                    }
                }
                Err(e) => {
                    return Err(RuntimeError::io(
                        "inspect in rootfs",
                        self.display(&here),
                        e.into(),
                    ))
                }
            }
        }
        self.open_path(&resolved)
            .map_err(|e| RuntimeError::io("resolve in rootfs", self.display(inside), e))
    }

    /// The host path for messages.
    pub(crate) fn display(&self, inside: &Path) -> PathBuf {
        self.path.join(relative(inside))
    }
}

/// `/a/../b` → `b`, with `..` clamped at the root, as the container would see it.
pub(crate) fn relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The `/proc/self/fd/<n>` path of an open descriptor, used as a race-free mount target.
pub(crate) fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn relative_clamps_parent_components() {
        assert_eq!(relative(Path::new("/a/../../b/./c")), PathBuf::from("b/c"));
        assert_eq!(relative(Path::new("/")), PathBuf::new());
    }

    #[test]
    fn symlinks_cannot_escape_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.path().join("escape")).unwrap();
        symlink("../../../../", root.path().join("up")).unwrap();
        let dir = RootDir::open(root.path()).unwrap();
        dir.open_or_create(Path::new("/escape/made"), TargetKind::Directory)
            .unwrap();
        dir.open_or_create(Path::new("/up/etc/passwd"), TargetKind::File)
            .unwrap();
        assert!(
            !outside.path().join("made").exists(),
            "created outside the rootfs"
        );
        assert!(root
            .path()
            .join(outside.path().strip_prefix("/").unwrap())
            .join("made")
            .is_dir());
        assert!(root.path().join("etc/passwd").is_file());
    }

    #[test]
    fn dangling_symlinks_get_their_target_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let host_target = outside.path().join("not-yet");
        symlink(&host_target, root.path().join("dangling")).unwrap();
        let dir = RootDir::open(root.path()).unwrap();
        dir.open_or_create(Path::new("/dangling/inner"), TargetKind::Directory)
            .unwrap();
        assert!(!host_target.exists(), "created on the host");
        let inside = root
            .path()
            .join(host_target.strip_prefix("/").unwrap())
            .join("inner");
        assert!(inside.is_dir(), "{inside:?} missing");
    }

    #[test]
    fn creates_files_and_directories() {
        let root = tempfile::tempdir().unwrap();
        let dir = RootDir::open(root.path()).unwrap();
        dir.open_or_create(Path::new("/a/b/c"), TargetKind::Directory)
            .unwrap();
        dir.open_or_create(Path::new("/a/f"), TargetKind::File)
            .unwrap();
        assert!(root.path().join("a/b/c").is_dir());
        assert!(root.path().join("a/f").is_file());
        // Existing targets are opened, not recreated.
        dir.open_or_create(Path::new("/a/f"), TargetKind::File)
            .unwrap();
    }
}
