//! The cgroup v1 manager: one directory per hierarchy (and, on hybrid hosts, one in the
//! unified hierarchy too).

mod blkio;
mod cpu;
mod cpuacct;
mod cpuset;
mod devices;
mod freezer;
mod hugetlb;
mod memory;
mod net_cls;
mod net_prio;
mod pids;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use crate::common::{self, CgroupBackend, CGROUP_PROCS};
use crate::error::CgroupError;
use crate::stats::{MemoryEvents, Stats};
use crate::FreezerState;

/// The v1 controllers a container joins, and the named systemd hierarchy.
const KNOWN_HIERARCHIES: [&str; 15] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
    SYSTEMD_HIERARCHY,
];

/// The key of the `name=systemd` hierarchy, mounted at `<root>/systemd`.
const SYSTEMD_HIERARCHY: &str = "name=systemd";

/// Which hierarchy `pids()` reads, in order of preference (all hold the same processes).
const PROCESS_LIST_PREFERENCE: [&str; 7] = [
    "pids", "freezer", "memory", "devices", "cpu", "cpuacct", "blkio",
];

/// Passes of "list, signal" when there is no freezer to stop forks during `kill_all`.
const UNFROZEN_KILL_PASSES: u32 = 5;

/// Finds the v1 hierarchies mounted directly under `root`: controller → mount directory.
///
/// A directory's name lists its controllers (`cpu,cpuacct`, `net_cls,net_prio`); symbolic
/// links such as `cpu -> cpu,cpuacct` resolve to the same mount. `systemd` (or
/// `name=systemd`) is the named systemd hierarchy; `unified` is cgroup2 and not listed here.
pub(crate) fn discover_hierarchies(root: &Path) -> Result<BTreeMap<String, PathBuf>, CgroupError> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(CgroupError::NoCgroupFilesystem {
                root: root.to_owned(),
            })
        }
        Err(source) => {
            return Err(CgroupError::ListHierarchies {
                root: root.to_owned(),
                source,
            })
        }
    };
    let mut hierarchies = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|source| CgroupError::ListHierarchies {
            root: root.to_owned(),
            source,
        })?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let mount = fs::canonicalize(&path).unwrap_or(path.clone());
        for part in name.split(',') {
            let key = match part {
                "systemd" | SYSTEMD_HIERARCHY => SYSTEMD_HIERARCHY,
                part => match KNOWN_HIERARCHIES.iter().find(|&&known| known == part) {
                    Some(known) => known,
                    None => continue,
                },
            };
            hierarchies
                .entry(key.to_owned())
                .or_insert_with(|| mount.clone());
        }
    }
    Ok(hierarchies)
}

/// A container's cgroup on a cgroup v1 (legacy or hybrid) host.
#[derive(Debug)]
pub(crate) struct V1Manager {
    root: PathBuf,
    relative: PathBuf,
    /// Controller → mount directory of its hierarchy.
    hierarchies: BTreeMap<String, PathBuf>,
    /// The cgroup in the unified hierarchy of a hybrid host.
    unified: Option<PathBuf>,
}

impl V1Manager {
    pub(crate) fn new(root: &Path, relative: &Path, hybrid: bool) -> Result<Self, CgroupError> {
        Ok(Self {
            root: root.to_owned(),
            relative: relative.to_owned(),
            hierarchies: discover_hierarchies(root)?,
            unified: hybrid.then(|| root.join("unified").join(relative)),
        })
    }

    /// The cgroup's directory in `controller`'s hierarchy, if that hierarchy is mounted.
    fn dir(&self, controller: &str) -> Option<PathBuf> {
        self.hierarchies
            .get(controller)
            .map(|mount| mount.join(&self.relative))
    }

    /// The cgroup's directory for a requested resource, or an error naming the controller.
    fn require(
        &self,
        controller: &'static str,
        resource: &'static str,
    ) -> Result<PathBuf, CgroupError> {
        self.dir(controller)
            .ok_or_else(|| CgroupError::ControllerUnavailable {
                controller,
                path: self.root.join(controller),
                resource,
            })
    }

