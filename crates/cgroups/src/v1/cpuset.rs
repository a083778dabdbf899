//! The cgroup v1 cpuset controller: `cpuset.cpus`, `cpuset.mems`.
//!
//! A new v1 cpuset starts with empty cpus and mems, and no task can join it until both are set,
//! so creation copies them down from the parent at each level.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::common;
use crate::error::CgroupError;
use crate::stats::Stats;

const FILES: [&str; 2] = ["cpuset.cpus", "cpuset.mems"];

/// Whether `cpu` names cpus or memory nodes.
pub(super) fn is_requested(cpu: &LinuxCpu) -> bool {
    cpu.cpus().as_deref().is_some_and(|c| !c.is_empty())
        || cpu.mems().as_deref().is_some_and(|m| !m.is_empty())
}

/// Copies `cpuset.cpus` and `cpuset.mems` from each parent into each empty child, from the
/// hierarchy root `mount` down to `mount/relative`.
pub(super) fn seed_from_parents(mount: &Path, relative: &Path) -> Result<(), CgroupError> {
    let mut parent = mount.to_owned();
    for component in relative.components() {
        let child = parent.join(component);
        for file in FILES {
            if !common::read_file(&child, file)?.trim().is_empty() {
                continue;
            }
            let inherited = common::read_file(&parent, file)?;
            let inherited = inherited.trim();
            if !inherited.is_empty() {
                common::write_file(&child, file, inherited)?;
            }
        }
        parent = child;
    }
    Ok(())
}

pub(super) fn apply(dir: &Path, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    common::apply_cpuset(dir, cpu)
}

pub(super) fn stats(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    common::cpuset_stats(dir, stats, "cpuset.effective_cpus", "cpuset.effective_mems")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v1::tests::{fake_v1, RELATIVE};
    use oci_spec::runtime::LinuxCpuBuilder;

    #[test]
    fn seeding_keeps_values_already_set() {
        let dir = fake_v1(false, &["cpuset"]);
        let mount = dir.path().join("cpuset");
        fake_cgroup(&mount.join("palisade"), &FILES);
        put(&mount.join(RELATIVE), "cpuset.cpus", "1\n");
        seed_from_parents(&mount, Path::new(RELATIVE)).unwrap();
        assert_eq!(get(&mount.join("palisade"), "cpuset.cpus"), "0-1");
        assert_eq!(get(&mount.join(RELATIVE), "cpuset.cpus"), "1\n");
        assert_eq!(get(&mount.join(RELATIVE), "cpuset.mems"), "0");
    }

    #[test]
    fn writes_and_validates() {
        let dir = fake_v1(false, &["cpuset"]);
        let cgroup = dir.path().join("cpuset").join(RELATIVE);
        let cpu = LinuxCpuBuilder::default()
            .cpus("1")
            .mems("0")
            .build()
            .unwrap();
        apply(&cgroup, &cpu).unwrap();
        assert_eq!(get(&cgroup, "cpuset.cpus"), "1");
        assert_eq!(get(&cgroup, "cpuset.mems"), "0");
        let bad = LinuxCpuBuilder::default().mems("zero").build().unwrap();
        assert!(apply(&cgroup, &bad).is_err());
        put(&cgroup, "cpuset.effective_cpus", "0-1\n");
        put(&cgroup, "cpuset.effective_mems", "0\n");
        let mut stats = Stats::default();
        super::stats(&cgroup, &mut stats).unwrap();
        assert_eq!(stats.cpuset.cpus, vec![0, 1]);
        assert_eq!(stats.cpuset.mems, vec![0]);
    }
}
