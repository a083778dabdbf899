//! Where the engine keeps things under the store root, and who may traverse them.
//!
//! The runtime opens a container's rootfs by path from inside the user namespace, as the
//! container's root: an unprivileged host uid that sees root-owned directories as "other".
//! So the store root and the path down to each bundle are 0711 (traversable, not listable),
//! while everything that only host root needs (blobs, layers, overlay upper/work, logs,
//! records) stays behind 0700 directories or 0600 files.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::id::ContainerId;

/// Failure to prepare the engine's directories.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    /// A directory could not be created or its mode set.
    #[error("failed to prepare directory {path:?}")]
    Prepare {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A directory above the store root is closed to other users.
    #[error("{path:?} is not traversable by other users (mode {mode:o}): the container's root (an unprivileged host uid) must reach its rootfs under the store; `chmod o+x` it or choose another --root")]
    NotTraversable {
        /// The directory.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The store root's path cannot be used in an overlay mount option.
    #[error("store root {path:?} contains ',' or ':', which overlayfs mount options cannot carry")]
    UnusableRoot {
        /// The root.
        path: PathBuf,
    },
}

/// The engine's directories under a store root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnginePaths {
    root: PathBuf,
}

impl EnginePaths {
    /// Paths under `root` (an absolute store root); nothing is created.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/layers`: unpacked layers.
    pub fn layers(&self) -> PathBuf {
        self.root.join("layers")
    }

    /// `<root>/containers`.
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// `<root>/containers/<id>`.
    pub fn container(&self, id: &ContainerId) -> PathBuf {
        self.containers().join(id.as_str())
    }

    /// `<root>/volumes`.
    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }

    /// `<root>/audit`.
    pub fn audit(&self) -> PathBuf {
        self.root.join("audit")
    }

    /// The engine's audit log.
    pub fn engine_audit_log(&self) -> PathBuf {
        self.audit().join("engine.log")
    }

    /// The audit log handed to `palisade-runtime --audit-log`.
    pub fn runtime_audit_log(&self) -> PathBuf {
        self.audit().join("runtime.log")
    }

    /// Creates the engine's directories with their modes (see the module docs). Idempotent.
    pub fn prepare(&self) -> Result<(), PathsError> {
        let text = self.root.as_os_str().as_encoded_bytes();
        if text.contains(&b',') || text.contains(&b':') {
            return Err(PathsError::UnusableRoot {
                path: self.root.clone(),
            });
        }
        ensure_dir(&self.root, 0o711)?;
        let mut ancestor = self.root.parent();
        while let Some(dir) = ancestor {
            let mode = fs::metadata(dir)
                .map_err(|source| PathsError::Prepare {
                    path: dir.to_owned(),
                    source,
                })?
                .permissions()
                .mode();
            if mode & 0o001 == 0 {
                return Err(PathsError::NotTraversable {
                    path: dir.to_owned(),
                    mode: mode & 0o7777,
                });
            }
            ancestor = dir.parent();
        }
        // Blobs are for host root only; the store creates them with the umask's mode.
        let blobs = self.root.join("blobs");
        if blobs.is_dir() {
            set_mode(&blobs, 0o700)?;
        }
        ensure_dir(&self.layers(), 0o700)?;
        ensure_dir(&self.containers(), 0o711)?;
        ensure_dir(&self.volumes(), 0o711)?;
        Ok(())
    }
}

/// Creates `path` (and missing parents) and gives it exactly `mode`.
pub(crate) fn ensure_dir(path: &Path, mode: u32) -> Result<(), PathsError> {
    match fs::DirBuilder::new()
        .mode(mode)
        .recursive(true)
        .create(path)
    {
        Ok(()) => set_mode(path, mode),
        Err(source) => Err(PathsError::Prepare {
            path: path.to_owned(),
            source,
        }),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), PathsError> {
    let current = fs::symlink_metadata(path).map_err(|source| PathsError::Prepare {
        path: path.to_owned(),
        source,
    })?;
    if !current.is_dir() {
        return Err(PathsError::Prepare {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::AlreadyExists, "not a directory"),
        });
    }
    if current.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| {
            PathsError::Prepare {
                path: path.to_owned(),
                source,
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_sets_modes_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
        let paths = EnginePaths::new(dir.path().join("store"));
        paths.prepare().unwrap();
        paths.prepare().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(paths.root()), 0o711);
        assert_eq!(mode(&paths.layers()), 0o700);
        assert_eq!(mode(&paths.containers()), 0o711);
    }

    #[test]
    fn a_store_under_a_closed_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let paths = EnginePaths::new(dir.path().join("store"));
        assert!(matches!(
            paths.prepare(),
            Err(PathsError::NotTraversable { .. })
        ));
    }

    #[test]
    fn roots_overlayfs_cannot_name_are_refused() {
        let paths = EnginePaths::new("/tmp/a:b");
        assert!(matches!(
            paths.prepare(),
            Err(PathsError::UnusableRoot { .. })
        ));
    }
}
