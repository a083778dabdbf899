//! The cgroup v2 cpuset controller: `cpuset.cpus`, `cpuset.mems`.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::common;
use crate::error::CgroupError;
use crate::stats::Stats;

/// Whether `cpu` names cpus or memory nodes.
pub(super) fn is_requested(cpu: &LinuxCpu) -> bool {
    cpu.cpus().as_deref().is_some_and(|c| !c.is_empty())
        || cpu.mems().as_deref().is_some_and(|m| !m.is_empty())
}

pub(super) fn apply(dir: &Path, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    common::apply_cpuset(dir, cpu)
}

pub(super) fn stats(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    common::cpuset_stats(dir, stats, "cpuset.cpus.effective", "cpuset.mems.effective")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v2::tests::fake_v2;
    use oci_spec::runtime::LinuxCpuBuilder;

    #[test]
    fn writes_cpus_and_mems() {
        let (_dir, cgroup) = fake_v2();
        let cpu = LinuxCpuBuilder::default()
            .cpus("0-1")
            .mems("0")
            .build()
            .unwrap();
        assert!(is_requested(&cpu));
        apply(&cgroup, &cpu).unwrap();
        assert_eq!(get(&cgroup, "cpuset.cpus"), "0-1");
        assert_eq!(get(&cgroup, "cpuset.mems"), "0");
    }

    #[test]
    fn refuses_malformed_lists() {
        let (_dir, cgroup) = fake_v2();
        let cpu = LinuxCpuBuilder::default().cpus("0-x").build().unwrap();
        assert!(matches!(
            apply(&cgroup, &cpu),
            Err(CgroupError::InvalidResource {
                resource: "cpu.cpus",
                ..
            })
        ));
    }
}
