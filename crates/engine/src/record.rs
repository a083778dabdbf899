//! `container.json`: what a container is (id, name, image, command, mounts) and where it is in
//! its life (created, running, exited), persisted atomically.
//!
//! State changes are read-modify-write under the container's `lock` file (an exclusive
//! `flock`), so the monitor recording an exit and `palisade stop` never lose each other's
//! update. Creating a container takes the store-wide `containers/.lock`, which keeps names
//! unique when two `palisade run --name` race.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};

use crate::id::{ContainerId, ContainerName};
use crate::paths::EnginePaths;

/// The record's file name in the container directory.
pub const RECORD_FILE: &str = "container.json";
/// Largest record read back (a record is a few kilobytes).
const MAX_RECORD_SIZE: u64 = 4 << 20;

/// Failure to read, write or find a container record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Reading or writing a file failed.
    #[error("failed to {operation} {path:?}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The record is not valid JSON for a container.
    #[error("container record {path:?} is damaged")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// No container has this id, id prefix or name.
    #[error("no such container: {query}")]
    NotFound {
        /// What was asked for.
        query: String,
    },
    /// An id prefix matches several containers.
    #[error("container id prefix {query:?} is ambiguous: it matches {count} containers")]
    Ambiguous {
        /// The prefix.
        query: String,
        /// How many matched.
        count: usize,
    },
    /// The name is taken.
    #[error(
        "the container name {name:?} is already in use by container {id}: remove that \
         container (palisade rm {name}) or choose another --name"
    )]
    NameInUse {
        /// The name.
        name: ContainerName,
        /// Who has it.
        id: String,
    },
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Its bundle exists; it has not been started (or is being started).
    Created,
    /// Its process runs under a monitor.
    Running,
    /// Its process has exited (exit code recorded).
    Exited,
    /// `rm` is taking it apart.
    Removing,
}

impl ContainerState {
    /// The lowercase name (`created`, `running`, `exited`, `removing`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Exited => "exited",
            Self::Removing => "removing",
        }
    }
}

/// A volume mounted into the container, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// `bind` or `volume`.
    pub kind: String,
    /// The host path (for a named volume, its directory).
    pub source: PathBuf,
    /// The path inside the container.
    pub destination: String,
    /// The volume's name, for a named volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether it is mounted read-only.
    pub read_only: bool,
}

/// A process watched by pid and start time (so a reused pid is not mistaken for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    /// Host pid.
    pub pid: i32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
}

impl ProcessRef {
    /// The current process.
    pub fn current() -> Option<Self> {
        Self::of(i32::try_from(std::process::id()).ok()?)
    }

    /// `pid` as it is now, if it exists.
    pub fn of(pid: i32) -> Option<Self> {
        let stat = palisade_runtime::state::process_stat(pid)?;
        Some(Self {
            pid,
            start_time: stat.start_time,
        })
    }

    /// Whether this very process still runs (alive, not a zombie, same start time).
    pub fn alive(&self) -> bool {
        palisade_runtime::state::process_stat(self.pid)
            .is_some_and(|s| s.state != 'Z' && s.start_time == self.start_time)
    }
}

/// A container, as `container.json` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// The full id.
    pub id: ContainerId,
    /// The unique name.
    pub name: ContainerName,
    /// The image reference it was created from, normalised (`docker.io/library/busybox:latest`).
    pub image: String,
    /// The manifest digest the reference resolved to at creation.
    pub image_digest: String,
    /// The config digest (Docker's image id).
    pub image_id: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Creation time, seconds since the epoch.
    pub created_unix: i64,
    /// The process's argument vector.
    pub command: Vec<String>,
    /// Its state.
    pub state: ContainerState,
    /// The exit code of the last run (Docker's convention: 128+n for signal n; 125-127 when
    /// the command could not be run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When the last run started, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// When the last run started, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_unix: Option<i64>,
    /// When the last run ended, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// When the last run ended, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_unix: Option<i64>,
    /// Why the last start failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Published ports (none yet: a bridge network comes later).
    #[serde(default)]
    pub ports: Vec<String>,
    /// Remove the container when it exits (`--rm`).
    pub auto_remove: bool,
    /// Keep stdin open (`-i`).
    pub interactive: bool,
    /// Give the process a terminal (`-t`).
    pub tty: bool,
    /// Overlay lower directories, lowest first.
    pub layers: Vec<PathBuf>,
    /// Host uid of the container's root.
    pub root_uid: u32,
    /// Host gid of the container's root.
    pub root_gid: u32,
    /// Volumes and binds.
    #[serde(default)]
    pub mounts: Vec<MountRecord>,
    /// The secure defaults this container runs without (empty for a default container).
    #[serde(default)]
    pub relaxations: Vec<String>,
    /// The signal `stop` sends first (the image's StopSignal, or SIGTERM).
    pub stop_signal: String,
    /// The monitor of the current run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<ProcessRef>,
    /// The container's init (pid 1 inside) of the current run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<ProcessRef>,
}

