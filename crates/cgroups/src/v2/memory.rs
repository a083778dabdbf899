//! The cgroup v2 memory controller: `memory.max`, `memory.low`, `memory.swap.max`.
//!
//! OCI's `swap` is memory+swap (cgroup v1's `memsw`), while v2's `memory.swap.max` is swap
//! alone, so the value written is `swap - limit`, converted the way runc does.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::common;
use crate::error::CgroupError;
use crate::stats::{MemoryEntry, MemoryEvents, Stats};

/// Whether `memory` asks for anything this controller enforces.
pub(super) fn is_requested(memory: &LinuxMemory) -> bool {
    memory.limit().is_some_and(|v| v != 0)
        || memory.reservation().is_some_and(|v| v != 0)
        || memory.swap().is_some_and(|v| v != 0)
        || memory.disable_oom_killer() == Some(true)
}

/// A cgroup v2 limit value: `-1` is `max`, `0` is "unset" (runc's convention), others as is.
fn limit_value(value: Option<i64>) -> Option<String> {
    match value {
        None | Some(0) => None,
        Some(-1) => Some("max".to_owned()),
        Some(value) => Some(value.to_string()),
    }
}

/// Converts OCI memory+swap to v2's swap-only value (runc's `ConvertMemorySwapToCgroupV2Value`).
/// `Ok(None)` leaves `memory.swap.max` as it is; `-1` means `max`.
pub(super) fn swap_value(
    swap: Option<i64>,
    limit: Option<i64>,
) -> Result<Option<i64>, &'static str> {
    let swap = swap.unwrap_or(0);
    let limit = limit.unwrap_or(0);
    // Unlimited memory without an explicit swap means unlimited swap too, as on v1.
    if limit == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    match swap {
        0 => Ok(None),
        -1 => Ok(Some(-1)),
        swap if swap < -1 => Err("swap must be -1 or positive"),
        swap => {
            if limit == 0 || limit == -1 {
                return Err("a swap limit needs a memory limit");
            }
            if limit < 0 {
                return Err("memory limit must be -1 or positive");
            }
            if swap < limit {
                return Err("memory+swap limit must be at least the memory limit");
            }
            Ok(Some(swap - limit))
        }
    }
}

pub(super) fn apply(dir: &Path, memory: &LinuxMemory) -> Result<(), CgroupError> {
    let invalid = |resource, reason: &str| CgroupError::InvalidResource {
        resource,
        path: dir.to_owned(),
        reason: reason.to_owned(),
    };
    if memory.disable_oom_killer() == Some(true) {
        return Err(CgroupError::Unsupported {
            resource: "memory.disableOOMKiller".to_owned(),
            version: "v2",
            path: dir.to_owned(),
        });
    }
    for (name, value) in [
        ("memory.kernel", memory.kernel()),
        ("memory.kernelTCP", memory.kernel_tcp()),
    ] {
        if value.is_some_and(|v| v != 0) {
            tracing::warn!(path = %dir.display(), resource = name, "kernel memory limits do not exist on cgroup v2; ignored");
        }
    }
    if memory.swappiness().is_some() {
        tracing::warn!(path = %dir.display(), "memory.swappiness does not exist on cgroup v2; ignored");
    }
    if memory.use_hierarchy() == Some(false) {
        tracing::warn!(path = %dir.display(), "cgroup v2 memory accounting is always hierarchical; useHierarchy=false ignored");
    }
    for (name, value) in [
        ("memory.limit", memory.limit()),
        ("memory.reservation", memory.reservation()),
    ] {
        if value.is_some_and(|v| v < -1) {
            return Err(invalid(name, "must be -1 or positive"));
        }
    }

    let swap = swap_value(memory.swap(), memory.limit()).map_err(|r| invalid("memory.swap", r))?;
    if let Some(swap) = swap {
        let value = if swap == -1 {
            "max".to_owned()
        } else {
            swap.to_string()
        };
        match common::write_file(dir, "memory.swap.max", &value) {
            Ok(()) => {}
            // No swap accounting: "unlimited" and "none" are both already true.
            Err(error) if error.is_not_found() && (swap == -1 || swap == 0) => {
                tracing::debug!(path = %dir.display(), "no memory.swap.max; swap setting {value} already holds");
            }
            Err(error) if error.is_not_found() => {
                return Err(CgroupError::ControllerUnavailable {
                    controller: "memory (swap accounting)",
                    path: dir.to_owned(),
                    resource: "memory.swap",
                })
            }
            Err(error) => return Err(error),
        }
    }
    if let Some(limit) = limit_value(memory.limit()) {
        if memory.check_before_update() == Some(true) {
            check_usage_below(dir, memory.limit().unwrap_or(0))?;
        }
        common::write_file(dir, "memory.max", limit)?;
    }
    if let Some(low) = limit_value(memory.reservation()) {
        common::write_file(dir, "memory.low", low)?;
    }
    Ok(())
}

/// OCI `checkBeforeUpdate`: refuse a limit below what the cgroup already uses, instead of
/// letting the kernel reclaim or OOM-kill to reach it.
fn check_usage_below(dir: &Path, limit: i64) -> Result<(), CgroupError> {
    let Ok(limit) = u64::try_from(limit) else {
        return Ok(());
    };
    if let Some(current) = common::read_optional_value(dir, "memory.current")? {
        if current > limit {
            return Err(CgroupError::InvalidResource {
                resource: "memory.limit",
                path: dir.to_owned(),
                reason: format!("{limit} is below the current usage {current}"),
            });
        }
    }
    Ok(())
}

