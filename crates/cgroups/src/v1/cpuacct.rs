//! The cgroup v1 cpuacct controller: CPU usage statistics (it has nothing to configure).

use std::path::Path;

use crate::common;
use crate::error::CgroupError;
use crate::stats::Stats;

const NANOSECONDS_PER_SECOND: u64 = 1_000_000_000;

/// Clock ticks per second (`USER_HZ`), the unit of `cpuacct.stat`.
fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|ticks| u64::try_from(ticks).ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

pub(super) fn stats(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    let usage = &mut stats.cpu.usage;
    if let Some(total) = common::read_optional_value(dir, "cpuacct.usage")? {
        usage.total = total;
    }
    for (file, target) in [
        ("cpuacct.usage_percpu", &mut usage.percpu),
        ("cpuacct.usage_percpu_sys", &mut usage.percpu_kernel),
        ("cpuacct.usage_percpu_user", &mut usage.percpu_user),
    ] {
        if let Some(content) = common::read_optional(dir, file)? {
            *target = common::parse_value_list(&dir.join(file), &content)?;
        }
    }
    if let Some(stat) = common::read_flat_keyed(dir, "cpuacct.stat")? {
        let ticks = clock_ticks();
        let nanoseconds = |key: &str| {
            stat.get(key)
                .copied()
                .unwrap_or(0)
                .saturating_mul(NANOSECONDS_PER_SECOND)
                / ticks
        };
        usage.user = nanoseconds("user");
        usage.kernel = nanoseconds("system");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v1::tests::{fake_v1, RELATIVE};

    #[test]
    fn usage_and_percpu() {
        let dir = fake_v1(false, &["cpuacct"]);
        let cgroup = dir.path().join("cpuacct").join(RELATIVE);
        put(&cgroup, "cpuacct.usage", "1234567890\n");
        put(&cgroup, "cpuacct.usage_percpu", "1000000000 234567890 \n");
        put(&cgroup, "cpuacct.usage_percpu_sys", "100 200 \n");
        put(&cgroup, "cpuacct.usage_percpu_user", "300 400 \n");
        put(&cgroup, "cpuacct.stat", "user 150\nsystem 50\n");
        let mut stats = Stats::default();
        super::stats(&cgroup, &mut stats).unwrap();
        let usage = &stats.cpu.usage;
        assert_eq!(usage.total, 1_234_567_890);
        assert_eq!(usage.percpu, vec![1_000_000_000, 234_567_890]);
        assert_eq!(usage.percpu_kernel, vec![100, 200]);
        assert_eq!(usage.percpu_user, vec![300, 400]);
        let ticks = clock_ticks();
        assert_eq!(usage.user, 150 * NANOSECONDS_PER_SECOND / ticks);
        assert_eq!(usage.kernel, 50 * NANOSECONDS_PER_SECOND / ticks);
        put(&cgroup, "cpuacct.usage_percpu", "1 two\n");
        assert!(super::stats(&cgroup, &mut stats).is_err());
    }
}