impl ContainerRecord {
    /// The state, corrected for a monitor that died without recording the exit (killed, or
    /// the host rebooted): the container runs as long as its init does (unmonitored), and
    /// then has exited with an unknown code.
    pub fn effective_state(&self) -> ContainerState {
        let alive = |p: &Option<ProcessRef>| p.is_some_and(|p| p.alive());
        match self.state {
            ContainerState::Running if !alive(&self.monitor) && !alive(&self.init) => {
                ContainerState::Exited
            }
            state => state,
        }
    }

    /// Whether it runs now.
    pub fn is_running(&self) -> bool {
        self.effective_state() == ContainerState::Running
    }
}

/// Seconds since the epoch and RFC 3339 for now.
pub(crate) fn now() -> (i64, String) {
    let now = SystemTime::now();
    let unix = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    (unix, palisade_runtime::time::rfc3339(now))
}

/// A held `flock`; released on drop.
#[derive(Debug)]
pub struct RecordLock {
    _file: File,
}

fn lock_file(path: &Path) -> Result<RecordLock, RecordError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| RecordError::Io {
            operation: "open lock file",
            path: path.to_owned(),
            source,
        })?;
    flock(&file, FlockOperation::LockExclusive).map_err(|e| RecordError::Io {
        operation: "lock",
        path: path.to_owned(),
        source: e.into(),
    })?;
    Ok(RecordLock { _file: file })
}

/// The container records of a store.
#[derive(Debug, Clone)]
pub struct Records {
    paths: EnginePaths,
}

impl Records {
    /// The records under `paths`.
    pub fn new(paths: EnginePaths) -> Self {
        Self { paths }
    }

    fn record_path(&self, id: &ContainerId) -> PathBuf {
        self.paths.container(id).join(RECORD_FILE)
    }

    /// Takes the store-wide lock held while a container is added or removed.
    pub fn lock_all(&self) -> Result<RecordLock, RecordError> {
        lock_file(&self.paths.containers().join(".lock"))
    }

    /// Takes one container's lock.
    pub fn lock(&self, id: &ContainerId) -> Result<RecordLock, RecordError> {
        lock_file(&self.paths.container(id).join("lock"))
    }

    /// Reads a record.
    pub fn load(&self, id: &ContainerId) -> Result<ContainerRecord, RecordError> {
        let path = self.record_path(id);
        let bytes = match fs::metadata(&path) {
            Ok(meta) if meta.len() > MAX_RECORD_SIZE => {
                return Err(RecordError::Io {
                    operation: "read",
                    path,
                    source: io::Error::new(io::ErrorKind::InvalidData, "record too large"),
                })
            }
            Ok(_) => fs::read(&path),
            Err(e) => Err(e),
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RecordError::NotFound {
                    query: id.to_string(),
                })
            }
            Err(source) => {
                return Err(RecordError::Io {
                    operation: "read",
                    path,
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes).map_err(|source| RecordError::Parse { path, source })
    }

    /// Writes a record atomically: a temp file beside it, fsync, rename, fsync the directory.
    pub fn save(&self, record: &ContainerRecord) -> Result<(), RecordError> {
        let path = self.record_path(&record.id);
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| RecordError::Parse {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &bytes, 0o600)
    }

    /// Reads, changes and writes a record under its lock; returns the new record.
    pub fn update(
        &self,
        id: &ContainerId,
        change: impl FnOnce(&mut ContainerRecord),
    ) -> Result<ContainerRecord, RecordError> {
        let _lock = self.lock(id)?;
        let mut record = self.load(id)?;
        change(&mut record);
        self.save(&record)?;
        Ok(record)
    }

    /// Every container's id (directories whose name is a full id), sorted.
    pub fn ids(&self) -> Result<Vec<ContainerId>, RecordError> {
        let dir = self.paths.containers();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(RecordError::Io {
                    operation: "list",
                    path: dir,
                    source,
                })
            }
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| RecordError::Io {
                operation: "list",
                path: dir.clone(),
                source,
            })?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| ContainerId::parse(n).ok())
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Every readable record, newest first. Unreadable ones (a container being created or
    /// removed right now) are skipped with a debug message.
    pub fn list(&self) -> Result<Vec<ContainerRecord>, RecordError> {
        let mut records = Vec::new();
        for id in self.ids()? {
            match self.load(&id) {
                Ok(record) => records.push(record),
                Err(e) => tracing::debug!(id = %id, error = %e, "skipping container record"),
            }
        }
        records.sort_by(|a, b| b.created_unix.cmp(&a.created_unix).then(a.id.cmp(&b.id)));
        Ok(records)
    }

    /// Finds a container by full id, name, or unique id prefix (in that order, as Docker).
    pub fn find(&self, query: &str) -> Result<ContainerRecord, RecordError> {
        if let Ok(id) = ContainerId::parse(query) {
            match self.load(&id) {
                Err(RecordError::NotFound { .. }) => {}
                other => return other,
            }
        }
        let records = self.list()?;
        let wanted = query.strip_prefix('/').unwrap_or(query);
        if let Some(record) = records.iter().find(|r| r.name.as_str() == wanted) {
            return Ok(record.clone());
        }
        let prefixed: Vec<&ContainerRecord> = if query.is_empty() {
            Vec::new()
        } else {
            records
                .iter()
                .filter(|r| r.id.as_str().starts_with(query))
                .collect()
        };
        match prefixed.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(RecordError::NotFound {
                query: query.to_owned(),
            }),
            many => Err(RecordError::Ambiguous {
                query: query.to_owned(),
                count: many.len(),
            }),
        }
    }

    /// Fails with [`RecordError::NameInUse`] if a container has `name` (call under
    /// [`Records::lock_all`]).
    pub fn check_name_free(&self, name: &ContainerName) -> Result<(), RecordError> {
        match self.list()?.into_iter().find(|r| &r.name == name) {
            Some(existing) => Err(RecordError::NameInUse {
                name: name.clone(),
                id: existing.id.short().to_owned(),
            }),
            None => Ok(()),
        }
    }
}

