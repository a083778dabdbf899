//! Landlock: confining a container's processes to their own root file system.
//!
//! The container's init applies [`restrict_to_root`] after `pivot_root`, when `/` is the
//! container's rootfs. The ruleset handles every file-system access right Landlock knows and
//! grants them only beneath `/`, so a path that resolves outside the rootfs cannot be opened,
//! whatever leads there: a host directory descriptor leaked into the container, a magic link
//! such as `/proc/<host pid>/root` or `/proc/self/fd/<n>`, a bind mount's source reached through
//! a descriptor. (Landlock checks accesses when files are opened, created, renamed or
//! truncated; a file already open keeps the access it was opened with.)
//!
//! Read-only paths carve exceptions out of that: Landlock rules only add rights, so a path
//! cannot be made read-only beneath a directory that grants writes. With read-only paths, `/`
//! gets read rights only, and write rights are granted to each sibling of every directory on the
//! way from `/` to a read-only path. As a consequence the directories on that way (for
//! `/usr/lib`: `/` and `/usr`) cannot have entries created or removed directly in them; their
//! other subdirectories stay fully writable.
//!
//! Enforcement is best effort: on a kernel without Landlock, or with an older Landlock ABI, the
//! rights the kernel does not know are not enforced, and the returned [`LandlockStatus`] says
//! so. Applying a ruleset sets `no_new_privs`, which Landlock requires of unprivileged callers.
//!
//! Where the kernel logs Landlock denials (ABI 7, Linux 6.15), the domain is created with
//! `LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON`, so that denials of the program the container's
//! init executes are logged too (as `AUDIT_LANDLOCK_ACCESS` records, with the domain id of an
//! `AUDIT_LANDLOCK_DOMAIN` record naming the creating process).

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use landlock::{
    Access, AccessFs, BitFlags, PathBeneath, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetStatus, ABI,
};

/// The annotation that enables Landlock for a container.
pub const LANDLOCK_ANNOTATION: &str = "org.palisade.landlock";
/// The annotation listing paths of the rootfs that become read-only, separated by `:`.
pub const LANDLOCK_READ_ONLY_ANNOTATION: &str = "org.palisade.landlock.readonly";
/// The value of [`LANDLOCK_ANNOTATION`] that confines the container to its rootfs.
const MODE_ROOTFS: &str = "rootfs";

/// The newest Landlock ABI this code was written and tested for; rights of newer ABIs the
/// running kernel lacks are dropped (best effort) and reported as partial enforcement.
const TARGET_ABI: ABI = ABI::V10;

/// The Landlock ABI that logs denials to the audit subsystem (Linux 6.15).
const LOGGING_ABI: u32 = 7;

/// How far symbolic links are followed when resolving a read-only path (the kernel's limit).
const MAX_SYMLINKS: usize = 40;

/// Errors from parsing a Landlock policy or applying it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LandlockError {
    /// [`LANDLOCK_ANNOTATION`] has a value other than `"rootfs"`.
    #[error("annotation {LANDLOCK_ANNOTATION} is {value:?}; accepted values: \"rootfs\"")]
    InvalidMode {
        /// The value given.
        value: String,
    },
    /// Read-only paths are listed but Landlock is not enabled.
    #[error(
        "annotation {LANDLOCK_READ_ONLY_ANNOTATION} needs {LANDLOCK_ANNOTATION}=\"rootfs\" \
         to take effect"
    )]
    ReadOnlyWithoutLandlock,
    /// A read-only path that is empty, relative, or has `.` or `..` components.
    #[error(
        "read-only path {path:?} in {LANDLOCK_READ_ONLY_ANNOTATION} must be absolute, without \
         '.' or '..' components (separate paths with ':')"
    )]
    InvalidReadOnlyPath {
        /// The path given.
        path: String,
    },
    /// A read-only path goes through too many symbolic links.
    #[error("read-only path {path:?} goes through more than 40 symbolic links")]
    SymlinkLoop {
        /// The path given.
        path: PathBuf,
    },
    /// A path for a rule could not be opened.
    #[error("failed to open {path:?} for a Landlock rule")]
    OpenPath {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A directory whose entries need rules could not be listed.
    #[error("failed to list directory {path:?} for Landlock rules")]
    ReadDirectory {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused the ruleset.
    #[error("failed to build or apply the Landlock ruleset")]
    Ruleset {
        /// The Landlock crate's error.
        #[source]
        source: landlock::RulesetError,
    },
}

impl From<landlock::RulesetError> for LandlockError {
    fn from(source: landlock::RulesetError) -> Self {
        LandlockError::Ruleset { source }
    }
}

/// What [`restrict_to_root`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandlockStatus {
    /// The policy does not enable Landlock; nothing was done.
    Disabled,
    /// Every requested restriction is enforced.
    FullyEnforced,
    /// The kernel enforces an older Landlock ABI: some access rights are not restricted.
    PartiallyEnforced,
    /// The kernel has no Landlock (not built in, or not enabled at boot).
    NotEnforced,
}

