//! The cgroup v1 pids controller: `pids.max` (the same file and values as on v2).

use std::path::Path;

use oci_spec::runtime::LinuxPids;

use crate::common;
use crate::error::CgroupError;
use crate::stats::Stats;

pub(super) fn apply(dir: &Path, pids: &LinuxPids) -> Result<(), CgroupError> {
    common::write_file(dir, "pids.max", crate::v2::pids::limit_value(pids.limit()))
}

pub(super) fn stats(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    crate::v2::pids::stats(dir, stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v1::tests::{fake_v1, RELATIVE};
    use oci_spec::runtime::LinuxPidsBuilder;

    #[test]
    fn limit_and_stats() {
        let dir = fake_v1(false, &["pids"]);
        let cgroup = dir.path().join("pids").join(RELATIVE);
        apply(
            &cgroup,
            &LinuxPidsBuilder::default().limit(-1).build().unwrap(),
        )
        .unwrap();
        assert_eq!(get(&cgroup, "pids.max"), "max");
        apply(
            &cgroup,
            &LinuxPidsBuilder::default().limit(7).build().unwrap(),
        )
        .unwrap();
        assert_eq!(get(&cgroup, "pids.max"), "7");
        put(&cgroup, "pids.current", "2\n");
        let mut stats = Stats::default();
        super::stats(&cgroup, &mut stats).unwrap();
        assert_eq!((stats.pids.current, stats.pids.limit), (2, 7));
    }
}