pub(super) fn stats(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    let Some(usage) = common::read_optional_value(dir, "memory.current")? else {
        return Ok(());
    };
    let memory = &mut stats.memory;
    let raw = common::read_flat_keyed(dir, "memory.stat")?.unwrap_or_default();
    memory.cache = raw.get("file").copied().unwrap_or(0);
    memory.raw = raw;
    let events = events(dir)?;
    memory.usage = MemoryEntry {
        limit: common::read_optional_value(dir, "memory.max")?.unwrap_or(u64::MAX),
        usage,
        max: common::read_optional_value(dir, "memory.peak")?.unwrap_or(0),
        failcnt: events.max,
    };
    if let Some(swap_usage) = common::read_optional_value(dir, "memory.swap.current")? {
        let swap_limit = common::read_optional_value(dir, "memory.swap.max")?.unwrap_or(u64::MAX);
        // Reported as v1's memory+swap, as runc does.
        memory.swap = MemoryEntry {
            limit: if swap_limit == u64::MAX || memory.usage.limit == u64::MAX {
                u64::MAX
            } else {
                swap_limit.saturating_add(memory.usage.limit)
            },
            usage: swap_usage.saturating_add(usage),
            max: common::read_optional_value(dir, "memory.swap.peak")?.unwrap_or(0),
            failcnt: common::read_flat_keyed(dir, "memory.swap.events")?
                .and_then(|events| events.get("max").copied())
                .unwrap_or(0),
        };
    }
    Ok(())
}

pub(super) fn events(dir: &Path) -> Result<MemoryEvents, CgroupError> {
    let events = common::read_flat_keyed(dir, "memory.events")?.unwrap_or_default();
    let count = |key: &str| events.get(key).copied().unwrap_or(0);
    Ok(MemoryEvents {
        oom: count("oom"),
        oom_kill: count("oom_kill"),
        max: count("max"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v2::tests::fake_v2;
    use oci_spec::runtime::LinuxMemoryBuilder;

    #[test]
    fn swap_conversion_matches_runc() {
        assert_eq!(swap_value(None, None), Ok(None));
        assert_eq!(swap_value(None, Some(-1)), Ok(Some(-1)));
        assert_eq!(swap_value(Some(-1), Some(100)), Ok(Some(-1)));
        assert_eq!(swap_value(Some(300), Some(100)), Ok(Some(200)));
        assert_eq!(swap_value(Some(100), Some(100)), Ok(Some(0)));
        assert!(swap_value(Some(50), Some(100)).is_err());
        assert!(swap_value(Some(300), None).is_err());
        assert!(swap_value(Some(300), Some(-1)).is_err());
        assert!(swap_value(Some(-5), Some(100)).is_err());
    }

    #[test]
    fn writes_limit_low_and_swap() {
        let (_dir, cgroup) = fake_v2();
        let memory = LinuxMemoryBuilder::default()
            .limit(64 << 20)
            .reservation(32 << 20)
            .swap(96 << 20)
            .build()
            .unwrap();
        apply(&cgroup, &memory).unwrap();
        assert_eq!(get(&cgroup, "memory.max"), (64 << 20).to_string());
        assert_eq!(get(&cgroup, "memory.low"), (32 << 20).to_string());
        assert_eq!(get(&cgroup, "memory.swap.max"), (32 << 20).to_string());
    }

    #[test]
    fn unlimited_values_become_max() {
        let (_dir, cgroup) = fake_v2();
        let memory = LinuxMemoryBuilder::default().limit(-1).build().unwrap();
        apply(&cgroup, &memory).unwrap();
        assert_eq!(get(&cgroup, "memory.max"), "max");
        assert_eq!(get(&cgroup, "memory.swap.max"), "max");
    }

    #[test]
    fn refuses_what_v2_cannot_do() {
        let (_dir, cgroup) = fake_v2();
        let oom = LinuxMemoryBuilder::default()
            .disable_oom_killer(true)
            .build()
            .unwrap();
        assert!(matches!(
            apply(&cgroup, &oom),
            Err(CgroupError::Unsupported { .. })
        ));
        let fine = LinuxMemoryBuilder::default()
            .disable_oom_killer(false)
            .kernel(1 << 20)
            .swappiness(10u64)
            .build()
            .unwrap();
        apply(&cgroup, &fine).unwrap();
        let bad_swap = LinuxMemoryBuilder::default()
            .limit(100)
            .swap(50)
            .build()
            .unwrap();
        let error = apply(&cgroup, &bad_swap).unwrap_err();
        assert!(matches!(
            error,
            CgroupError::InvalidResource {
                resource: "memory.swap",
                ..
            }
        ));
        let bad_limit = LinuxMemoryBuilder::default().limit(-7).build().unwrap();
        assert!(apply(&cgroup, &bad_limit).is_err());
    }

    #[test]
    fn swap_without_accounting() {
        let (_dir, cgroup) = fake_v2();
        std::fs::remove_file(cgroup.join("memory.swap.max")).unwrap();
        let unlimited = LinuxMemoryBuilder::default().limit(-1).build().unwrap();
        apply(&cgroup, &unlimited).unwrap();
        let limited = LinuxMemoryBuilder::default()
            .limit(100)
            .swap(300)
            .build()
            .unwrap();
        assert!(matches!(
            apply(&cgroup, &limited),
            Err(CgroupError::ControllerUnavailable { .. })
        ));
    }

    #[test]
    fn check_before_update_refuses_limits_below_usage() {
        let (_dir, cgroup) = fake_v2();
        put(&cgroup, "memory.current", "5000\n");
        let memory = LinuxMemoryBuilder::default()
            .limit(4096)
            .check_before_update(true)
            .build()
            .unwrap();
        assert!(matches!(
            apply(&cgroup, &memory),
            Err(CgroupError::InvalidResource { .. })
        ));
        let memory = LinuxMemoryBuilder::default().limit(4096).build().unwrap();
        apply(&cgroup, &memory).unwrap();
    }
}
