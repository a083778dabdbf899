//! `-v host:ctr[:ro]` binds and `-v name:/path` named volumes.
//!
//! A bind hands a host directory to a container, so the host path is checked first: it must
//! be absolute and exist, and it may not be `/`, anything at or under `/proc`, `/sys`,
//! `/dev`, `/var/lib/palisade`, the store or the runtime's state root, nor a directory that
//! contains the store or the state root (binding `/var` would expose every container's layers
//! and volumes). The checks are made on the canonical path, so a symlink cannot dodge them.
//! The destination may not shadow `/proc`, `/sys` or `/dev`, whose masks the runtime sets up.
//!
//! The check and the mount happen at different times (a container can be started long after
//! it was created), so a user who owns a directory on the checked path could swap in a
//! symlink meanwhile. The engine therefore sets the runtime's `org.palisade.bind-sources=
//! no-symlinks` annotation: the runtime opens each bind source with `RESOLVE_NO_SYMLINKS`
//! and mounts that very descriptor, so a swapped path is refused, never followed.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use crate::paths::EnginePaths;

/// Paths no bind may use, besides the store and the runtime's state root.
const FORBIDDEN_SOURCES: &[&str] = &["/proc", "/sys", "/dev", "/var/lib/palisade"];
/// Destinations whose contents the runtime controls.
const FORBIDDEN_DESTINATIONS: &[&str] = &["/proc", "/sys", "/dev"];

/// A volume option that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// Not `SOURCE:DEST[:OPTIONS]`.
    #[error("invalid volume {value:?}: expected HOST-PATH:CONTAINER-PATH[:ro] or NAME:CONTAINER-PATH[:ro]")]
    Syntax {
        /// The value.
        value: String,
    },
    /// An option other than `ro`/`rw`.
    #[error("invalid volume option {option:?} in {value:?}: only ro and rw are supported")]
    Option {
        /// The option.
        option: String,
        /// The value.
        value: String,
    },
    /// A named volume's name is not `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
    #[error("invalid volume name {name:?}: use letters, digits, '_', '.' and '-' (at least 2 characters), or give an absolute host path to bind")]
    Name {
        /// The name.
        name: String,
    },
    /// The destination is not an absolute, normal path, or shadows a runtime-managed one.
    #[error("invalid volume destination {destination:?}: {reason}")]
    Destination {
        /// The destination.
        destination: String,
        /// Why.
        reason: &'static str,
    },
    /// The host path does not exist.
    #[error("bind source {path:?} does not exist: create it first (palisade does not create bind sources)")]
    MissingSource {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The host path is refused.
    #[error("refusing to bind {path:?} into a container: {reason}")]
    ForbiddenSource {
        /// The path as given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A named volume's directory could not be created.
    #[error("failed to create volume directory {path:?}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Where a volume's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A host path (absolute, as given; checked by [`check_bind_source`]).
    Bind(PathBuf),
    /// A named volume under `<store>/volumes/<name>`.
    Named(String),
}

/// One `-v` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// The source.
    pub source: VolumeSource,
    /// The absolute path inside the container.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
}

fn valid_volume_name(name: &str) -> bool {
    name.len() >= 2
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Checks a volume's destination inside the container (from `-v` or an image's VOLUME).
pub fn check_destination(destination: &str) -> Result<(), VolumeError> {
    let fail = |reason| VolumeError::Destination {
        destination: destination.to_owned(),
        reason,
    };
    let path = Path::new(destination);
    if !path.is_absolute() {
        return Err(fail("it must be an absolute path"));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(fail("it may not contain '.' or '..'"));
    }
    if path.components().count() < 2 {
        return Err(fail("it may not be the container's root"));
    }
    if FORBIDDEN_DESTINATIONS.iter().any(|f| path.starts_with(f)) {
        return Err(fail("/proc, /sys and /dev are set up by the runtime"));
    }
    Ok(())
}

