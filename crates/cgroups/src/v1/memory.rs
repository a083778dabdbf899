//! The cgroup v1 memory controller.
//!
//! OCI's `swap` is the memory+swap limit, written as is to `memory.memsw.limit_in_bytes`. The
//! kernel requires `limit_in_bytes <= memsw.limit_in_bytes` after every single write, so the
//! two are written in the order that keeps that true (memsw first when it grows past the
//! current limit), and the other order is tried if the kernel still says `EINVAL`.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::common;
use crate::error::CgroupError;
use crate::stats::{MemoryEntry, MemoryEvents, Stats};

const LIMIT: &str = "memory.limit_in_bytes";
const SWAP_LIMIT: &str = "memory.memsw.limit_in_bytes";
const SOFT_LIMIT: &str = "memory.soft_limit_in_bytes";
const KERNEL_LIMIT: &str = "memory.kmem.limit_in_bytes";
const KERNEL_TCP_LIMIT: &str = "memory.kmem.tcp.limit_in_bytes";
const SWAPPINESS: &str = "memory.swappiness";
const OOM_CONTROL: &str = "memory.oom_control";
const USE_HIERARCHY: &str = "memory.use_hierarchy";

/// Whether `memory` sets anything at all (any field needs the memory hierarchy).
pub(super) fn is_requested(memory: &LinuxMemory) -> bool {
    memory.limit().is_some_and(|v| v != 0)
        || memory.reservation().is_some_and(|v| v != 0)
        || memory.swap().is_some_and(|v| v != 0)
        || memory.kernel().is_some_and(|v| v != 0)
        || memory.kernel_tcp().is_some_and(|v| v != 0)
        || memory.swappiness().is_some()
        || memory.disable_oom_killer().is_some()
        || memory.use_hierarchy().is_some()
}

/// Whether memsw must be written before the limit: when it becomes unlimited or grows past the
/// current memory limit (runc's rule). Otherwise the limit shrinks first.
pub(super) fn swap_first(current_limit: u64, new_swap: i64) -> bool {
    new_swap == -1 || u64::try_from(new_swap).is_ok_and(|swap| current_limit < swap)
}