/// Which parts of the file system a container's processes may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandlockPolicy {
    enabled: bool,
    root: PathBuf,
    read_only: Vec<PathBuf>,
    extra_read_only: Vec<PathBuf>,
    extra_read_write: Vec<PathBuf>,
}

impl Default for LandlockPolicy {
    fn default() -> Self {
        Self::disabled()
    }
}

impl LandlockPolicy {
    /// No Landlock restriction.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            root: PathBuf::from("/"),
            read_only: Vec::new(),
            extra_read_only: Vec::new(),
            extra_read_write: Vec::new(),
        }
    }

    /// Full access beneath `/`, nothing elsewhere.
    pub fn rootfs() -> Self {
        Self {
            enabled: true,
            ..Self::disabled()
        }
    }

    /// The policy an OCI config's annotations ask for: [`LANDLOCK_ANNOTATION`] = `"rootfs"`
    /// enables it (absent: disabled), and [`LANDLOCK_READ_ONLY_ANNOTATION`] lists rootfs paths
    /// that become read-only, such as `"/usr:/bin:/etc"`.
    pub fn from_annotations(annotations: &HashMap<String, String>) -> Result<Self, LandlockError> {
        let mut policy = match annotations.get(LANDLOCK_ANNOTATION).map(String::as_str) {
            None => Self::disabled(),
            Some(MODE_ROOTFS) => Self::rootfs(),
            Some(other) => {
                return Err(LandlockError::InvalidMode {
                    value: other.to_owned(),
                })
            }
        };
        if let Some(list) = annotations.get(LANDLOCK_READ_ONLY_ANNOTATION) {
            if !policy.enabled {
                return Err(LandlockError::ReadOnlyWithoutLandlock);
            }
            for path in list.split(':') {
                policy = policy.with_read_only(path)?;
            }
        }
        Ok(policy)
    }

    /// Makes `path` (absolute, as the container sees it) read-only.
    pub fn with_read_only(mut self, path: &str) -> Result<Self, LandlockError> {
        let parsed = Path::new(path);
        let valid = parsed.is_absolute()
            && !path.split('/').any(|part| part == "." || part == "..")
            && parsed
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !valid {
            return Err(LandlockError::InvalidReadOnlyPath {
                path: path.to_owned(),
            });
        }
        let parsed: PathBuf = parsed.components().collect();
        if !self.read_only.contains(&parsed) {
            self.read_only.push(parsed);
        }
        Ok(self)
    }

    /// Where the container's `/` is, for applying the policy before `pivot_root` or in tests.
    /// Read-only paths are resolved beneath it. Defaults to `/`.
    pub fn with_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = root.into();
        self
    }

    /// Also grants read access beneath `path` (a path as the calling process sees it).
    pub fn allow_read_only(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_read_only.push(path.into());
        self
    }

    /// Also grants full access beneath `path` (a path as the calling process sees it).
    pub fn allow_read_write(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_read_write.push(path.into());
        self
    }

    /// Whether the policy restricts anything.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The paths that become read-only, as the container sees them.
    pub fn read_only_paths(&self) -> &[PathBuf] {
        &self.read_only
    }
}

/// Confines the calling thread, and every process it later starts, to the policy's root (see
/// the module documentation). Call it in the container's init after `pivot_root` and before
/// `execve`; it cannot be undone.
pub fn restrict_to_root(policy: &LandlockPolicy) -> Result<LandlockStatus, LandlockError> {
    restrict_to_root_with(policy, true)
}

