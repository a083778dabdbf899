//! What the runtime remembers about a container between invocations, under `--root`.
//!
//! Each container owns `<root>/<id>/`: `state.json` (written atomically: temp file, fsync,
//! rename) and, between `create` and `start`, `exec.fifo`, on which the container's init blocks.
//! Status is derived from the live system every time it is asked for, like runc does, so a
//! crashed runtime can never leave a stale "running" behind.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// File name of the persisted state inside a container's directory.
pub const STATE_FILE: &str = "state.json";
/// File name of the FIFO the init blocks on until `start`.
pub const EXEC_FIFO: &str = "exec.fifo";

/// The lifecycle status of a container, as the OCI runtime spec names it (plus runc's
/// `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created: the state file exists but the init has not reported yet.
    Creating,
    /// Created and waiting on `start`.
    Created,
    /// The user process is running.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// The init process has exited.
    Stopped,
}

impl Status {
    /// The lowercase name used in `state` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The state persisted in `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistedState {
    /// The container id.
    pub id: String,
    /// Host pid of the container's init (0 while creating).
    pub init_pid: i32,
    /// Start time of the init in clock ticks since boot (field 22 of `/proc/<pid>/stat`), so a
    /// reused pid is never mistaken for the container.
    pub init_start_time: u64,
    /// Absolute path of the bundle.
    pub bundle: PathBuf,
    /// Absolute path of the rootfs.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Owner (user name or uid) who created the container; empty for root, as runc does.
    pub owner: String,
    /// The cgroup path (relative to the hierarchy roots).
    pub cgroup_path: PathBuf,
    /// Whether the runtime created a cgroup it must remove on delete.
    pub cgroup_created: bool,
    /// The config the container was created with (hooks, namespaces, seccomp for exec).
    pub config: Spec,
}

impl PersistedState {
    /// The annotations of the container's config.
    pub fn annotations(&self) -> HashMap<String, String> {
        self.config.annotations().clone().unwrap_or_default()
    }
}

/// The layout of the runtime's state root (`--root`).
#[derive(Debug, Clone)]
pub struct StateRoot {
    root: PathBuf,
}

impl StateRoot {
    /// Uses `root` as the state root; it is created (0700) on first use.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The directory of container `id`.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Creates the directory of a new container, failing if the id is taken. `mkdir` is atomic,
    /// so two concurrent `create` calls with one id cannot both succeed.
    pub fn claim(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| RuntimeError::io("create state root", &self.root, e))?;
        let dir = self.container_dir(id);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(RuntimeError::AlreadyExists(id.to_owned()))
            }
            Err(e) => Err(RuntimeError::io("create container state directory", dir, e)),
        }
    }

    /// Ids of every container under this root, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RuntimeError::io("list state root", &self.root, e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().join(STATE_FILE).exists())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Loads the persisted state of container `id`.
    pub fn load(&self, id: &str) -> Result<PersistedState> {
        validate_id(id)?;
        let path = self.container_dir(id).join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.to_owned()))
            }
            Err(e) => return Err(RuntimeError::io("read state", path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| RuntimeError::CorruptState {
            id: id.to_owned(),
            path,
            source,
        })
    }

    /// Writes the state of a container atomically (temp file, fsync, rename).
    pub fn save(&self, state: &PersistedState) -> Result<()> {
        let dir = self.container_dir(&state.id);
        let bytes = serde_json::to_vec(state)
            .map_err(|e| RuntimeError::io("serialize state", &dir, std::io::Error::other(e)))?;
        write_atomic(&dir.join(STATE_FILE), &bytes)
    }
}

/// Writes `bytes` to `path` atomically: a temp file beside it, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| RuntimeError::io("create", &tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| RuntimeError::io("write", &tmp, e))?;
    file.sync_all()
        .map_err(|e| RuntimeError::io("fsync", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| RuntimeError::io("rename into place", path, e))
}

/// Checks a container id the way runc does, so it is always a safe single path component.
pub fn validate_id(id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId(id.to_owned()))
    }
}

/// Facts about a live process read from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStat {
    /// The one-letter state (R, S, D, Z, T, ...).
    pub state: char,
    /// Start time in clock ticks since boot.
    pub start_time: u64,
}

/// Reads `/proc/<pid>/stat`; `None` if the process does not exist.
pub fn process_stat(pid: i32) -> Option<ProcessStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 overall is index 19 after (pid) and (comm) are removed.
    let start_time = fields.get(19)?.parse().ok()?;
    Some(ProcessStat { state, start_time })
}

/// Whether the container's init is still the process we started (alive, not a zombie, same
/// start time).
pub fn init_alive(state: &PersistedState) -> bool {
    if state.init_pid <= 0 {
        return false;
    }
    match process_stat(state.init_pid) {
        Some(stat) => stat.state != 'Z' && stat.start_time == state.init_start_time,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        for good in ["a", "abc-123_x.y+z", "C0"] {
            validate_id(good).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "ünï",
            &"x".repeat(1025),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn claim_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::new(dir.path().join("root"));
        root.claim("one").unwrap();
        assert!(matches!(
            root.claim("one"),
            Err(RuntimeError::AlreadyExists(_))
        ));
        assert!(matches!(root.load("one"), Err(RuntimeError::NotFound(_))));
        assert!(
            root.ids().unwrap().is_empty(),
            "a dir without state.json is not listed"
        );
    }

    #[test]
    fn corrupt_state_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::new(dir.path());
        let cdir = root.claim("c").unwrap();
        fs::write(cdir.join(STATE_FILE), b"{not json").unwrap();
        assert!(matches!(
            root.load("c"),
            Err(RuntimeError::CorruptState { .. })
        ));
    }

    #[test]
    fn own_process_stat_is_read() {
        let stat = process_stat(std::process::id() as i32).unwrap();
        assert!(stat.start_time > 0);
        assert!(process_stat(i32::MAX).is_none());
    }
}