pub(super) fn apply(dir: &Path, memory: &LinuxMemory) -> Result<(), CgroupError> {
    let invalid = |resource, reason: String| CgroupError::InvalidResource {
        resource,
        path: dir.to_owned(),
        reason,
    };
    let limit = memory.limit().filter(|&v| v != 0);
    let mut swap = memory.swap().filter(|&v| v != 0);
    for (resource, value) in [
        ("memory.limit", limit),
        ("memory.swap", swap),
        ("memory.reservation", memory.reservation()),
        ("memory.kernel", memory.kernel()),
        ("memory.kernelTCP", memory.kernel_tcp()),
    ] {
        if let Some(value) = value.filter(|&v| v < -1) {
            return Err(invalid(
                resource,
                format!("{value} is neither -1 nor positive"),
            ));
        }
    }
    if let (Some(limit), Some(swap)) = (limit, swap) {
        if limit > 0 && swap > 0 && swap < limit {
            return Err(invalid(
                "memory.swap",
                format!("memory+swap {swap} is below the memory limit {limit}"),
            ));
        }
    }
    let has_swap_accounting = dir.join(SWAP_LIMIT).is_file();
    // Unlimited memory without an explicit swap means unlimited memory+swap too (runc).
    if limit == Some(-1) && swap.is_none() && has_swap_accounting {
        swap = Some(-1);
    }
    if swap.is_some() && !has_swap_accounting {
        if swap == Some(-1) {
            swap = None;
        } else {
            return Err(CgroupError::ControllerUnavailable {
                controller: "memory (swap accounting)",
                path: dir.join(SWAP_LIMIT),
                resource: "memory.swap",
            });
        }
    }
    match (limit, swap) {
        (Some(limit), Some(swap)) => write_limit_and_swap(dir, limit, swap)?,
        (Some(limit), None) => common::write_file(dir, LIMIT, limit)?,
        (None, Some(swap)) => common::write_file(dir, SWAP_LIMIT, swap)?,
        (None, None) => {}
    }
    if let Some(reservation) = memory.reservation().filter(|&v| v != 0) {
        common::write_file(dir, SOFT_LIMIT, reservation)?;
    }
    for (file, value) in [
        (KERNEL_LIMIT, memory.kernel()),
        (KERNEL_TCP_LIMIT, memory.kernel_tcp()),
    ] {
        if let Some(value) = value.filter(|&v| v != 0) {
            write_deprecated(dir, file, value)?;
        }
    }
    if let Some(swappiness) = memory.swappiness() {
        if swappiness > 100 {
            return Err(invalid(
                "memory.swappiness",
                format!("{swappiness} is outside 0..=100"),
            ));
        }
        common::write_file(dir, SWAPPINESS, swappiness)?;
    }
    if let Some(disable) = memory.disable_oom_killer() {
        common::write_file(dir, OOM_CONTROL, u8::from(disable))?;
    }
    if let Some(use_hierarchy) = memory.use_hierarchy() {
        match common::write_file(dir, USE_HIERARCHY, u8::from(use_hierarchy)) {
            Ok(()) => {}
            // Since Linux 5.x hierarchy is always on and the file refuses 0.
            Err(error) if matches!(error.raw_os_error(), Some(libc::EINVAL | libc::EBUSY)) => {
                tracing::warn!(%error, "memory.useHierarchy not changed");
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn write_limit_and_swap(dir: &Path, limit: i64, swap: i64) -> Result<(), CgroupError> {
    // Only a hint for the order: if it cannot be read, the EINVAL retry below still works.
    let current_limit = common::read_optional_value(dir, LIMIT)
        .ok()
        .flatten()
        .unwrap_or(u64::MAX);
    let (first, second) = if swap_first(current_limit, swap) {
        ((SWAP_LIMIT, swap), (LIMIT, limit))
    } else {
        ((LIMIT, limit), (SWAP_LIMIT, swap))
    };
    match common::write_file(dir, first.0, first.1) {
        Ok(()) => common::write_file(dir, second.0, second.1),
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
            tracing::debug!(%error, "retrying memory limits in the other order");
            common::write_file(dir, second.0, second.1)?;
            common::write_file(dir, first.0, first.1)
        }
        Err(error) => Err(error),
    }
}

/// Writes a kernel-memory limit, which recent kernels no longer enforce (the files may be
/// missing or refuse writes): that is logged, not fatal.
fn write_deprecated(dir: &Path, file: &str, value: i64) -> Result<(), CgroupError> {
    match common::write_file(dir, file, value) {
        Ok(()) => Ok(()),
        Err(error)
            if error.is_not_found()
                || matches!(
                    error.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EINVAL | libc::EPERM)
                ) =>
        {
            tracing::warn!(%error, "kernel memory limit not supported by this kernel; ignored");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Reads one `memory[.prefix].{usage_in_bytes,max_usage_in_bytes,limit_in_bytes,failcnt}`
/// group; `None` when the group does not exist.
fn entry(dir: &Path, prefix: &str) -> Result<Option<MemoryEntry>, CgroupError> {
    let Some(usage) = common::read_optional_value(dir, &format!("{prefix}.usage_in_bytes"))? else {
        return Ok(None);
    };
    let value = |name: &str| common::read_optional_value(dir, &format!("{prefix}.{name}"));
    Ok(Some(MemoryEntry {
        limit: value("limit_in_bytes")?.unwrap_or(0),
        usage,
        max: value("max_usage_in_bytes")?.unwrap_or(0),
        failcnt: value("failcnt")?.unwrap_or(0),
    }))
}

pub(super) fn stats(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    let memory = &mut stats.memory;
    if let Some(usage) = entry(dir, "memory")? {
        memory.usage = usage;
    }
    if let Some(swap) = entry(dir, "memory.memsw")? {
        memory.swap = swap;
    }
    if let Some(kernel) = entry(dir, "memory.kmem")? {
        memory.kernel = kernel;
    }
    if let Some(kernel_tcp) = entry(dir, "memory.kmem.tcp")? {
        memory.kernel_tcp = kernel_tcp;
    }
    if let Some(raw) = common::read_flat_keyed(dir, "memory.stat")? {
        memory.cache = raw.get("cache").copied().unwrap_or(0);
        memory.raw = raw;
    }
    Ok(())
}

pub(super) fn events(dir: &Path) -> Result<MemoryEvents, CgroupError> {
    let control = common::read_flat_keyed(dir, OOM_CONTROL)?.unwrap_or_default();
    Ok(MemoryEvents {
        oom: control.get("under_oom").copied().unwrap_or(0),
        oom_kill: control.get("oom_kill").copied().unwrap_or(0),
        max: common::read_optional_value(dir, "memory.failcnt")?.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::v1::tests::{fake_v1, RELATIVE};
    use oci_spec::runtime::LinuxMemoryBuilder;
    use std::path::PathBuf;

    fn cgroup() -> (tempfile::TempDir, PathBuf) {
        let dir = fake_v1(false, &["memory"]);
        let cgroup = dir.path().join("memory").join(RELATIVE);
        (dir, cgroup)
    }

    #[test]
    fn order_follows_runc() {
        assert!(swap_first(100, -1));
        assert!(swap_first(100, 200));
        assert!(!swap_first(300, 200));
        assert!(!swap_first(u64::MAX, 200));
    }

    #[test]
    fn raising_writes_memsw_first_and_lowering_writes_limit_first() {
        let (_dir, cgroup) = cgroup();
        put(&cgroup, LIMIT, "1048576\n");
        let raise = LinuxMemoryBuilder::default()
            .limit(4 << 20)
            .swap(8 << 20)
            .build()
            .unwrap();
        take_writes();
        apply(&cgroup, &raise).unwrap();
        assert_eq!(
            take_writes(),
            vec![
                (SWAP_LIMIT.to_owned(), (8 << 20).to_string()),
                (LIMIT.to_owned(), (4 << 20).to_string()),
            ]
        );
        put(&cgroup, LIMIT, "4194304\n");
        let lower = LinuxMemoryBuilder::default()
            .limit(1 << 20)
            .swap(2 << 20)
            .build()
            .unwrap();
        apply(&cgroup, &lower).unwrap();
        assert_eq!(
            take_writes(),
            vec![
                (LIMIT.to_owned(), (1 << 20).to_string()),
                (SWAP_LIMIT.to_owned(), (2 << 20).to_string()),
            ]
        );
    }

    #[test]
    fn einval_retries_the_other_order() {
        let (_dir, cgroup) = cgroup();
        put(&cgroup, LIMIT, "9223372036854771712\n");
        let memory = LinuxMemoryBuilder::default()
            .limit(1 << 20)
            .swap(2 << 20)
            .build()
            .unwrap();
        fail_next_write(LIMIT, libc::EINVAL);
        take_writes();
        apply(&cgroup, &memory).unwrap();
        assert_eq!(
            take_writes(),
            vec![
                (SWAP_LIMIT.to_owned(), (2 << 20).to_string()),
                (LIMIT.to_owned(), (1 << 20).to_string()),
            ]
        );
        fail_next_write(LIMIT, libc::EBUSY);
        let error = apply(&cgroup, &memory).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EBUSY));
    }

    #[test]
    fn every_setting_reaches_its_file() {
        let (_dir, cgroup) = cgroup();
        let memory = LinuxMemoryBuilder::default()
            .limit(-1)
            .reservation(1 << 20)
            .kernel(1 << 20)
            .kernel_tcp(2 << 20)
            .swappiness(30u64)
            .disable_oom_killer(true)
            .use_hierarchy(true)
            .build()
            .unwrap();
        take_writes();
        apply(&cgroup, &memory).unwrap();
        let writes = take_writes();
        let expected: Vec<(String, String)> = [
            (SWAP_LIMIT, "-1"),
            (LIMIT, "-1"),
            (SOFT_LIMIT, "1048576"),
            (KERNEL_LIMIT, "1048576"),
            (KERNEL_TCP_LIMIT, "2097152"),
            (SWAPPINESS, "30"),
            (OOM_CONTROL, "1"),
            (USE_HIERARCHY, "1"),
        ]
        .iter()
        .map(|(f, v)| ((*f).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(writes, expected);
    }

    #[test]
    fn dropped_kernel_features_are_ignored() {
        let (_dir, cgroup) = cgroup();
        std::fs::remove_file(cgroup.join(KERNEL_LIMIT)).unwrap();
        fail_next_write(KERNEL_TCP_LIMIT, libc::EOPNOTSUPP);
        let memory = LinuxMemoryBuilder::default()
            .kernel(1 << 20)
            .kernel_tcp(1 << 20)
            .build()
            .unwrap();
        apply(&cgroup, &memory).unwrap();
    }

    #[test]
    fn swap_needs_accounting_and_sane_values() {
        let (_dir, cgroup) = cgroup();
        let below = LinuxMemoryBuilder::default()
            .limit(200)
            .swap(100)
            .build()
            .unwrap();
        assert!(matches!(
            apply(&cgroup, &below),
            Err(CgroupError::InvalidResource {
                resource: "memory.swap",
                ..
            })
        ));
        let swappiness = LinuxMemoryBuilder::default()
            .swappiness(101u64)
            .build()
            .unwrap();
        assert!(apply(&cgroup, &swappiness).is_err());
        std::fs::remove_file(cgroup.join(SWAP_LIMIT)).unwrap();
        let swap = LinuxMemoryBuilder::default()
            .limit(100)
            .swap(200)
            .build()
            .unwrap();
        assert!(matches!(
            apply(&cgroup, &swap),
            Err(CgroupError::ControllerUnavailable { .. })
        ));
        let unlimited = LinuxMemoryBuilder::default().limit(-1).build().unwrap();
        apply(&cgroup, &unlimited).unwrap();
        assert_eq!(get(&cgroup, LIMIT), "-1");
    }

    #[test]
    fn stats_and_events_parse_real_files() {
        let (_dir, cgroup) = cgroup();
        for (file, content) in [
            ("memory.usage_in_bytes", "2256896\n"),
            ("memory.max_usage_in_bytes", "4513792\n"),
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.failcnt", "3\n"),
            ("memory.memsw.usage_in_bytes", "2256896\n"),
            ("memory.memsw.max_usage_in_bytes", "4513792\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.failcnt", "0\n"),
            ("memory.kmem.usage_in_bytes", "409600\n"),
            ("memory.kmem.limit_in_bytes", "9223372036854771712\n"),
            ("memory.kmem.failcnt", "0\n"),
            ("memory.kmem.max_usage_in_bytes", "512000\n"),
            (
                "memory.stat",
                "cache 1228800\nrss 520192\nrss_huge 0\nshmem 0\nmapped_file 675840\n\
                 swap 0\npgpgin 1479\npgpgout 1052\npgfault 2175\npgmajfault 6\n\
                 hierarchical_memory_limit 9223372036854771712\ntotal_cache 1228800\n",
            ),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
        ] {
            put(&cgroup, file, content);
        }
        let mut stats = Stats::default();
        super::stats(&cgroup, &mut stats).unwrap();
        let memory = &stats.memory;
        assert_eq!(memory.usage.usage, 2_256_896);
        assert_eq!(memory.usage.max, 4_513_792);
        assert_eq!(memory.usage.limit, 9_223_372_036_854_771_712);
        assert_eq!(memory.usage.failcnt, 3);
        assert_eq!(memory.swap.usage, 2_256_896);
        assert_eq!(memory.kernel.max, 512_000);
        assert_eq!(memory.kernel_tcp, MemoryEntry::default());
        assert_eq!(memory.cache, 1_228_800);
        assert_eq!(memory.raw["pgmajfault"], 6);
        let events = events(&cgroup).unwrap();
        assert_eq!((events.oom, events.oom_kill, events.max), (0, 2, 3));
        put(&cgroup, "memory.failcnt", "x\n");
        assert!(super::stats(&cgroup, &mut stats).is_err());
    }
}
