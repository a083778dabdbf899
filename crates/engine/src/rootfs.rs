//! A container's root filesystem: an overlay of the shared, read-only layers under the
//! container's own upper directory, and host-side access to files in it that never leaves it.
//!
//! Host root reads the image's `/etc/passwd` and creates its working directory before the
//! container runs. The image is untrusted, so every such path is resolved with `openat2`'s
//! `RESOLVE_IN_ROOT` (a symlink to `/etc/shadow` or `../../..` stays inside the rootfs),
//! without crossing mounts or following magic links, and files are opened non-blocking and
//! checked to be regular files (a FIFO at `/etc/passwd` cannot hang `palisade run`).

use std::fs;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rustix::fs::{Mode, OFlags, ResolveFlags};

/// Longest overlay option string the kernel takes (one page, with room for the terminator).
const MAX_MOUNT_DATA: usize = 4000;

/// Failure to set up, tear down or read a container's rootfs.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The overlay could not be mounted.
    #[error("failed to mount the container's overlay at {target:?}")]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The overlay could not be unmounted.
    #[error("failed to unmount the container's overlay at {target:?}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Too many layers for one overlay mount's option string.
    #[error("the image has too many layers ({layers}) for one overlay mount")]
    TooManyLayers {
        /// How many.
        layers: usize,
    },
    /// A path in the rootfs could not be read or created.
    #[error("failed to {operation} {path:?} in the container's rootfs")]
    InRoot {
        /// What was being done.
        operation: &'static str,
        /// The path inside the container.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A host-side directory could not be prepared.
    #[error("failed to prepare {path:?}")]
    Prepare {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The overlay directories of one container.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Lower directories, lowest first.
    pub layers: Vec<PathBuf>,
    /// `<container>/overlay/upper`.
    pub upper: PathBuf,
    /// `<container>/overlay/work`.
    pub work: PathBuf,
    /// `<container>/overlay/empty`: the lower directory of an image without layers.
    pub empty: PathBuf,
    /// `<container>/bundle/rootfs`, the mount point.
    pub target: PathBuf,
}

impl Overlay {
    /// The overlay of the container whose directory is `container_dir`.
    pub fn new(container_dir: &Path, layers: Vec<PathBuf>) -> Self {
        let overlay = container_dir.join("overlay");
        Self {
            layers,
            upper: overlay.join("upper"),
            work: overlay.join("work"),
            empty: overlay.join("empty"),
            target: container_dir.join("bundle").join("rootfs"),
        }
    }

    /// Creates the upper, work and mount-point directories: upper and work owned by the
    /// container's root (upper is the merged root directory's owner), behind a private
    /// `overlay/` directory.
    pub fn prepare(&self, root_uid: u32, root_gid: u32) -> Result<(), RootfsError> {
        let prepare = |path: &Path| {
            let path = path.to_owned();
            move |source| RootfsError::Prepare { path, source }
        };
        if let Some(parent) = self.upper.parent() {
            crate::paths::ensure_dir(parent, 0o700).map_err(|e| RootfsError::Prepare {
                path: parent.to_owned(),
                source: io::Error::other(e),
            })?;
        }
        for dir in [&self.upper, &self.work, &self.empty, &self.target] {
            match fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(prepare(dir)(e)),
            }
        }
        for dir in [&self.upper, &self.work] {
            std::os::unix::fs::chown(dir, Some(root_uid), Some(root_gid)).map_err(prepare(dir))?;
        }
        fs::set_permissions(&self.upper, fs::Permissions::from_mode(0o755))
            .map_err(prepare(&self.upper))?;
        fs::set_permissions(&self.work, fs::Permissions::from_mode(0o700))
            .map_err(prepare(&self.work))?;
        fs::set_permissions(&self.target, fs::Permissions::from_mode(0o755))
            .map_err(prepare(&self.target))?;
        Ok(())
    }

    /// The overlay's option string: upper layers first, as overlayfs wants them.
    pub fn mount_data(&self) -> Result<String, RootfsError> {
        let lower: Vec<String> = if self.layers.is_empty() {
            vec![self.empty.display().to_string()]
        } else {
            self.layers
                .iter()
                .rev()
                .map(|l| l.display().to_string())
                .collect()
        };
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            self.upper.display(),
            self.work.display()
        );
        if data.len() > MAX_MOUNT_DATA {
            return Err(RootfsError::TooManyLayers {
                layers: self.layers.len(),
            });
        }
        Ok(data)
    }

    /// Whether the overlay is mounted (the mount point is on another device than its parent).
    pub fn is_mounted(&self) -> bool {
        let Some(parent) = self.target.parent() else {
            return false;
        };
        match (fs::metadata(&self.target), fs::metadata(parent)) {
            (Ok(target), Ok(parent)) => target.dev() != parent.dev(),
            _ => false,
        }
    }

    /// Mounts the overlay unless it is mounted. `nosuid` and `nodev`: the unpacker already
    /// drops setuid bits and device nodes; the mount flags say so again.
    pub fn mount(&self) -> Result<(), RootfsError> {
        if self.is_mounted() {
            return Ok(());
        }
        let data = self.mount_data()?;
        mount(
            Some("overlay"),
            &self.target,
            Some("overlay"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(data.as_str()),
        )
        .map_err(|e| RootfsError::Mount {
            target: self.target.clone(),
            source: e.into(),
        })
    }

    /// Unmounts the overlay if it is mounted; a busy mount is detached (it goes away when
    /// its last user does).
    pub fn unmount(&self) -> Result<(), RootfsError> {
        if !self.is_mounted() {
            return Ok(());
        }
        let result = match umount2(&self.target, MntFlags::empty()) {
            Err(nix::errno::Errno::EBUSY) => umount2(&self.target, MntFlags::MNT_DETACH),
            other => other,
        };
        match result {
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(RootfsError::Unmount {
                target: self.target.clone(),
                source: e.into(),
            }),
        }
    }
}

