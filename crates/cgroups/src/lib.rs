//! cgroup v1 and v2 managers for Palisade containers: create a container's cgroup, put its
//! processes in it, apply the OCI `linux.resources`, read statistics, freeze, kill and remove.
//!
//! [`CgroupManager`] is the one entry point. It detects how the host mounts cgroups
//! ([`CgroupSetup`]) and dispatches to a v1 manager (legacy and hybrid hosts) or a v2 manager
//! (unified hosts). Each controller lives in its own file per version (`v1/memory.rs`,
//! `v2/memory.rs`, ...).
//!
//! What happens to a requested resource the host cannot honour:
//! - a **limit** (memory, swap, pids, cpu bandwidth, hugetlb, devices, `unified`, disabling the
//!   OOM killer) fails with an error naming the controller or the resource: a container must not
//!   start believing it is confined when it is not;
//! - a **tuning hint** that the kernel dropped or that the other version lacks (kernel memory
//!   limits, swappiness and `net_cls`/`net_prio` on v2, `leafWeight` on v2) is skipped with a
//!   warning;
//! - a v1 controller that is not mounted (hugetlb on many hosts) is ignored unless a resource
//!   needs it.
//!
//! Every function takes the cgroup mount root as a parameter, so the tests run against a fake
//! tree in a temporary directory; `tests/host.rs` runs the same code against the real host.

#![forbid(unsafe_code)]

mod common;
pub mod devices;
mod error;
pub mod stats;
mod v1;
mod v2;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use crate::common::CgroupBackend;
pub use crate::devices::{is_device_access_allowed, DeviceAccess, DeviceKind, DeviceRule};
pub use crate::error::CgroupError;
pub use crate::stats::{MemoryEvents, Stats};
use crate::v1::V1Manager;
use crate::v2::V2Manager;

/// The usual cgroup mount root.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// How a host mounts its cgroup hierarchies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CgroupSetup {
    /// Only cgroup v1: one hierarchy per controller (or per group of controllers).
    Legacy,
    /// cgroup v1 controllers plus a cgroup2 hierarchy at `<root>/unified` without controllers.
    Hybrid,
    /// Only cgroup v2, mounted at the root.
    Unified,
}

/// The state of a cgroup's freezer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FreezerState {
    /// Processes run.
    Thawed,
    /// Freezing was asked for and has not completed.
    Freezing,
    /// Every process is frozen.
    Frozen,
}

/// Detects how cgroups are mounted under `root` (normally `/sys/fs/cgroup`).
///
/// `cgroup.controllers` exists only on cgroup2, so its presence at the root means a unified
/// host, and at `<root>/unified` a hybrid one; otherwise any v1 hierarchy makes it legacy.
pub fn detect_setup(root: &Path) -> Result<CgroupSetup, CgroupError> {
    if root.join("cgroup.controllers").is_file() {
        return Ok(CgroupSetup::Unified);
    }
    let hierarchies = v1::discover_hierarchies(root)?;
    if hierarchies.is_empty() {
        return Err(CgroupError::NoCgroupFilesystem {
            root: root.to_owned(),
        });
    }
    if root.join("unified").join("cgroup.controllers").is_file() {
        Ok(CgroupSetup::Hybrid)
    } else {
        Ok(CgroupSetup::Legacy)
    }
}

/// The cgroup of one container, in every hierarchy the host has.
#[derive(Debug)]
pub struct CgroupManager {
    setup: CgroupSetup,
    relative: PathBuf,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    V1(V1Manager),
    V2(V2Manager),
}

impl Backend {
    fn get(&self) -> &dyn CgroupBackend {
        match self {
            Self::V1(manager) => manager,
            Self::V2(manager) => manager,
        }
    }
}

impl CgroupManager {
    /// A manager for the cgroup `cgroups_path` (OCI `linux.cgroupsPath`) under the mount root
    /// `root`. Absolute and relative paths are both taken relative to the root of each
    /// hierarchy; `..` and the root cgroup itself are refused. Nothing is created yet.
    pub fn new(root: &Path, cgroups_path: &Path) -> Result<Self, CgroupError> {
        let relative = common::relative_cgroup_path(cgroups_path)?;
        let setup = detect_setup(root)?;
        let backend = match setup {
            CgroupSetup::Unified => Backend::V2(V2Manager::new(root, &relative)),
            CgroupSetup::Legacy => Backend::V1(V1Manager::new(root, &relative, false)?),
            CgroupSetup::Hybrid => Backend::V1(V1Manager::new(root, &relative, true)?),
        };
        Ok(Self {
            setup,
            relative,
            backend,
        })
    }