/// Like [`restrict_to_root`], but lets the caller decide whether `no_new_privs` is set. A
/// container runtime whose config turned no_new_privs off passes `false`: it holds
/// CAP_SYS_ADMIN in the container's user namespace, which Landlock accepts instead.
pub fn restrict_to_root_with(
    policy: &LandlockPolicy,
    set_no_new_privs: bool,
) -> Result<LandlockStatus, LandlockError> {
    if !policy.enabled {
        return Ok(LandlockStatus::Disabled);
    }
    let all = AccessFs::from_all(TARGET_ABI);
    // Connecting to a UNIX socket changes no file: read-only paths keep it.
    let read = AccessFs::from_read(TARGET_ABI) | (all & AccessFs::ResolveUnix);

    let mut ruleset = Ruleset::default().handle_access(all)?.create()?;
    let root = open_beneath_rule(&policy.root, false)?.ok_or_else(|| LandlockError::OpenPath {
        path: policy.root.clone(),
        source: io::Error::from(io::ErrorKind::NotFound),
    })?;
    if policy.read_only.is_empty() {
        ruleset = add_rule(ruleset, root, all)?;
    } else {
        ruleset = add_rule(ruleset, root, read)?;
        for file in writable_siblings(&policy.root, &policy.read_only)? {
            ruleset = add_rule(ruleset, file, all)?;
        }
    }
    for path in &policy.extra_read_only {
        if let Some(file) = open_beneath_rule(path, false)? {
            ruleset = add_rule(ruleset, file, read)?;
        }
    }
    for path in &policy.extra_read_write {
        if let Some(file) = open_beneath_rule(path, false)? {
            ruleset = add_rule(ruleset, file, all)?;
        }
    }

    let mut ruleset = ruleset.no_new_privs(set_no_new_privs);
    // The container's init execs its process right after this: without LOG_NEW_EXEC_ON the
    // kernel would not log that process's denials. Asked for only where the kernel has it
    // (ABI 7), so that older kernels keep their enforcement status.
    if palisade_sys::landlock::abi_version().is_some_and(|abi| abi >= LOGGING_ABI) {
        ruleset = ruleset.log_new_exec(true)?;
    }
    let status = ruleset.restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockStatus::FullyEnforced,
        RulesetStatus::PartiallyEnforced => LandlockStatus::PartiallyEnforced,
        RulesetStatus::NotEnforced => LandlockStatus::NotEnforced,
    })
}

/// Adds a rule for the hierarchy beneath `file`, limited to the rights that apply to it (a
/// regular file has no directory rights; asking for them would be refused by the kernel).
fn add_rule(
    ruleset: RulesetCreated,
    file: File,
    rights: BitFlags<AccessFs>,
) -> Result<RulesetCreated, LandlockError> {
    let is_directory = file
        .metadata()
        .map(|metadata| metadata.is_dir())
        .unwrap_or(false);
    let rights = if is_directory {
        rights
    } else {
        rights & AccessFs::from_file(TARGET_ABI)
    };
    Ok(ruleset.add_rule(PathBeneath::new(file, rights))?)
}

/// Opens `path` as an `O_PATH` descriptor for a rule. With `no_follow`, a symbolic link is not
/// followed and `None` comes back for it (its target gets rules of its own, where it lies).
/// `None` too for a path that does not exist.
fn open_beneath_rule(path: &Path, no_follow: bool) -> Result<Option<File>, LandlockError> {
    let mut flags = libc::O_PATH | libc::O_CLOEXEC;
    if no_follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LandlockError::OpenPath {
                path: path.to_owned(),
                source,
            })
        }
    };
    let metadata = file.metadata().map_err(|source| LandlockError::OpenPath {
        path: path.to_owned(),
        source,
    })?;
    Ok((!metadata.file_type().is_symlink()).then_some(file))
}

/// Descriptors for every entry that gets write rights when `read_only` (container paths) must
/// stay read-only beneath `root`: the entries of `root` and of each directory between `root`
/// and a read-only path, except the read-only paths and those directories themselves.
fn writable_siblings(root: &Path, read_only: &[PathBuf]) -> Result<Vec<File>, LandlockError> {
    let mut read_only_paths = BTreeSet::new();
    let mut on_the_way = BTreeSet::new();
    for path in read_only {
        let resolved = resolve_in_root(root, path)?;
        if resolved == root {
            // The whole root is read-only: no write rights anywhere beneath it.
            return Ok(Vec::new());
        }
        let mut ancestor = resolved.parent();
        while let Some(directory) = ancestor {
            on_the_way.insert(directory.to_owned());
            if directory == root {
                break;
            }
            ancestor = directory.parent();
        }
        read_only_paths.insert(resolved);
    }

    let mut files = Vec::new();
    for directory in &on_the_way {
        let entries = match std::fs::read_dir(directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) if error.raw_os_error() == Some(libc::ENOTDIR) => continue,
            Err(source) => {
                return Err(LandlockError::ReadDirectory {
                    path: directory.clone(),
                    source,
                })
            }
        };
        for entry in entries {
            let entry = entry.map_err(|source| LandlockError::ReadDirectory {
                path: directory.clone(),
                source,
            })?;
            let path = entry.path();
            if read_only_paths.contains(&path) || on_the_way.contains(&path) {
                continue;
            }
            if let Some(file) = open_beneath_rule(&path, true)? {
                files.push(file);
            }
        }
    }
    Ok(files)
}

