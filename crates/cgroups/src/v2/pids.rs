//! The cgroup v2 pids controller: `pids.max`.

use std::path::Path;

use oci_spec::runtime::LinuxPids;

use crate::common;
use crate::error::CgroupError;
use crate::stats::Stats;

/// The `pids.max` value: a positive limit as is, 0 or -1 (and anything negative) as `max`.
pub(crate) fn limit_value(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_owned()
    }
}

pub(super) fn apply(dir: &Path, pids: &LinuxPids) -> Result<(), CgroupError> {
    common::write_file(dir, "pids.max", limit_value(pids.limit()))
}

/// Reads `pids.current` and `pids.max` from `dir` (the same files on v1 and v2).
pub(crate) fn stats(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    if let Some(current) = common::read_optional_value(dir, "pids.current")? {
        stats.pids.current = current;
    }
    if let Some(limit) = common::read_optional_value(dir, "pids.max")? {
        // runc reports "max" as 0.
        stats.pids.limit = if limit == u64::MAX { 0 } else { limit };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v2::tests::fake_v2;
    use oci_spec::runtime::LinuxPidsBuilder;

    #[test]
    fn limits_and_unlimited() {
        let (_dir, cgroup) = fake_v2();
        for (limit, expected) in [(100, "100"), (0, "max"), (-1, "max")] {
            let pids = LinuxPidsBuilder::default().limit(limit).build().unwrap();
            apply(&cgroup, &pids).unwrap();
            assert_eq!(get(&cgroup, "pids.max"), expected);
        }
    }

    #[test]
    fn stats_read_limit() {
        let (_dir, cgroup) = fake_v2();
        put(&cgroup, "pids.current", "4\n");
        put(&cgroup, "pids.max", "64\n");
        let mut stats = Stats::default();
        super::stats(&cgroup, &mut stats).unwrap();
        assert_eq!((stats.pids.current, stats.pids.limit), (4, 64));
    }
}