/// The rootfs of a container, seen from the host, for reads and creates that stay inside it.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
}

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV
}

/// `path` made relative (a container path is absolute; `.` and `..` are left for
/// `RESOLVE_IN_ROOT` to clamp).
fn relative(path: &str) -> PathBuf {
    let trimmed = path.trim_start_matches('/');
    if trimmed.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(trimmed)
    }
}

impl RootDir {
    /// Opens the rootfs directory `path`.
    pub fn open(path: &Path) -> Result<Self, RootfsError> {
        let fd = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| RootfsError::Prepare {
            path: path.to_owned(),
            source: e.into(),
        })?;
        Ok(Self { fd })
    }

    /// Reads a regular file of at most `limit` bytes at `path` (a container path); `None` if
    /// it does not exist.
    pub fn read_file(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, RootfsError> {
        let fail = |operation, source: io::Error| RootfsError::InRoot {
            operation,
            path: path.to_owned(),
            source,
        };
        let fd = match rustix::fs::openat2(
            &self.fd,
            relative(path),
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
            resolve_flags(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(fail("open", e.into())),
        };
        let file = fs::File::from(fd);
        let meta = file.metadata().map_err(|e| fail("inspect", e))?;
        if !meta.is_file() {
            return Err(fail(
                "read",
                io::Error::new(io::ErrorKind::InvalidData, "not a regular file"),
            ));
        }
        if meta.len() > limit {
            return Err(fail(
                "read",
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("larger than {limit} bytes"),
                ),
            ));
        }
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail("read", e))?;
        if bytes.len() as u64 > limit {
            return Err(fail(
                "read",
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("larger than {limit} bytes"),
                ),
            ));
        }
        Ok(Some(bytes))
    }

    /// Whether `path` is a directory (symlinks resolved inside the rootfs).
    pub fn is_dir(&self, path: &str) -> bool {
        rustix::fs::openat2(
            &self.fd,
            relative(path),
            OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            resolve_flags(),
        )
        .is_ok()
    }

    /// Creates directory `path` and its missing parents (mode 0755), the new ones owned by
    /// `uid:gid` (host ids), as Docker does for a `WORKDIR` that is not in the image.
    pub fn create_dir_all(&self, path: &str, uid: u32, gid: u32) -> Result<(), RootfsError> {
        let fail = |operation, source: io::Error| RootfsError::InRoot {
            operation,
            path: path.to_owned(),
            source,
        };
        let mut prefix = PathBuf::new();
        for component in Path::new(path).components() {
            let name = match component {
                Component::Normal(name) => name,
                Component::RootDir | Component::CurDir => continue,
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(fail(
                        "create",
                        io::Error::new(io::ErrorKind::InvalidInput, "'..' in the path"),
                    ))
                }
            };
            let parent = if prefix.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                prefix.clone()
            };
            prefix.push(name);
            if self.is_dir(&prefix.to_string_lossy()) {
                continue;
            }
            let parent_fd = rustix::fs::openat2(
                &self.fd,
                &parent,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
                resolve_flags(),
            )
            .map_err(|e| fail("open the parent of", e.into()))?;
            match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => {
                    // A non-directory (or a symlink we would have to follow) is in the way.
                    return Err(fail(
                        "create",
                        io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            "exists and is not a directory",
                        ),
                    ));
                }
                Err(e) => return Err(fail("create", e.into())),
            }
            rustix::fs::chownat(
                &parent_fd,
                name,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| fail("chown", e.into()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        fs::write(dir.path().join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("etc/escape")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("etc/abs")).unwrap();
        nix::unistd::mkfifo(&root.join("etc/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let rootdir = RootDir::open(&root).unwrap();
        assert_eq!(
            rootdir.read_file("/etc/passwd", 100).unwrap().unwrap(),
            b"root:x:0:0::/:/bin/sh\n"
        );
        // ../../secret resolves to /secret inside the root, which does not exist.
        assert_eq!(rootdir.read_file("/etc/escape", 100).unwrap(), None);
        // An absolute symlink resolves inside the root too.
        assert_eq!(
            rootdir.read_file("/etc/abs", 100).unwrap().unwrap(),
            b"root:x:0:0::/:/bin/sh\n"
        );
        assert!(rootdir.read_file("/etc/fifo", 100).is_err());
        assert!(rootdir.read_file("/etc/passwd", 3).is_err());
        assert_eq!(rootdir.read_file("/nope/x", 100).unwrap(), None);
    }

    #[test]
    fn directories_are_created_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(&root).unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let rootdir = RootDir::open(&root).unwrap();
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        rootdir.create_dir_all("/srv/app", uid, gid).unwrap();
        assert!(root.join("srv/app").is_dir());
        // The symlink's target is taken inside the root: nothing appears outside.
        rootdir.create_dir_all("/link/made", uid, gid).unwrap_or(());
        assert!(!outside.join("made").exists());
        assert!(rootdir.create_dir_all("/a/../b", uid, gid).is_err());
    }

    #[test]
    fn overlay_options_put_the_top_layer_first() {
        let overlay = Overlay::new(
            Path::new("/s/containers/c"),
            vec![PathBuf::from("/l/1"), PathBuf::from("/l/2")],
        );
        assert_eq!(
            overlay.mount_data().unwrap(),
            "lowerdir=/l/2:/l/1,upperdir=/s/containers/c/overlay/upper,workdir=/s/containers/c/overlay/work"
        );
        let many = Overlay::new(Path::new("/c"), vec![PathBuf::from("/".repeat(100)); 50]);
        assert!(matches!(
            many.mount_data(),
            Err(RootfsError::TooManyLayers { layers: 50 })
        ));
    }
}
