//! The cgroup v2 cpu controller: `cpu.weight`, `cpu.max`, `cpu.max.burst`, `cpu.idle`.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::common;
use crate::error::CgroupError;
use crate::stats::Stats;

/// Whether `cpu` asks for anything of this controller (cpus/mems belong to cpuset).
pub(super) fn is_requested(cpu: &LinuxCpu) -> bool {
    cpu.shares().is_some_and(|v| v != 0)
        || cpu.quota().is_some_and(|v| v != 0)
        || cpu.period().is_some_and(|v| v != 0)
        || cpu.burst().is_some()
        || cpu.idle().is_some()
        || cpu.realtime_runtime().is_some_and(|v| v != 0)
        || cpu.realtime_period().is_some_and(|v| v != 0)
}

/// Converts cgroup v1 cpu shares (2..=262144) to a v2 weight (1..=10000), as runc does:
/// `1 + ((shares - 2) * 9999) / 262142`. Out-of-range shares are clamped first, as the v1
/// kernel would.
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The `cpu.max` line for a quota and period: `max` for no quota (`None`, 0 is unset, negative
/// is unlimited); without a period the kernel keeps the current one.
pub(super) fn max_line(quota: Option<i64>, period: Option<u64>) -> String {
    let mut line = match quota {
        Some(quota) if quota > 0 => quota.to_string(),
        _ => "max".to_owned(),
    };
    if let Some(period) = period.filter(|&p| p != 0) {
        line.push(' ');
        line.push_str(&period.to_string());
    }
    line
}

pub(super) fn apply(dir: &Path, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    if cpu.realtime_runtime().is_some_and(|v| v != 0)
        || cpu.realtime_period().is_some_and(|v| v != 0)
    {
        return Err(CgroupError::Unsupported {
            resource: "cpu.realtimeRuntime/realtimePeriod".to_owned(),
            version: "v2",
            path: dir.to_owned(),
        });
    }
    if let Some(shares) = cpu.shares().filter(|&s| s != 0) {
        common::write_file(dir, "cpu.weight", shares_to_weight(shares))?;
    }
    if let Some(quota) = cpu.quota().filter(|&q| q < -1) {
        return Err(CgroupError::InvalidResource {
            resource: "cpu.quota",
            path: dir.to_owned(),
            reason: format!("{quota} is neither -1 nor positive"),
        });
    }
    if cpu.quota().is_some_and(|q| q != 0) || cpu.period().is_some_and(|p| p != 0) {
        common::write_file(dir, "cpu.max", max_line(cpu.quota(), cpu.period()))?;
    }
    if let Some(burst) = cpu.burst() {
        common::write_file(dir, "cpu.max.burst", burst)?;
    }
    if let Some(idle) = cpu.idle() {
        if !(0..=1).contains(&idle) {
            return Err(CgroupError::InvalidResource {
                resource: "cpu.idle",
                path: dir.to_owned(),
                reason: format!("{idle} is neither 0 nor 1"),
            });
        }
        common::write_file(dir, "cpu.idle", idle)?;
    }
    Ok(())
}

pub(super) fn stats(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    let Some(stat) = common::read_flat_keyed(dir, "cpu.stat")? else {
        return Ok(());
    };
    // cgroup v2 reports microseconds; the statistics are nanoseconds.
    let nanoseconds = |key: &str| stat.get(key).copied().unwrap_or(0).saturating_mul(1000);
    let count = |key: &str| stat.get(key).copied().unwrap_or(0);
    stats.cpu.usage.total = nanoseconds("usage_usec");
    stats.cpu.usage.user = nanoseconds("user_usec");
    stats.cpu.usage.kernel = nanoseconds("system_usec");
    stats.cpu.throttling.periods = count("nr_periods");
    stats.cpu.throttling.throttled_periods = count("nr_throttled");
    stats.cpu.throttling.throttled_time = nanoseconds("throttled_usec");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v2::tests::fake_v2;
    use oci_spec::runtime::LinuxCpuBuilder;

    #[test]
    fn shares_convert_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(u64::MAX), 10_000);
    }

    #[test]
    fn cpu_max_lines() {
        assert_eq!(max_line(Some(50_000), Some(100_000)), "50000 100000");
        assert_eq!(max_line(Some(-1), Some(100_000)), "max 100000");
        assert_eq!(max_line(None, Some(100_000)), "max 100000");
        assert_eq!(max_line(Some(20_000), None), "20000");
    }

    #[test]
    fn writes_weight_max_burst_idle() {
        let (_dir, cgroup) = fake_v2();
        let cpu = LinuxCpuBuilder::default()
            .shares(1024u64)
            .quota(50_000)
            .period(100_000u64)
            .burst(1000u64)
            .idle(1)
            .build()
            .unwrap();
        apply(&cgroup, &cpu).unwrap();
        assert_eq!(get(&cgroup, "cpu.weight"), "39");
        assert_eq!(get(&cgroup, "cpu.max"), "50000 100000");
        assert_eq!(get(&cgroup, "cpu.max.burst"), "1000");
        assert_eq!(get(&cgroup, "cpu.idle"), "1");
    }

    #[test]
    fn refuses_realtime_and_bad_values() {
        let (_dir, cgroup) = fake_v2();
        let realtime = LinuxCpuBuilder::default()
            .realtime_runtime(1000)
            .build()
            .unwrap();
        assert!(matches!(
            apply(&cgroup, &realtime),
            Err(CgroupError::Unsupported { .. })
        ));
        let quota = LinuxCpuBuilder::default().quota(-5).build().unwrap();
        assert!(apply(&cgroup, &quota).is_err());
        let idle = LinuxCpuBuilder::default().idle(3).build().unwrap();
        assert!(apply(&cgroup, &idle).is_err());
    }
}