impl FromStr for VolumeSpec {
    type Err = VolumeError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let syntax = || VolumeError::Syntax {
            value: value.to_owned(),
        };
        let parts: Vec<&str> = value.split(':').collect();
        let (source, destination, options) = match parts.as_slice() {
            [s, d] => (*s, *d, None),
            [s, d, o] => (*s, *d, Some(*o)),
            _ => return Err(syntax()),
        };
        if source.is_empty() || destination.is_empty() {
            return Err(syntax());
        }
        let mut read_only = false;
        for option in options
            .unwrap_or_default()
            .split(',')
            .filter(|o| !o.is_empty())
        {
            match option {
                "ro" => read_only = true,
                "rw" => read_only = false,
                other => {
                    return Err(VolumeError::Option {
                        option: other.to_owned(),
                        value: value.to_owned(),
                    })
                }
            }
        }
        check_destination(destination)?;
        let source = if source.starts_with('/') {
            VolumeSource::Bind(PathBuf::from(source))
        } else if source.starts_with('.') && source.contains('/') {
            return Err(VolumeError::ForbiddenSource {
                path: PathBuf::from(source),
                reason: "bind sources must be absolute paths".to_owned(),
            });
        } else if valid_volume_name(source) {
            VolumeSource::Named(source.to_owned())
        } else {
            return Err(VolumeError::Name {
                name: source.to_owned(),
            });
        };
        Ok(Self {
            source,
            destination: destination.to_owned(),
            read_only,
        })
    }
}

/// Checks a bind source and returns its canonical path. `protected` are the store root and
/// the runtime's state root (neither may be bound, nor any directory containing them).
pub fn check_bind_source(path: &Path, protected: &[&Path]) -> Result<PathBuf, VolumeError> {
    let refuse = |reason: String| VolumeError::ForbiddenSource {
        path: path.to_owned(),
        reason,
    };
    if !path.is_absolute() {
        return Err(refuse("bind sources must be absolute paths".to_owned()));
    }
    let canonical = fs::canonicalize(path).map_err(|source| VolumeError::MissingSource {
        path: path.to_owned(),
        source,
    })?;
    if canonical == Path::new("/") {
        return Err(refuse("it is the host's root directory".to_owned()));
    }
    let canonical_or_same = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    for forbidden in FORBIDDEN_SOURCES {
        let forbidden = canonical_or_same(Path::new(forbidden));
        if canonical.starts_with(&forbidden) {
            return Err(refuse(format!(
                "{} belongs to the host and palisade",
                forbidden.display()
            )));
        }
    }
    for protected in protected {
        let protected = canonical_or_same(protected);
        if canonical.starts_with(&protected) {
            return Err(refuse(format!(
                "it is inside {}, palisade's own state",
                protected.display()
            )));
        }
        if protected.starts_with(&canonical) {
            return Err(refuse(format!(
                "it contains {}, palisade's own state",
                protected.display()
            )));
        }
    }
    for forbidden in ["/var/lib/palisade", "/run/palisade"] {
        if Path::new(forbidden).starts_with(&canonical) {
            return Err(refuse(format!(
                "it contains {forbidden}, palisade's own state"
            )));
        }
    }
    Ok(canonical)
}

/// The directory of named volume `name`, created (mode 0755, owned by the container root's
/// host ids) if it does not exist. An existing volume keeps its contents and owner.
pub fn ensure_named_volume(
    paths: &EnginePaths,
    name: &str,
    uid: u32,
    gid: u32,
) -> Result<PathBuf, VolumeError> {
    if !valid_volume_name(name) {
        return Err(VolumeError::Name {
            name: name.to_owned(),
        });
    }
    let dir = paths.volumes().join(name);
    let create = |source| VolumeError::Create {
        path: dir.clone(),
        source,
    };
    match fs::create_dir(&dir) {
        Ok(()) => {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(create)?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(create)?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(&dir).map_err(create)?;
            if !meta.is_dir() {
                return Err(create(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory",
                )));
            }
        }
        Err(e) => return Err(create(e)),
    }
    // The runtime refuses symlinks anywhere in a bind source: name it by its real path (the
    // store root itself may be reached through one).
    fs::canonicalize(&dir).map_err(create)
}

