//! Paths inside a container's rootfs, resolved by the kernel so that no symlink, `..` or
//! magic link can lead outside it (`openat2` with `RESOLVE_IN_ROOT`).
//!
//! Mount targets are opened here and mounted on through `/proc/self/fd/<n>`, so the
//! directory that was checked is the one that gets the mount, even if the rootfs changes
//! between the check and the mount.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
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
        let rel = relative(inside);
        let mut so_far = PathBuf::new();
        let components: Vec<_> = rel.components().collect();
        for (index, component) in components.iter().enumerate() {
            let Component::Normal(name) = component else {
                continue;
            };
            let parent = self
                .open_path(&so_far)
                .map_err(|e| RuntimeError::io("resolve in rootfs", self.display(&so_far), e))?;
            so_far.push(name);
            let last = index + 1 == components.len();
            let result = if last && kind == TargetKind::File {
                rustix::fs::openat(
                    parent.as_fd(),
                    *name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::CLOEXEC
                        | OFlags::NOFOLLOW,
                    Mode::from_raw_mode(0o644),
                )
                .map(drop)
            } else {
                rustix::fs::mkdirat(parent.as_fd(), *name, Mode::from_raw_mode(0o755))
            };
            match result {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => {
                    return Err(RuntimeError::io(
                        "create in rootfs",
                        self.display(&so_far),
                        e.into(),
                    ))
                }
            }
        }
        self.open_path(inside)
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