/// Writes `bytes` to `path` atomically with `mode`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), RecordError> {
    let io_error = |operation, path: &Path| {
        let path = path.to_owned();
        move |source| RecordError::Io {
            operation,
            path,
            source,
        }
    };
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_error("create", &tmp))?;
    file.write_all(bytes).map_err(io_error("write", &tmp))?;
    file.sync_all().map_err(io_error("sync", &tmp))?;
    drop(file);
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("rename into place", path)(e));
    }
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_error("sync", parent))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(id: ContainerId, name: &str) -> ContainerRecord {
        ContainerRecord {
            id,
            name: ContainerName::parse(name).unwrap(),
            image: "docker.io/library/busybox:latest".into(),
            image_digest: "sha256:00".into(),
            image_id: "sha256:11".into(),
            created: "2024-01-01T00:00:00Z".into(),
            created_unix: 1,
            command: vec!["sh".into()],
            state: ContainerState::Created,
            exit_code: None,
            started: None,
            started_unix: None,
            finished: None,
            finished_unix: None,
            error: None,
            ports: Vec::new(),
            auto_remove: false,
            interactive: false,
            tty: false,
            layers: Vec::new(),
            root_uid: 1_000_000,
            root_gid: 1_000_000,
            mounts: Vec::new(),
            relaxations: Vec::new(),
            stop_signal: "SIGTERM".into(),
            monitor: None,
            init: None,
        }
    }

    #[test]
    fn records_round_trip_and_are_found_by_id_name_and_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let paths = EnginePaths::new(dir.path());
        paths.prepare().unwrap();
        let records = Records::new(paths.clone());
        let a = ContainerId::generate().unwrap();
        let b = ContainerId::generate().unwrap();
        for (id, name) in [(&a, "alpha"), (&b, "beta")] {
            fs::create_dir(paths.container(id)).unwrap();
            records.save(&sample(id.clone(), name)).unwrap();
        }
        assert_eq!(records.load(&a).unwrap().name.as_str(), "alpha");
        assert_eq!(records.find("beta").unwrap().id, b);
        assert_eq!(records.find(a.as_str()).unwrap().id, a);
        assert_eq!(records.find(a.short()).unwrap().id, a);
        assert!(matches!(
            records.find("nope"),
            Err(RecordError::NotFound { .. })
        ));
        assert!(matches!(
            records.find(""),
            Err(RecordError::NotFound { .. })
        ));
        assert!(matches!(
            records.check_name_free(&ContainerName::parse("alpha").unwrap()),
            Err(RecordError::NameInUse { .. })
        ));
        records
            .check_name_free(&ContainerName::parse("gamma").unwrap())
            .unwrap();
        let updated = records
            .update(&a, |r| {
                r.state = ContainerState::Exited;
                r.exit_code = Some(3);
            })
            .unwrap();
        assert_eq!(updated.exit_code, Some(3));
        assert_eq!(records.load(&a).unwrap().state, ContainerState::Exited);
        assert_eq!(records.list().unwrap().len(), 2);
    }

    #[test]
    fn a_running_record_whose_monitor_is_gone_reads_as_exited() {
        let mut record = sample(ContainerId::generate().unwrap(), "x");
        record.state = ContainerState::Running;
        record.monitor = ProcessRef::current();
        assert!(record.is_running());
        record.monitor = Some(ProcessRef {
            pid: i32::MAX,
            start_time: 0,
        });
        assert_eq!(record.effective_state(), ContainerState::Exited);
        // Without its monitor, a container runs as long as its init does.
        record.init = ProcessRef::current();
        assert!(record.is_running());
    }
}