/// Creates the anonymous volume number `index` of the container in `container_dir` (for an
/// image's VOLUME): an empty directory owned by the container's root, removed with the
/// container. (Docker copies the image's files at that path into it; Palisade starts it
/// empty.)
pub fn anonymous_volume(
    container_dir: &Path,
    index: usize,
    uid: u32,
    gid: u32,
) -> Result<PathBuf, VolumeError> {
    let parent = container_dir.join("volumes");
    let dir = parent.join(index.to_string());
    let create = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VolumeError::Create { path, source }
    };
    match fs::create_dir(&parent) {
        Ok(()) => fs::set_permissions(&parent, fs::Permissions::from_mode(0o711))
            .map_err(create(&parent))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(create(&parent)(e)),
    }
    fs::create_dir(&dir).map_err(create(&dir))?;
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(create(&dir))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(create(&dir))?;
    fs::canonicalize(&dir).map_err(create(&dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_options_parse() {
        let bind: VolumeSpec = "/srv/data:/data:ro".parse().unwrap();
        assert_eq!(bind.source, VolumeSource::Bind(PathBuf::from("/srv/data")));
        assert_eq!(bind.destination, "/data");
        assert!(bind.read_only);
        let named: VolumeSpec = "cache:/var/cache".parse().unwrap();
        assert_eq!(named.source, VolumeSource::Named("cache".into()));
        assert!(!named.read_only);
        for bad in [
            "/a",
            "/a:",
            ":/b",
            "/a:b",
            "/a:/b:rx",
            "/a:/b:ro:x",
            "x:/b",
            "a b:/b",
            "./rel/x:/b",
            "/a:/proc",
            "/a:/proc/sys",
            "/a:/sys/fs",
            "/a:/dev",
            "/a:/",
            "/a:/b/../c",
        ] {
            assert!(bad.parse::<VolumeSpec>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn dangerous_bind_sources_are_refused() {
        let store = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let protected = [store.path(), state.path()];
        for bad in ["/", "/proc", "/proc/1", "/sys/kernel", "/dev", "/dev/null"] {
            let err = check_bind_source(Path::new(bad), &protected).unwrap_err();
            assert!(
                matches!(err, VolumeError::ForbiddenSource { .. }),
                "{bad}: {err}"
            );
        }
        // The store, inside it, and a directory containing it.
        let inside = store.path().join("volumes");
        fs::create_dir(&inside).unwrap();
        for bad in [
            store.path(),
            inside.as_path(),
            store.path().parent().unwrap(),
        ] {
            assert!(check_bind_source(bad, &protected).is_err(), "{bad:?}");
        }
        // A symlink to a forbidden place is judged by its target.
        let links = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/proc", links.path().join("p")).unwrap();
        assert!(check_bind_source(&links.path().join("p"), &protected).is_err());
        // A missing source is its own error; an ordinary directory is fine.
        assert!(matches!(
            check_bind_source(&links.path().join("missing"), &protected),
            Err(VolumeError::MissingSource { .. })
        ));
        let ok = links.path().join("ok");
        fs::create_dir(&ok).unwrap();
        assert_eq!(
            check_bind_source(&ok, &protected).unwrap(),
            fs::canonicalize(&ok).unwrap()
        );
        assert!(check_bind_source(Path::new("relative"), &protected).is_err());
    }

    #[test]
    fn named_volumes_are_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let paths = EnginePaths::new(dir.path());
        paths.prepare().unwrap();
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        let v = ensure_named_volume(&paths, "data", uid, gid).unwrap();
        fs::write(v.join("kept"), "x").unwrap();
        let again = ensure_named_volume(&paths, "data", uid, gid).unwrap();
        assert_eq!(v, again);
        assert!(again.join("kept").exists());
        assert!(ensure_named_volume(&paths, "../x", uid, gid).is_err());
    }
}