    /// Each hierarchy once (co-mounted controllers share one), as (mount, cgroup directory).
    fn unique_hierarchies(&self) -> Vec<(PathBuf, PathBuf)> {
        let mut mounts: Vec<&PathBuf> = self.hierarchies.values().collect();
        mounts.sort();
        mounts.dedup();
        mounts
            .into_iter()
            .map(|mount| (mount.clone(), mount.join(&self.relative)))
            .collect()
    }

    /// Every directory of the cgroup: one per hierarchy, plus the unified one.
    fn all_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .unique_hierarchies()
            .into_iter()
            .map(|(_, dir)| dir)
            .collect();
        dirs.extend(self.unified.clone());
        dirs
    }

    fn freezer_dir(&self) -> Result<PathBuf, CgroupError> {
        self.require("freezer", "freezer")
    }

    fn signal_each(&self, signal: i32) -> Result<(), CgroupError> {
        let dir = self.process_list_dir();
        let pids = self.pids()?;
        common::signal_processes(&dir, &pids, signal)
    }

    fn process_list_dir(&self) -> PathBuf {
        PROCESS_LIST_PREFERENCE
            .iter()
            .find_map(|controller| self.dir(controller))
            .or_else(|| self.all_dirs().into_iter().next())
            .unwrap_or_else(|| self.relative.clone())
    }
}

impl CgroupBackend for V1Manager {
    fn create(&self) -> Result<(), CgroupError> {
        for dir in self.all_dirs() {
            fs::create_dir_all(&dir)
                .map_err(|source| CgroupError::CreateDirectory { path: dir, source })?;
        }
        if let Some(mount) = self.hierarchies.get("cpuset") {
            cpuset::seed_from_parents(mount, &self.relative)?;
        }
        Ok(())
    }

    fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.all_dirs() {
            common::write_file(&dir, CGROUP_PROCS, pid)?;
        }
        Ok(())
    }

    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(rules) = resources.devices() {
            devices::apply(&self.require("devices", "devices")?, rules)?;
        }
        if let Some(memory) = resources.memory() {
            if memory::is_requested(memory) {
                memory::apply(&self.require("memory", "memory")?, memory)?;
            }
        }
        if let Some(cpu) = resources.cpu() {
            if cpu::is_requested(cpu) {
                cpu::apply(&self.require("cpu", "cpu")?, cpu)?;
            }
            if cpuset::is_requested(cpu) {
                cpuset::apply(&self.require("cpuset", "cpu.cpus/cpu.mems")?, cpu)?;
            }
        }
        if let Some(limit) = resources.pids() {
            pids::apply(&self.require("pids", "pids")?, limit)?;
        }
        if let Some(block_io) = resources.block_io() {
            if blkio::is_requested(block_io) {
                blkio::apply(&self.require("blkio", "blockIO")?, block_io)?;
            }
        }
        if let Some(limits) = resources.hugepage_limits() {
            if !limits.is_empty() {
                hugetlb::apply(&self.require("hugetlb", "hugepageLimits")?, limits)?;
            }
        }
        if let Some(network) = resources.network() {
            if let Some(class_id) = network.class_id() {
                net_cls::apply(&self.require("net_cls", "network.classID")?, class_id)?;
            }
            if let Some(priorities) = network.priorities() {
                if !priorities.is_empty() {
                    net_prio::apply(&self.require("net_prio", "network.priorities")?, priorities)?;
                }
            }
        }
        if let Some(rdma) = resources.rdma() {
            if !rdma.is_empty() {
                crate::v2::rdma::apply(&self.require("rdma", "rdma")?, rdma)?;
            }
        }
        if let Some(unified) = resources.unified() {
            if !unified.is_empty() {
                match &self.unified {
                    Some(dir) => crate::v2::unified::apply(dir, unified)?,
                    None => {
                        return Err(CgroupError::Unsupported {
                            resource: "unified".to_owned(),
                            version: "v1",
                            path: self.process_list_dir(),
                        })
                    }
                }
            }
        }
        Ok(())
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        freezer::freeze(&self.freezer_dir()?)
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        freezer::thaw(&self.freezer_dir()?)
    }

    fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        freezer::state(&self.freezer_dir()?)
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        common::pids_recursive(&self.process_list_dir())
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        common::require_directory(&self.process_list_dir())?;
        let mut stats = Stats::default();
        if let Some(dir) = self.dir("cpu") {
            cpu::stats(&dir, &mut stats)?;
        }
        if let Some(dir) = self.dir("cpuacct") {
            cpuacct::stats(&dir, &mut stats)?;
        }
        if let Some(dir) = self.dir("cpuset") {
            cpuset::stats(&dir, &mut stats)?;
        }
        if let Some(dir) = self.dir("memory") {
            memory::stats(&dir, &mut stats)?;
        }
        if let Some(dir) = self.dir("pids") {
            pids::stats(&dir, &mut stats)?;
        }
        if let Some(dir) = self.dir("blkio") {
            blkio::stats(&dir, &mut stats)?;
        }
        if let Some(dir) = self.dir("hugetlb") {
            hugetlb::stats(&dir, &mut stats)?;
        }
        Ok(stats)
    }

    fn memory_events(&self) -> Result<MemoryEvents, CgroupError> {
        memory::events(&self.require("memory", "memory events")?)
    }

    fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        let Some(freezer) = self.dir("freezer") else {
            // Without a freezer, processes may fork between listing and signalling: repeat a
            // few times for SIGKILL until the cgroup is empty.
            for _ in 0..UNFROZEN_KILL_PASSES {
                self.signal_each(signal)?;
                if signal != libc::SIGKILL || self.pids()?.is_empty() {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
            return Ok(());
        };
        let was_frozen = freezer::state(&freezer)? == FreezerState::Frozen;
        freezer::freeze(&freezer)?;
        let signalled = self.signal_each(signal);
        if !was_frozen || signal == libc::SIGKILL {
            freezer::thaw(&freezer)?;
        }
        signalled
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for dir in self.all_dirs() {
            if let Err(error) = common::remove_cgroup(&dir) {
                tracing::warn!(%error, "failed to remove cgroup directory");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn paths(&self) -> BTreeMap<String, PathBuf> {
        let mut paths: BTreeMap<String, PathBuf> = self
            .hierarchies
            .iter()
            .map(|(controller, mount)| (controller.clone(), mount.join(&self.relative)))
            .collect();
        if let Some(unified) = &self.unified {
            paths.insert("unified".to_owned(), unified.clone());
        }
        paths
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::{CgroupManager, CgroupSetup};
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
        LinuxResourcesBuilder,
    };
    use std::collections::HashMap;

    pub(crate) const RELATIVE: &str = "palisade/test";

    /// The control files of each fake v1 hierarchy (beyond `cgroup.procs`).
    fn files(controller: &str) -> &'static [&'static str] {
        match controller {
            "memory" => &[
                "memory.limit_in_bytes",
                "memory.soft_limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "memory.kmem.limit_in_bytes",
                "memory.kmem.tcp.limit_in_bytes",
                "memory.swappiness",
                "memory.oom_control",
                "memory.use_hierarchy",
            ],
            "cpu" => &[
                "cpu.shares",
                "cpu.cfs_period_us",
                "cpu.cfs_quota_us",
                "cpu.cfs_burst_us",
                "cpu.rt_period_us",
                "cpu.rt_runtime_us",
                "cpu.idle",
            ],
            "cpuset" => &["cpuset.cpus", "cpuset.mems"],
            "pids" => &["pids.max"],
            "blkio" => &[
                "blkio.weight",
                "blkio.leaf_weight",
                "blkio.weight_device",
                "blkio.leaf_weight_device",
                "blkio.throttle.read_bps_device",
                "blkio.throttle.write_bps_device",
                "blkio.throttle.read_iops_device",
                "blkio.throttle.write_iops_device",
            ],
            "devices" => &["devices.allow", "devices.deny"],
            "freezer" => &["freezer.state"],
            "hugetlb" => &["hugetlb.2MB.limit_in_bytes"],
            "net_cls,net_prio" => &["net_cls.classid", "net_prio.ifpriomap"],
            _ => &[],
        }
    }

    /// A fake legacy root with the controllers of this host (no hugetlb) and the container
    /// cgroup already created in each, with its control files. With `hybrid`, also a unified
    /// hierarchy.
    pub(crate) fn fake_v1(hybrid: bool, controllers: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for controller in controllers {
            fake_cgroup(&root.join(controller), &[CGROUP_PROCS]);
            let mut cgroup_files = vec![CGROUP_PROCS];
            cgroup_files.extend(files(controller));
            fake_cgroup(&root.join(controller).join(RELATIVE), &cgroup_files);
        }
        if controllers.contains(&"cpuset") {
            fake_cgroup(
                &root.join("cpuset/palisade"),
                &["cpuset.cpus", "cpuset.mems"],
            );
            put(&root.join("cpuset"), "cpuset.cpus", "0-1\n");
            put(&root.join("cpuset"), "cpuset.mems", "0\n");
        }
        if hybrid {
            fake_cgroup(&root.join("unified"), &["cgroup.controllers", CGROUP_PROCS]);
            fake_cgroup(
                &root.join("unified").join(RELATIVE),
                &[CGROUP_PROCS, "memory.high"],
            );
        }
        dir
    }

    pub(crate) const HOST_CONTROLLERS: [&str; 9] = [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
    ];

    fn manager(root: &Path) -> CgroupManager {
        CgroupManager::new(root, Path::new("/palisade/test")).unwrap()
    }

    #[test]
    fn discovers_comounted_and_named_hierarchies() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in [
            "cpu,cpuacct",
            "net_cls,net_prio",
            "systemd",
            "memory",
            "unified",
            "bogus",
        ] {
            fake_cgroup(&root.join(name), &[]);
        }
        std::os::unix::fs::symlink(root.join("cpu,cpuacct"), root.join("cpu")).unwrap();
        let found = discover_hierarchies(root).unwrap();
        let keys: Vec<&str> = found.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "cpu",
                "cpuacct",
                "memory",
                "name=systemd",
                "net_cls",
                "net_prio"
            ]
        );
        assert_eq!(found["cpu"], found["cpuacct"]);
    }

    #[test]
    fn create_makes_every_hierarchy_and_seeds_cpuset() {
        let dir = fake_v1(true, &HOST_CONTROLLERS);
        let root = dir.path();
        let manager = CgroupManager::new(root, Path::new("/palisade/other")).unwrap();
        assert_eq!(manager.setup(), CgroupSetup::Hybrid);
        // The kernel would create these files with the directory; the fake needs them first.
        fake_cgroup(
            &root.join("cpuset/palisade/other"),
            &["cpuset.cpus", "cpuset.mems"],
        );
        manager.create().unwrap();
        for hierarchy in HOST_CONTROLLERS {
            assert!(
                root.join(hierarchy).join("palisade/other").is_dir(),
                "{hierarchy}"
            );
        }
        assert!(root.join("unified/palisade/other").is_dir());
        assert_eq!(get(&root.join("cpuset/palisade"), "cpuset.cpus"), "0-1");
        assert_eq!(
            get(&root.join("cpuset/palisade/other"), "cpuset.cpus"),
            "0-1"
        );
        assert_eq!(get(&root.join("cpuset/palisade/other"), "cpuset.mems"), "0");
        assert_eq!(manager.paths().len(), HOST_CONTROLLERS.len() + 1);
    }

    #[test]
    fn add_process_joins_every_hierarchy_and_unified() {
        let dir = fake_v1(true, &HOST_CONTROLLERS);
        let root = dir.path();
        take_writes();
        manager(root).add_process(77).unwrap();
        let writes = take_writes();
        assert_eq!(writes.len(), HOST_CONTROLLERS.len() + 1);
        assert!(writes
            .iter()
            .all(|(file, pid)| file == CGROUP_PROCS && pid == "77"));
        assert_eq!(
            get(&root.join("unified").join(RELATIVE), CGROUP_PROCS),
            "77"
        );
        assert_eq!(
            get(&root.join("systemd").join(RELATIVE), CGROUP_PROCS),
            "77"
        );
    }

    #[test]
    fn apply_writes_each_controller() {
        let dir = fake_v1(false, &HOST_CONTROLLERS);
        let root = dir.path();
        let resources = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(1 << 30)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(512u64)
                    .cpus("0")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(32).build().unwrap())
            .build()
            .unwrap();
        manager(root).apply(&resources).unwrap();
        let cgroup = |controller: &str| root.join(controller).join(RELATIVE);
        assert_eq!(
            get(&cgroup("memory"), "memory.limit_in_bytes"),
            "1073741824"
        );
        assert_eq!(get(&cgroup("cpu"), "cpu.shares"), "512");
        assert_eq!(get(&cgroup("cpuset"), "cpuset.cpus"), "0");
        assert_eq!(get(&cgroup("pids"), "pids.max"), "32");
    }

    #[test]
    fn missing_hierarchy_matters_only_when_requested() {
        let dir = fake_v1(false, &HOST_CONTROLLERS);
        let root = dir.path();
        let manager = manager(root);
        manager.create().unwrap();
        manager.apply(&LinuxResources::default()).unwrap();
        let resources = LinuxResourcesBuilder::default()
            .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
                .page_size("2MB")
                .limit(1 << 21)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        let error = manager.apply(&resources).unwrap_err();
        assert!(
            matches!(
                error,
                CgroupError::ControllerUnavailable {
                    controller: "hugetlb",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("hugetlb"));
    }

    #[test]
    fn unified_needs_a_unified_hierarchy() {
        let unified = LinuxResourcesBuilder::default()
            .unified(HashMap::from([("memory.high".to_owned(), "5".to_owned())]))
            .build()
            .unwrap();
        let legacy = fake_v1(false, &HOST_CONTROLLERS);
        assert!(matches!(
            manager(legacy.path()).apply(&unified),
            Err(CgroupError::Unsupported { .. })
        ));
        let hybrid = fake_v1(true, &HOST_CONTROLLERS);
        manager(hybrid.path()).apply(&unified).unwrap();
        assert_eq!(
            get(&hybrid.path().join("unified").join(RELATIVE), "memory.high"),
            "5"
        );
    }

    #[test]
    fn pids_come_from_the_pids_hierarchy() {
        let dir = fake_v1(false, &HOST_CONTROLLERS);
        put(
            &dir.path().join("pids").join(RELATIVE),
            CGROUP_PROCS,
            "5\n3\n",
        );
        assert_eq!(manager(dir.path()).pids().unwrap(), vec![3, 5]);
    }

    #[test]
    fn kill_all_freezes_signals_and_thaws() {
        let dir = fake_v1(false, &HOST_CONTROLLERS);
        let freezer = dir.path().join("freezer").join(RELATIVE);
        // A fake freezer never changes state by itself, so start frozen (a user's `pause`):
        // a non-SIGKILL signal leaves that freeze in place, SIGKILL thaws so the kill lands.
        put(&freezer, "freezer.state", "FROZEN\n");
        take_writes();
        manager(dir.path()).kill_all(libc::SIGTERM).unwrap();
        assert_eq!(
            take_writes(),
            vec![("freezer.state".to_owned(), "FROZEN".to_owned())]
        );
        put(&freezer, "freezer.state", "FROZEN\n");
        manager(dir.path()).kill_all(libc::SIGKILL).unwrap();
        assert_eq!(
            take_writes(),
            vec![
                ("freezer.state".to_owned(), "FROZEN".to_owned()),
                ("freezer.state".to_owned(), "THAWED".to_owned())
            ]
        );
    }

    #[test]
    fn destroy_removes_everything_and_is_idempotent() {
        let dir = fake_v1(true, &HOST_CONTROLLERS);
        let root = dir.path();
        let manager = manager(root);
        manager.destroy().unwrap();
        for hierarchy in HOST_CONTROLLERS {
            assert!(!root.join(hierarchy).join(RELATIVE).exists(), "{hierarchy}");
            assert!(root.join(hierarchy).join("palisade").exists());
        }
        assert!(!root.join("unified").join(RELATIVE).exists());
        manager.destroy().unwrap();
    }
}
