//! The cgroup v2 manager: one directory in the unified hierarchy.

mod cpu;
mod cpuset;
pub(crate) mod devices;
mod freezer;
mod hugetlb;
mod io;
mod memory;
pub(crate) mod pids;
pub(crate) mod rdma;
pub(crate) mod unified;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use crate::common::{self, CgroupBackend, CGROUP_PROCS};
use crate::error::CgroupError;
use crate::stats::{MemoryEvents, Stats};
use crate::FreezerState;

/// Controllers a container cgroup may use, enabled in each ancestor's `cgroup.subtree_control`
/// when the ancestor offers them.
const WANTED_CONTROLLERS: [&str; 8] = [
    "cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma", "misc",
];

/// `cgroup.kill`: writing 1 kills every process in the cgroup (Linux 5.14).
const CGROUP_KILL: &str = "cgroup.kill";

/// A container's cgroup on a cgroup v2 host (or in a hybrid host's unified hierarchy).
#[derive(Debug)]
pub(crate) struct V2Manager {
    root: PathBuf,
    relative: PathBuf,
    path: PathBuf,
}

impl V2Manager {
    pub(crate) fn new(root: &Path, relative: &Path) -> Self {
        Self {
            root: root.to_owned(),
            relative: relative.to_owned(),
            path: root.join(relative),
        }
    }

    /// The cgroup's directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Enables [`WANTED_CONTROLLERS`] down the path from the root to the cgroup's parent, so
    /// the cgroup gets their interface files. A controller that cannot be enabled (the parent
    /// holds processes, or it is threaded) is logged and skipped: `apply` reports it if a
    /// resource needs it.
    fn enable_controllers(&self) -> Result<(), CgroupError> {
        let mut ancestor = self.root.clone();
        let components: Vec<_> = self.relative.components().collect();
        for component in &components {
            let available =
                common::read_optional(&ancestor, "cgroup.controllers")?.unwrap_or_default();
            let enabled =
                common::read_optional(&ancestor, "cgroup.subtree_control")?.unwrap_or_default();
            let available: Vec<&str> = available.split_whitespace().collect();
            let enabled: Vec<&str> = enabled.split_whitespace().collect();
            for controller in WANTED_CONTROLLERS {
                if !available.contains(&controller) || enabled.contains(&controller) {
                    continue;
                }
                if let Err(error) = common::write_file(
                    &ancestor,
                    "cgroup.subtree_control",
                    format!("+{controller}"),
                ) {
                    tracing::warn!(%error, controller, "cannot enable cgroup controller");
                }
            }
            ancestor.push(component);
        }
        Ok(())
    }

    /// Fails unless `controller` is enabled for this cgroup.
    fn require(&self, controller: &'static str, resource: &'static str) -> Result<(), CgroupError> {
        let available =
            common::read_optional(&self.path, "cgroup.controllers")?.unwrap_or_default();
        if available.split_whitespace().any(|c| c == controller) {
            Ok(())
        } else {
            Err(CgroupError::ControllerUnavailable {
                controller,
                path: self.path.clone(),
                resource,
            })
        }
    }

    fn signal_each(&self, signal: i32) -> Result<(), CgroupError> {
        let pids = self.pids()?;
        common::signal_processes(&self.path, &pids, signal)
    }
}

impl CgroupBackend for V2Manager {
    fn create(&self) -> Result<(), CgroupError> {
        fs::create_dir_all(&self.path).map_err(|source| CgroupError::CreateDirectory {
            path: self.path.clone(),
            source,
        })?;
        self.enable_controllers()
    }

    fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        common::write_file(&self.path, CGROUP_PROCS, pid)
    }

    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        let dir = &self.path;
        if let Some(rules) = resources.devices() {
            devices::apply(dir, rules)?;
        }
        if let Some(memory) = resources.memory() {
            if memory::is_requested(memory) {
                self.require("memory", "memory")?;
            }
            memory::apply(dir, memory)?;
        }
        if let Some(cpu) = resources.cpu() {
            if cpu::is_requested(cpu) {
                self.require("cpu", "cpu")?;
                cpu::apply(dir, cpu)?;
            }
            if cpuset::is_requested(cpu) {
                self.require("cpuset", "cpu.cpus/cpu.mems")?;
                cpuset::apply(dir, cpu)?;
            }
        }
        if let Some(pids) = resources.pids() {
            self.require("pids", "pids")?;
            pids::apply(dir, pids)?;
        }
        if let Some(block_io) = resources.block_io() {
            if io::is_requested(block_io) {
                self.require("io", "blockIO")?;
            }
            io::apply(dir, block_io)?;
        }
        if let Some(limits) = resources.hugepage_limits() {
            if !limits.is_empty() {
                self.require("hugetlb", "hugepageLimits")?;
                hugetlb::apply(dir, limits)?;
            }
        }
        if let Some(rdma) = resources.rdma() {
            if !rdma.is_empty() {
                self.require("rdma", "rdma")?;
                rdma::apply(dir, rdma)?;
            }
        }
        if let Some(network) = resources.network() {
            if network.class_id().is_some() || network.priorities().is_some() {
                tracing::warn!(path = %dir.display(), "network classid and priorities need cgroup v1 net_cls/net_prio; ignored on cgroup v2");
            }
        }
        if let Some(unified) = resources.unified() {
            unified::apply(dir, unified)?;
        }
        Ok(())
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        freezer::freeze(&self.path)
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        freezer::thaw(&self.path)
    }

    fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        freezer::state(&self.path)
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        common::pids_recursive(&self.path)
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let dir = &self.path;
        common::require_directory(dir)?;
        let mut stats = Stats::default();
        cpu::stats(dir, &mut stats)?;
        cpuset::stats(dir, &mut stats)?;
        memory::stats(dir, &mut stats)?;
        pids::stats(dir, &mut stats)?;
        io::stats(dir, &mut stats)?;
        hugetlb::stats(dir, &mut stats)?;
        Ok(stats)
    }

    fn memory_events(&self) -> Result<MemoryEvents, CgroupError> {
        memory::events(&self.path)
    }

    fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        if signal == libc::SIGKILL && self.path.join(CGROUP_KILL).exists() {
            return common::write_file(&self.path, CGROUP_KILL, 1);
        }
        if !freezer::is_available(&self.path) {
            return self.signal_each(signal);
        }
        let was_frozen = freezer::is_freeze_requested(&self.path)?;
        freezer::freeze(&self.path)?;
        let signalled = self.signal_each(signal);
        if !was_frozen || signal == libc::SIGKILL {
            freezer::thaw(&self.path)?;
        }
        signalled
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        common::remove_cgroup(&self.path)
    }

    fn paths(&self) -> BTreeMap<String, PathBuf> {
        BTreeMap::from([("unified".to_owned(), self.path.clone())])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::CgroupManager;
    use oci_spec::runtime::{LinuxPidsBuilder, LinuxResourcesBuilder};

    /// A fake unified root with every controller, and the container cgroup `palisade/test`
    /// with the interface files the kernel would create.
    pub(crate) fn fake_v2() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let all = "cpuset cpu io memory hugetlb pids rdma misc";
        fake_cgroup(root, &["cgroup.subtree_control", CGROUP_PROCS]);
        put(root, "cgroup.controllers", all);
        let cgroup = root.join("palisade/test");
        fake_cgroup(
            &cgroup,
            &[
                CGROUP_PROCS,
                "cgroup.subtree_control",
                "cgroup.freeze",
                "cgroup.kill",
                "memory.max",
                "memory.low",
                "memory.swap.max",
                "memory.oom.group",
                "cpu.weight",
                "cpu.max",
                "cpu.max.burst",
                "cpu.idle",
                "cpuset.cpus",
                "cpuset.mems",
                "pids.max",
                "io.weight",
                "io.max",
                "hugetlb.2MB.max",
                "hugetlb.2MB.rsvd.max",
                "hugetlb.1GB.max",
                "rdma.max",
            ],
        );
        put(&cgroup, "cgroup.controllers", all);
        put(&cgroup, "cgroup.events", "populated 0\nfrozen 0\n");
        put(&cgroup.join(".."), "cgroup.controllers", all);
        put(&cgroup.join(".."), "cgroup.subtree_control", "");
        (dir, cgroup)
    }

    fn manager(root: &Path) -> CgroupManager {
        CgroupManager::new(root, Path::new("/palisade/test")).unwrap()
    }

    #[test]
    fn create_enables_controllers_in_ancestors() {
        let (dir, _) = fake_v2();
        put(dir.path(), "cgroup.subtree_control", "cpu memory");
        take_writes();
        manager(dir.path()).create().unwrap();
        let writes = take_writes();
        // The root already has cpu and memory; `palisade` has nothing yet.
        let expected: Vec<(String, String)> =
            ["+cpuset", "+io", "+pids", "+hugetlb", "+rdma", "+misc"]
                .iter()
                .chain(
                    [
                        "+cpu", "+cpuset", "+io", "+memory", "+pids", "+hugetlb", "+rdma", "+misc",
                    ]
                    .iter(),
                )
                .map(|v| ("cgroup.subtree_control".to_owned(), (*v).to_owned()))
                .collect();
        assert_eq!(writes, expected);
    }

    #[test]
    fn apply_dispatches_every_resource_to_its_file() {
        use oci_spec::runtime::{
            LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder,
            LinuxThrottleDeviceBuilder,
        };
        use std::collections::HashMap;
        let (dir, cgroup) = fake_v2();
        fake_cgroup(&cgroup, &["memory.high"]);
        let resources = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(100 << 20)
                    .swap(150 << 20)
                    .reservation(50 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(2u64)
                    .quota(-1)
                    .period(250_000u64)
                    .cpus("1")
                    .mems("0")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(0).build().unwrap())
            .block_io(
                LinuxBlockIoBuilder::default()
                    .throttle_write_iops_device(vec![LinuxThrottleDeviceBuilder::default()
                        .major(254)
                        .minor(0)
                        .rate(300u64)
                        .build()
                        .unwrap()])
                    .build()
                    .unwrap(),
            )
            .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
                .page_size("1GB")
                .limit(0)
                .build()
                .unwrap()])
            .unified(HashMap::from([(
                "memory.high".to_owned(),
                "90000000".to_owned(),
            )]))
            .build()
            .unwrap();
        manager(dir.path()).apply(&resources).unwrap();
        for (file, expected) in [
            ("memory.max", "104857600"),
            ("memory.swap.max", "52428800"),
            ("memory.low", "52428800"),
            ("cpu.weight", "1"),
            ("cpu.max", "max 250000"),
            ("cpuset.cpus", "1"),
            ("cpuset.mems", "0"),
            ("pids.max", "max"),
            ("io.max", "254:0 wiops=300"),
            ("hugetlb.1GB.max", "0"),
            ("memory.high", "90000000"),
        ] {
            assert_eq!(get(&cgroup, file), expected, "{file}");
        }
    }

    #[test]
    fn add_process_writes_cgroup_procs() {
        let (dir, cgroup) = fake_v2();
        manager(dir.path()).add_process(4242).unwrap();
        assert_eq!(get(&cgroup, CGROUP_PROCS), "4242");
    }

    #[test]
    fn missing_controller_is_named() {
        let (dir, cgroup) = fake_v2();
        put(&cgroup, "cgroup.controllers", "cpu memory");
        let resources = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(10).build().unwrap())
            .build()
            .unwrap();
        let error = manager(dir.path()).apply(&resources).unwrap_err();
        assert!(
            matches!(
                error,
                CgroupError::ControllerUnavailable {
                    controller: "pids",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn kill_uses_cgroup_kill_for_sigkill() {
        let (dir, cgroup) = fake_v2();
        manager(dir.path()).kill_all(libc::SIGKILL).unwrap();
        assert_eq!(get(&cgroup, CGROUP_KILL), "1");
    }

    #[test]
    fn kill_with_other_signals_freezes_and_thaws() {
        let (dir, cgroup) = fake_v2();
        put(&cgroup, "cgroup.events", "populated 0\nfrozen 1\n");
        put(&cgroup, CGROUP_PROCS, "");
        take_writes();
        manager(dir.path()).kill_all(libc::SIGTERM).unwrap();
        let writes = take_writes();
        assert_eq!(
            writes,
            vec![
                ("cgroup.freeze".to_owned(), "1".to_owned()),
                ("cgroup.freeze".to_owned(), "0".to_owned())
            ]
        );
    }

    #[test]
    fn destroy_is_idempotent_and_paths_are_reported() {
        let (dir, cgroup) = fake_v2();
        let manager = manager(dir.path());
        assert_eq!(manager.paths()["unified"], cgroup);
        manager.destroy().unwrap();
        assert!(!cgroup.exists());
        manager.destroy().unwrap();
        manager.create().unwrap();
        assert!(cgroup.is_dir());
    }

    #[test]
    fn stats_read_every_controller() {
        let (dir, cgroup) = fake_v2();
        put(
            &cgroup,
            "cpu.stat",
            "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 300\nnr_bursts 0\nburst_usec 0\n",
        );
        put(&cgroup, "cpuset.cpus.effective", "0-1\n");
        put(&cgroup, "cpuset.mems.effective", "0\n");
        put(&cgroup, "memory.current", "1048576\n");
        put(&cgroup, "memory.max", "4194304\n");
        put(&cgroup, "memory.peak", "2097152\n");
        put(&cgroup, "memory.swap.current", "4096\n");
        put(&cgroup, "memory.swap.max", "max\n");
        put(
            &cgroup,
            "memory.events",
            "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n",
        );
        put(
            &cgroup,
            "memory.stat",
            "anon 524288\nfile 262144\nkernel 65536\nsock 0\npgfault 100\n",
        );
        put(&cgroup, "pids.current", "3\n");
        put(&cgroup, "pids.max", "max\n");
        put(
            &cgroup,
            "io.stat",
            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=1 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
        );
        put(&cgroup, "hugetlb.2MB.current", "2097152\n");
        put(&cgroup, "hugetlb.2MB.events", "max 4\n");
        let stats = manager(dir.path()).stats().unwrap();
        assert_eq!(stats.cpu.usage.total, 2_000_000);
        assert_eq!(stats.cpu.usage.user, 1_500_000);
        assert_eq!(stats.cpu.usage.kernel, 500_000);
        assert_eq!(stats.cpu.throttling.periods, 10);
        assert_eq!(stats.cpu.throttling.throttled_periods, 2);
        assert_eq!(stats.cpu.throttling.throttled_time, 300_000);
        assert_eq!(stats.cpuset.cpus, vec![0, 1]);
        assert_eq!(stats.memory.usage.usage, 1_048_576);
        assert_eq!(stats.memory.usage.limit, 4_194_304);
        assert_eq!(stats.memory.usage.max, 2_097_152);
        assert_eq!(stats.memory.usage.failcnt, 7);
        assert_eq!(stats.memory.swap.usage, 1_048_576 + 4096);
        assert_eq!(stats.memory.swap.limit, u64::MAX);
        assert_eq!(stats.memory.cache, 262_144);
        assert_eq!(stats.memory.raw["pgfault"], 100);
        assert_eq!(stats.pids.current, 3);
        assert_eq!(stats.pids.limit, 0);
        let bytes = &stats.blkio.io_service_bytes_recursive;
        assert_eq!(bytes.len(), 4);
        assert_eq!(
            (
                bytes[0].major,
                bytes[0].minor,
                bytes[0].op.as_str(),
                bytes[0].value
            ),
            (8, 0, "Read", 4096)
        );
        assert_eq!(bytes[1].op, "Write");
        assert_eq!(bytes[1].value, 8192);
        assert_eq!(stats.blkio.io_serviced_recursive[1].value, 2);
        assert_eq!(stats.hugetlb["2MB"].usage, 2_097_152);
        assert_eq!(stats.hugetlb["2MB"].failcnt, 4);
        let events = manager(dir.path()).memory_events().unwrap();
        assert_eq!((events.oom, events.oom_kill, events.max), (1, 1, 7));
    }

    #[test]
    fn stats_of_a_missing_cgroup_are_an_error() {
        let (dir, _) = fake_v2();
        let manager = manager(dir.path());
        manager.destroy().unwrap();
        assert!(manager.stats().unwrap_err().is_not_found());
    }

    #[test]
    fn stats_reject_malformed_files() {
        let (dir, cgroup) = fake_v2();
        put(&cgroup, "pids.current", "lots\n");
        let error = manager(dir.path()).stats().unwrap_err();
        assert!(matches!(error, CgroupError::Parse { .. }), "{error}");
        put(&cgroup, "pids.current", "1\n");
        put(&cgroup, "io.stat", "8:0 rbytes\n");
        assert!(manager(dir.path()).stats().is_err());
    }
}