/// Resolves the container path `path` beneath `root` the way the kernel would inside the
/// container: symbolic links are followed, absolute link targets start again at `root`, and
/// `..` never climbs above `root`. Components that do not exist are kept as they are.
fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf, LandlockError> {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    let mut links = 0usize;
    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        if name == "." || name.is_empty() {
            continue;
        }
        let candidate = resolved.join(&name);
        let full = root.join(&candidate);
        match std::fs::symlink_metadata(&full) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(LandlockError::SymlinkLoop {
                        path: path.to_owned(),
                    });
                }
                let target =
                    std::fs::read_link(&full).map_err(|source| LandlockError::OpenPath {
                        path: full.clone(),
                        source,
                    })?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for component in target.components().rev() {
                    match component {
                        Component::Normal(part) => pending.push(part.to_owned()),
                        Component::ParentDir => pending.push(OsString::from("..")),
                        _ => {}
                    }
                }
            }
            _ => resolved = candidate,
        }
    }
    if resolved.as_os_str().is_empty() {
        return Ok(root.to_owned());
    }
    Ok(root.join(resolved))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn annotations(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Whether a test that needs the running kernel must fail instead of skipping.
    fn skip_or_fail(reason: &str) {
        if std::env::var("PALISADE_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
            panic!("required test cannot run: {reason}");
        }
        eprintln!("skipped: {reason}");
    }

    #[test]
    fn annotations_enable_and_configure_landlock() {
        let policy = LandlockPolicy::from_annotations(&annotations(&[])).unwrap();
        assert!(!policy.is_enabled());
        assert_eq!(restrict_to_root(&policy).unwrap(), LandlockStatus::Disabled);

        let policy =
            LandlockPolicy::from_annotations(&annotations(&[(LANDLOCK_ANNOTATION, "rootfs")]))
                .unwrap();
        assert_eq!(policy, LandlockPolicy::rootfs());

        let policy = LandlockPolicy::from_annotations(&annotations(&[
            (LANDLOCK_ANNOTATION, "rootfs"),
            (LANDLOCK_READ_ONLY_ANNOTATION, "/usr:/bin/:/etc:/usr"),
        ]))
        .unwrap();
        assert!(policy.is_enabled());
        assert_eq!(
            policy.read_only_paths(),
            [
                PathBuf::from("/usr"),
                PathBuf::from("/bin"),
                PathBuf::from("/etc")
            ]
        );
    }

    #[test]
    fn bad_annotations_are_errors_that_say_what_is_accepted() {
        let error = LandlockPolicy::from_annotations(&annotations(&[(LANDLOCK_ANNOTATION, "on")]))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "annotation org.palisade.landlock is \"on\"; accepted values: \"rootfs\""
        );

        let error = LandlockPolicy::from_annotations(&annotations(&[(
            LANDLOCK_READ_ONLY_ANNOTATION,
            "/usr",
        )]))
        .unwrap_err();
        assert!(matches!(error, LandlockError::ReadOnlyWithoutLandlock));

        for list in [
            "usr",
            "",
            "/usr:",
            "/usr::/bin",
            "/usr/../etc",
            "/./usr",
            "/usr/.",
        ] {
            let error = LandlockPolicy::from_annotations(&annotations(&[
                (LANDLOCK_ANNOTATION, "rootfs"),
                (LANDLOCK_READ_ONLY_ANNOTATION, list),
            ]))
            .unwrap_err();
            assert!(
                matches!(error, LandlockError::InvalidReadOnlyPath { .. }),
                "{list}: {error}"
            );
        }
    }

    #[test]
    fn read_only_paths_resolve_symlinks_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib/x")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("/usr", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("usr/up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();

        let resolve = |path: &str| resolve_in_root(root, Path::new(path)).unwrap();
        assert_eq!(resolve("/lib/x"), root.join("usr/lib/x"));
        assert_eq!(resolve("/abs/lib"), root.join("usr/lib"));
        // `..` in a link target never climbs out of the root.
        assert_eq!(resolve("/usr/up/usr"), root.join("usr"));
        assert_eq!(resolve("/usr/up"), root.to_owned());
        assert_eq!(resolve("/missing/x"), root.join("missing/x"));
        assert!(matches!(
            resolve_in_root(root, Path::new("/loop")),
            Err(LandlockError::SymlinkLoop { .. })
        ));
    }

    #[test]
    fn write_rights_go_to_the_siblings_of_the_way_to_read_only_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for directory in ["usr/lib", "usr/bin", "etc", "tmp"] {
            std::fs::create_dir_all(root.join(directory)).unwrap();
        }
        std::fs::write(root.join("file.txt"), "x").unwrap();
        std::os::unix::fs::symlink("usr", root.join("link")).unwrap();

        let granted = |read_only: &[&str]| -> BTreeSet<PathBuf> {
            let read_only: Vec<PathBuf> = read_only.iter().map(PathBuf::from).collect();
            writable_siblings(root, &read_only)
                .unwrap()
                .iter()
                .map(|file| {
                    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap()
                })
                .collect()
        };
        let root = root.canonicalize().unwrap();
        let expected: BTreeSet<PathBuf> = ["etc", "tmp", "file.txt", "usr/bin"]
            .iter()
            .map(|path| root.join(path))
            .collect();
        assert_eq!(granted(&["/usr/lib"]), expected);
        // Through a symbolic link, the same directories.
        assert_eq!(granted(&["/link/lib"]), expected);
        assert!(granted(&["/"]).is_empty());
    }

    #[test]
    fn the_ruleset_confines_the_thread_to_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        let extra = dir.path().join("extra");
        for directory in [
            root.join("data"),
            root.join("ro"),
            outside.clone(),
            extra.clone(),
        ] {
            std::fs::create_dir_all(directory).unwrap();
        }
        std::fs::write(root.join("ro/file.txt"), "read-only").unwrap();
        std::fs::write(outside.join("secret.txt"), "secret").unwrap();
        std::fs::write(extra.join("visible.txt"), "visible").unwrap();
        // A host directory descriptor that leaks into the container.
        let leaked = File::open(&outside).unwrap();

        let policy = LandlockPolicy::rootfs()
            .with_root(&root)
            .with_read_only("/ro")
            .unwrap()
            .allow_read_only(&extra);
        let result = std::thread::spawn(move || -> Result<(), String> {
            let status = restrict_to_root(&policy).map_err(|e| e.to_string())?;
            if status == LandlockStatus::NotEnforced {
                return Err("skip: no Landlock in this kernel".to_owned());
            }
            eprintln!("Landlock: {status:?}");
            let denied = |what: &str, result: io::Result<()>| match result {
                Err(error) if error.kind() == io::ErrorKind::PermissionDenied => Ok(()),
                other => Err(format!("{what}: expected EACCES, got {other:?}")),
            };
            let allowed = |what: &str, result: io::Result<()>| {
                result.map_err(|error| format!("{what}: {error}"))
            };
            allowed("write in root", std::fs::write(root.join("data/new"), "x"))?;
            allowed("mkdir in root", std::fs::create_dir(root.join("data/d")))?;
            allowed(
                "read read-only",
                std::fs::read(root.join("ro/file.txt")).map(drop),
            )?;
            allowed(
                "read extra",
                std::fs::read(extra.join("visible.txt")).map(drop),
            )?;
            let open_write = |path: &Path| OpenOptions::new().write(true).open(path).map(drop);
            denied("write read-only", open_write(&root.join("ro/file.txt")))?;
            denied(
                "create in read-only",
                std::fs::write(root.join("ro/new"), "x"),
            )?;
            denied("write extra", open_write(&extra.join("visible.txt")))?;
            denied(
                "read outside",
                std::fs::read(outside.join("secret.txt")).map(drop),
            )?;
            denied("list outside", std::fs::read_dir(&outside).map(drop))?;
            let through_leaked = nix::fcntl::openat(
                Some(leaked.as_raw_fd()),
                "secret.txt",
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map(|fd| {
                let _ = nix::unistd::close(fd);
            })
            .map_err(io::Error::from);
            denied("openat on a leaked descriptor", through_leaked)?;
            let fd_link = format!("/proc/self/fd/{}/secret.txt", leaked.as_raw_fd());
            denied("magic link /proc/self/fd", std::fs::read(fd_link).map(drop))?;
            let root_link = format!("/proc/1/root{}", outside.join("secret.txt").display());
            denied(
                "magic link /proc/1/root",
                std::fs::read(root_link).map(drop),
            )?;
            Ok(())
        })
        .join()
        .unwrap();
        match result {
            Err(reason) if reason.starts_with("skip: ") => skip_or_fail(&reason),
            other => other.unwrap(),
        }
    }
}