    /// How the host mounts cgroups.
    pub fn setup(&self) -> CgroupSetup {
        self.setup
    }

    /// The cgroup's path relative to each hierarchy root.
    pub fn relative_path(&self) -> &Path {
        &self.relative
    }

    /// Creates the cgroup in every hierarchy (`mkdir -p`). On v2 it also enables the
    /// controllers the cgroup may need in its ancestors' `cgroup.subtree_control`; on v1 it
    /// seeds a new cpuset with its parent's cpus and memory nodes, without which no task could
    /// join it. Creating an existing cgroup is fine.
    pub fn create(&self) -> Result<(), CgroupError> {
        self.backend.get().create()
    }

    /// Moves the process `pid` into the cgroup in every hierarchy (on hybrid hosts, also the
    /// unified one).
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        self.backend.get().add_process(pid)
    }

    /// Applies `resources`; also used by `update`. Resources that are `None` are left as they
    /// are, so an update touches only what it names.
    pub fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.backend.get().apply(resources)
    }

    /// Freezes every process of the cgroup and waits (bounded) until the kernel reports frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        self.backend.get().freeze()
    }

    /// Thaws the cgroup.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.backend.get().thaw()
    }

    /// The freezer's current state.
    pub fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        self.backend.get().freezer_state()
    }

    /// Every process in the cgroup and its descendants, sorted.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        self.backend.get().pids()
    }

    /// Resource usage, shaped like runc's `events --stats`.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        self.backend.get().stats()
    }

    /// Memory limit and OOM counters (for the audit log).
    pub fn memory_events(&self) -> Result<MemoryEvents, CgroupError> {
        self.backend.get().memory_events()
    }

    /// Sends `signal` to every process in the cgroup. For `SIGKILL` on v2 this is one write to
    /// `cgroup.kill`; otherwise the cgroup is frozen (when a freezer exists) so no process can
    /// fork past the signal, each process is signalled, and the cgroup is thawed again (a
    /// cgroup that was frozen before stays frozen unless the signal is `SIGKILL`).
    pub fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        self.backend.get().kill_all(signal)
    }

    /// Removes the cgroup (and any cgroups below it) from every hierarchy. `EBUSY` is retried
    /// for a bounded time; a cgroup that is already gone is not an error.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        self.backend.get().destroy()
    }

    /// The cgroup's directory in each hierarchy, keyed by controller (`unified` for cgroup2).
    pub fn paths(&self) -> BTreeMap<String, PathBuf> {
        self.backend.get().paths()
    }

    /// The ids of the eBPF device programs attached directly to the cgroup (cgroup v2 and the
    /// unified hierarchy only; empty on legacy hosts).
    pub fn device_programs(&self) -> Result<Vec<u32>, CgroupError> {
        match &self.backend {
            Backend::V2(manager) => v2::devices::attached_programs(manager.path()),
            Backend::V1(_) => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::fake_cgroup;

    #[test]
    fn detects_each_setup() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(matches!(
            detect_setup(root),
            Err(CgroupError::NoCgroupFilesystem { .. })
        ));
        fake_cgroup(&root.join("memory"), &["cgroup.procs"]);
        assert_eq!(detect_setup(root).unwrap(), CgroupSetup::Legacy);
        fake_cgroup(&root.join("unified"), &["cgroup.controllers"]);
        assert_eq!(detect_setup(root).unwrap(), CgroupSetup::Hybrid);
        let unified = tempfile::tempdir().unwrap();
        fake_cgroup(unified.path(), &["cgroup.controllers"]);
        assert_eq!(detect_setup(unified.path()).unwrap(), CgroupSetup::Unified);
    }

    #[test]
    fn manager_refuses_escaping_paths() {
        let dir = tempfile::tempdir().unwrap();
        fake_cgroup(dir.path(), &["cgroup.controllers"]);
        let error = CgroupManager::new(dir.path(), Path::new("/../x")).unwrap_err();
        assert!(matches!(error, CgroupError::InvalidPath { .. }));
    }
}
