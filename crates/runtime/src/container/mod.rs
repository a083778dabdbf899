//! A container known to the runtime and its lifecycle verbs, one per file.

mod create;
mod delete;
mod events;
mod exec;
mod kill;
mod pause;
mod ps;
mod start;
mod update;

use std::path::{Path, PathBuf};

use palisade_cgroups::CgroupManager;
use serde::Serialize;

pub use create::CreateOptions;
pub use exec::{ExecOptions, ExecOutcome};
pub use kill::parse_signal;
pub use ps::PsOutput;

use crate::error::{Result, RuntimeError};
use crate::state::{self, PersistedState, StateRoot, Status};

/// Where cgroup hierarchies are mounted on the host.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A container that exists under a state root.
#[derive(Debug)]
pub struct Container {
    root: StateRoot,
    state: PersistedState,
}

/// The `state` document, exactly as runc prints it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateReport {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub annotations: std::collections::HashMap<String, String>,
}

impl Container {
    /// Loads container `id` from `root`.
    pub fn load(root: &StateRoot, id: &str) -> Result<Self> {
        let state = root.load(id)?;
        Ok(Self {
            root: root.clone(),
            state,
        })
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn persisted(&self) -> &PersistedState {
        &self.state
    }

    fn dir(&self) -> PathBuf {
        self.root.container_dir(&self.state.id)
    }

    fn fifo(&self) -> PathBuf {
        self.dir().join(state::EXEC_FIFO)
    }

    /// The status, derived from the live system.
    pub fn status(&self) -> Status {
        if !state::init_alive(&self.state) {
            return Status::Stopped;
        }
        if self.fifo().exists() {
            return Status::Created;
        }
        if let Ok(Some(cgroup)) = self.cgroup() {
            if matches!(
                cgroup.freezer_state(),
                Ok(palisade_cgroups::FreezerState::Frozen)
            ) {
                return Status::Paused;
            }
        }
        Status::Running
    }

    /// The `state` document.
    pub fn report(&self) -> StateReport {
        let status = self.status();
        StateReport {
            oci_version: crate::OCI_VERSION.to_owned(),
            id: self.state.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.state.init_pid
            },
            status,
            bundle: self.state.bundle.clone(),
            rootfs: self.state.rootfs.clone(),
            created: self.state.created.clone(),
            owner: self.state.owner.clone(),
            annotations: self.state.annotations(),
        }
    }

    /// The container's cgroup, if the runtime manages one.
    pub(crate) fn cgroup(&self) -> Result<Option<CgroupManager>> {
        if self.state.cgroup_path.as_os_str().is_empty() {
            return Ok(None);
        }
        Ok(Some(CgroupManager::new(
            Path::new(CGROUP_ROOT),
            &self.state.cgroup_path,
        )?))
    }

    /// OOM kills seen in the container's cgroup and the memory limit in force, for the audit
    /// log. Zero when there is no cgroup or the counters cannot be read.
    pub fn oom_report(&self) -> (u64, Option<u64>) {
        let Ok(Some(cgroup)) = self.cgroup() else {
            return (0, None);
        };
        let kills = cgroup
            .memory_events()
            .map(|e| e.oom_kill.max(e.oom))
            .unwrap_or(0);
        let limit = self
            .state
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .and_then(|l| u64::try_from(l).ok());
        (kills, limit)
    }

    /// Forks the pids limit refused (the `max` count of `pids.events`, v1 or v2) and the
    /// limit in force, for the audit log. Zero when there is no cgroup or no counter.
    pub fn pids_report(&self) -> (u64, Option<u64>) {
        let Ok(Some(cgroup)) = self.cgroup() else {
            return (0, None);
        };
        let paths = cgroup.paths();
        let hits = ["pids", "unified"]
            .iter()
            .filter_map(|controller| paths.get(*controller))
            .filter_map(|dir| std::fs::read_to_string(dir.join("pids.events")).ok())
            .find_map(|text| {
                text.lines()
                    .find_map(|line| line.strip_prefix("max "))
                    .and_then(|count| count.trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        let limit = self
            .state
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.pids().as_ref())
            .and_then(|p| u64::try_from(p.limit()).ok());
        (hits, limit)
    }

    pub(crate) fn require_cgroup(&self) -> Result<CgroupManager> {
        self.cgroup()?.ok_or_else(|| {
            RuntimeError::Unsupported(format!("container {:?} has no cgroup", self.state.id))
        })
    }

    fn wrong_status(
        &self,
        status: Status,
        operation: &'static str,
        expected: &'static str,
    ) -> RuntimeError {
        RuntimeError::WrongStatus {
            id: self.state.id.clone(),
            status: status.as_str(),
            operation,
            expected,
        }
    }

    pub(crate) fn hook_state<'a>(&'a self, status: &'a str) -> crate::hooks::HookState<'a> {
        crate::hooks::HookState {
            oci_version: crate::OCI_VERSION,
            id: &self.state.id,
            status,
            pid: (self.state.init_pid > 0).then_some(self.state.init_pid),
            bundle: &self.state.bundle,
            annotations: self.state.config.annotations().as_ref(),
        }
    }
}
