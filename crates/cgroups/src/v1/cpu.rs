//! The cgroup v1 cpu controller: shares, CFS bandwidth (quota, period, burst), realtime
//! bandwidth, idle.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::common;
use crate::error::CgroupError;
use crate::stats::Stats;

/// Whether `cpu` sets anything of this controller (cpus/mems belong to cpuset).
pub(super) fn is_requested(cpu: &LinuxCpu) -> bool {
    cpu.shares().is_some_and(|v| v != 0)
        || cpu.quota().is_some_and(|v| v != 0)
        || cpu.period().is_some_and(|v| v != 0)
        || cpu.burst().is_some()
        || cpu.idle().is_some()
        || cpu.realtime_runtime().is_some_and(|v| v != 0)
        || cpu.realtime_period().is_some_and(|v| v != 0)
}

pub(super) fn apply(dir: &Path, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(shares) = cpu.shares().filter(|&s| s != 0) {
        common::write_file(dir, "cpu.shares", shares)?;
    }
    if let Some(quota) = cpu.quota().filter(|&q| q < -1) {
        return Err(CgroupError::InvalidResource {
            resource: "cpu.quota",
            path: dir.to_owned(),
            reason: format!("{quota} is neither -1 nor positive"),
        });
    }
    let period = cpu.period().filter(|&p| p != 0).map(|p| p.to_string());
    let quota = cpu.quota().filter(|&q| q != 0).map(|q| q.to_string());
    write_pair(
        dir,
        ("cpu.cfs_period_us", period),
        ("cpu.cfs_quota_us", quota),
    )?;
    if let Some(burst) = cpu.burst() {
        common::write_file(dir, "cpu.cfs_burst_us", burst)?;
    }
    let realtime_period = cpu
        .realtime_period()
        .filter(|&p| p != 0)
        .map(|p| p.to_string());
    let realtime_runtime = cpu
        .realtime_runtime()
        .filter(|&r| r != 0)
        .map(|r| r.to_string());
    write_pair(
        dir,
        ("cpu.rt_period_us", realtime_period),
        ("cpu.rt_runtime_us", realtime_runtime),
    )?;
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

/// Writes a period and its budget, period first; when the kernel refuses the period because
/// the current budget does not fit it (`EINVAL`), the budget goes first.
fn write_pair(
    dir: &Path,
    period: (&str, Option<String>),
    budget: (&str, Option<String>),
) -> Result<(), CgroupError> {
    let (period_file, period) = period;
    let (budget_file, budget) = budget;
    let Some(period) = period else {
        return budget.map_or(Ok(()), |budget| {
            common::write_file(dir, budget_file, budget)
        });
    };
    match common::write_file(dir, period_file, &period) {
        Ok(()) => budget.map_or(Ok(()), |budget| {
            common::write_file(dir, budget_file, budget)
        }),
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) && budget.is_some() => {
            if let Some(budget) = budget {
                common::write_file(dir, budget_file, budget)?;
            }
            common::write_file(dir, period_file, period)
        }
        Err(error) => Err(error),
    }
}

/// Reads CFS throttling from `cpu.stat` (v1 reports nanoseconds already).
pub(super) fn stats(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    let Some(stat) = common::read_flat_keyed(dir, "cpu.stat")? else {
        return Ok(());
    };
    let value = |key: &str| stat.get(key).copied().unwrap_or(0);
    stats.cpu.throttling.periods = value("nr_periods");
    stats.cpu.throttling.throttled_periods = value("nr_throttled");
    stats.cpu.throttling.throttled_time = value("throttled_time");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v1::tests::{fake_v1, RELATIVE};
    use oci_spec::runtime::LinuxCpuBuilder;

    #[test]
    fn writes_every_cpu_file() {
        let dir = fake_v1(false, &["cpu"]);
        let cgroup = dir.path().join("cpu").join(RELATIVE);
        let cpu = LinuxCpuBuilder::default()
            .shares(2048u64)
            .quota(-1)
            .period(100_000u64)
            .burst(5000u64)
            .realtime_period(1_000_000u64)
            .realtime_runtime(950_000)
            .idle(0)
            .build()
            .unwrap();
        take_writes();
        apply(&cgroup, &cpu).unwrap();
        let writes: Vec<String> = take_writes()
            .into_iter()
            .map(|(file, value)| format!("{file}={value}"))
            .collect();
        assert_eq!(
            writes,
            vec![
                "cpu.shares=2048",
                "cpu.cfs_period_us=100000",
                "cpu.cfs_quota_us=-1",
                "cpu.cfs_burst_us=5000",
                "cpu.rt_period_us=1000000",
                "cpu.rt_runtime_us=950000",
                "cpu.idle=0",
            ]
        );
    }

    #[test]
    fn period_refused_retries_after_quota() {
        let dir = fake_v1(false, &["cpu"]);
        let cgroup = dir.path().join("cpu").join(RELATIVE);
        let cpu = LinuxCpuBuilder::default()
            .quota(20_000)
            .period(10_000u64)
            .build()
            .unwrap();
        fail_next_write("cpu.cfs_period_us", libc::EINVAL);
        take_writes();
        apply(&cgroup, &cpu).unwrap();
        assert_eq!(
            take_writes(),
            vec![
                ("cpu.cfs_quota_us".to_owned(), "20000".to_owned()),
                ("cpu.cfs_period_us".to_owned(), "10000".to_owned()),
            ]
        );
        let bad = LinuxCpuBuilder::default().quota(-2).build().unwrap();
        assert!(apply(&cgroup, &bad).is_err());
    }

    #[test]
    fn throttling_stats() {
        let dir = fake_v1(false, &["cpu"]);
        let cgroup = dir.path().join("cpu").join(RELATIVE);
        put(
            &cgroup,
            "cpu.stat",
            "nr_periods 20\nnr_throttled 5\nthrottled_time 123456789\nnr_bursts 0\nburst_time 0\n",
        );
        let mut stats = Stats::default();
        super::stats(&cgroup, &mut stats).unwrap();
        assert_eq!(stats.cpu.throttling.periods, 20);
        assert_eq!(stats.cpu.throttling.throttled_periods, 5);
        assert_eq!(stats.cpu.throttling.throttled_time, 123_456_789);
    }
}
